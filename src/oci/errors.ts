// OCI distribution error codes and the one error type every layer throws. A failure says what
// kind of failure it is; the HTTP status is assigned once, at the edge (src/proxy/http-errors.ts).

export type ErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'
  | 'RANGE_INVALID'
  | 'UNAVAILABLE';

/**
 * What went wrong, as the layers that decide on it need to know:
 * - `invalid`: the request is malformed; `method`: the operation is not offered (writes);
 * - `unauthorized`, `denied`, `not-found`, `conflict`: the answer to a well-formed request;
 * - `too-large`: a request body over its limit; `unsatisfiable`: a Range outside the content;
 * - `unprocessable`: a well-formed admin request the proxy cannot carry out;
 * - `upstream`: an upstream unreachable or answering wrongly; `timeout`: an upstream too slow;
 *   `rate-limited`: an upstream refusing for load; `unavailable`: this proxy cannot serve now
 *   (its store is down, a budget for load is spent);
 * - `internal`: a bug.
 */
export type Failure =
  | 'invalid'
  | 'method'
  | 'unauthorized'
  | 'denied'
  | 'not-found'
  | 'conflict'
  | 'too-large'
  | 'unsatisfiable'
  | 'unprocessable'
  | 'upstream'
  | 'timeout'
  | 'rate-limited'
  | 'unavailable'
  | 'internal';

export interface ErrorBody {
  errors: { code: ErrorCode; message: string; detail?: unknown }[];
}

export interface ErrorOptions {
  detail?: unknown;
  /** Seconds a client should wait before trying again (rate limits, load). */
  retryAfter?: string;
  /** A `WWW-Authenticate` challenge telling the client how to authenticate (401s of client authentication). */
  challenge?: string;
  cause?: unknown;
}

export class RegistryError extends Error {
  readonly failure: Failure;
  readonly code: ErrorCode;
  readonly detail: unknown;
  readonly retryAfter: string | undefined;
  readonly challenge: string | undefined;

  constructor(failure: Failure, code: ErrorCode, message: string, opts: ErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'RegistryError';
    this.failure = failure;
    this.code = code;
    this.detail = opts.detail;
    this.retryAfter = opts.retryAfter;
    this.challenge = opts.challenge;
  }

  body(): ErrorBody {
    return {
      errors: [
        { code: this.code, message: this.message, ...(this.detail === undefined ? {} : { detail: this.detail }) },
      ],
    };
  }
}

/** Failures that say nothing about the image: the upstream, the network or this proxy's load. */
const TRANSIENT: ReadonlySet<Failure> = new Set(['upstream', 'timeout', 'rate-limited', 'unavailable']);

/** Whether an error is the upstream's, the network's or the load's fault rather than a judgement on the image. */
export function isTransient(err: unknown): boolean {
  return err instanceof RegistryError && TRANSIENT.has(err.failure);
}

export function isNotFound(err: unknown): boolean {
  return err instanceof RegistryError && err.failure === 'not-found';
}

export function denied(message: string, detail?: unknown): RegistryError {
  return new RegistryError('denied', 'DENIED', message, detail === undefined ? {} : { detail });
}
