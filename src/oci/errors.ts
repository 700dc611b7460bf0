// OCI distribution error codes and the one error type every layer throws towards the HTTP edge.

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
  | 'UNAVAILABLE';

export interface ErrorBody {
  errors: { code: ErrorCode; message: string; detail?: unknown }[];
}

export class RegistryError extends Error {
  readonly status: number;
  readonly code: ErrorCode;
  readonly detail: unknown;
  /** Extra response headers (Retry-After on 429). */
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    code: ErrorCode,
    message: string,
    opts: { detail?: unknown; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'RegistryError';
    this.status = status;
    this.code = code;
    this.detail = opts.detail;
    this.headers = opts.headers ?? {};
  }

  body(): ErrorBody {
    return {
      errors: [
        { code: this.code, message: this.message, ...(this.detail === undefined ? {} : { detail: this.detail }) },
      ],
    };
  }
}

/** Whether an error is the upstream's or the network's fault rather than a judgement on the image. */
export function isTransient(err: unknown): boolean {
  return (
    err instanceof RegistryError &&
    (err.status === 502 || err.status === 503 || err.status === 504 || err.code === 'TOOMANYREQUESTS')
  );
}
