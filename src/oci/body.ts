// Reading upstream bodies into memory, never past a limit.
import type { Hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { setImmediate as turn } from 'node:timers/promises';
import { RegistryError, type ErrorCode } from './errors.ts';

export class TooLargeError extends Error {}

const ignore = (): void => undefined;

/**
 * Throws a body away. undici's body emits an "aborted" error when destroyed before its end, and an
 * 'error' nobody listens to ends the process: every discarded upstream body goes through here.
 */
export function discard(body: Readable): void {
  body.on('error', ignore);
  body.destroy();
}

/**
 * Reads a stream fully; destroys it and throws TooLargeError as soon as it exceeds maxBytes. With a
 * `declared` length (Content-Length) within the limit the bytes go into one buffer of that size as
 * they arrive, so a large body is held once, not as its chunks and their concatenation side by side.
 * With `hash`, each chunk is hashed as it arrives: a digest check costs nothing at the end (eight
 * evidence blobs of 1 MiB ending together were 10-20 ms of hashing and copying in one turn). With
 * `stop`, each chunk is shown to it first: once it returns true the body is destroyed, the rest
 * unread, and the answer is undefined.
 */
export async function readLimited(body: Readable, maxBytes: number, declared?: number, hash?: Hash): Promise<Buffer>;
export async function readLimited(
  body: Readable,
  maxBytes: number,
  declared: number | undefined,
  hash: Hash | undefined,
  stop: (chunk: Buffer) => boolean,
): Promise<Buffer | undefined>;
export async function readLimited(
  body: Readable,
  maxBytes: number,
  declared?: number,
  hash?: Hash,
  stop?: (chunk: Buffer) => boolean,
): Promise<Buffer | undefined> {
  const preallocated =
    declared !== undefined && Number.isSafeInteger(declared) && declared >= 0 && declared <= maxBytes;
  const out = preallocated ? Buffer.allocUnsafe(declared) : undefined;
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    if (out && total + buf.length > out.length) {
      discard(body);
      throw new Error(`the body is longer than its declared ${out.length} bytes`);
    }
    if (total + buf.length > maxBytes) {
      discard(body);
      throw new TooLargeError(`more than ${maxBytes} bytes`);
    }
    if (stop?.(buf)) {
      discard(body);
      return undefined;
    }
    if (out) buf.copy(out, total);
    else chunks.push(buf);
    hash?.update(buf);
    total += buf.length;
  }
  if (!out) return Buffer.concat(chunks, total);
  return total === out.length ? out : Buffer.from(out.subarray(0, total));
}

/**
 * The most of a chunk handed to a consumer at once, and the work between two turns of the event
 * loop. The time is looked at between pieces: 64 KiB of short tags was 7 ms of scanning, past the slice.
 */
const FEED_PIECE = 16 * 1024;
const FEED_SLICE_MS = 4;

/**
 * Hands a body to `take` as it arrives, in pieces of at most 16 KiB, never holding it whole; yields
 * to the event loop once about FEED_SLICE_MS of work was done without a turn, so a consumer that
 * scans is never one long task however much the stream had buffered. `take` returns true once it
 * has seen enough: the rest is not read. Over `maxBytes` (or a declared length over it) destroys
 * the body and throws TooLargeError.
 */
export async function feedLimited(
  body: Readable,
  maxBytes: number,
  take: (piece: Buffer) => boolean,
  declared?: number,
): Promise<void> {
  if (declared !== undefined && declared > maxBytes) {
    discard(body);
    throw new TooLargeError(`${declared} bytes declared, more than ${maxBytes}`);
  }
  let total = 0;
  let sliceStart = performance.now();
  try {
    for await (const chunk of body) {
      const buf = chunk as Buffer;
      total += buf.length;
      if (total > maxBytes) throw new TooLargeError(`more than ${maxBytes} bytes`);
      for (let off = 0; off < buf.length; off += FEED_PIECE) {
        if (take(buf.subarray(off, off + FEED_PIECE))) {
          discard(body);
          return;
        }
        if (performance.now() - sliceStart > FEED_SLICE_MS) {
          await turn();
          sliceStart = performance.now();
        }
      }
    }
  } catch (err) {
    discard(body);
    throw err;
  }
}

const KNOWN_CODES = new Set<string>([
  'BLOB_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
  'TOOMANYREQUESTS',
]);

/** The first error code and message of an upstream's OCI error body, if it has one we recognise. */
export function upstreamErrorOf(body: Buffer): { code?: ErrorCode; message?: string } {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { errors?: { code?: unknown; message?: unknown }[] };
    const first = parsed.errors?.[0];
    if (!first) return {};
    return {
      ...(typeof first.code === 'string' && KNOWN_CODES.has(first.code) ? { code: first.code as ErrorCode } : {}),
      ...(typeof first.message === 'string' ? { message: first.message.slice(0, 300) } : {}),
    };
  } catch {
    return {};
  }
}

/** Maps an upstream's non-success answer onto the error this proxy returns, naming the upstream. */
export function upstreamStatusError(
  host: string,
  status: number,
  body: Buffer,
  notFound: ErrorCode,
  retryAfter?: string,
): RegistryError {
  const { code, message } = upstreamErrorOf(body);
  const said = message ? `: ${message}` : '';
  if (status === 404) return new RegistryError('not-found', code ?? notFound, `upstream ${host} answered 404${said}`);
  if (status === 401)
    return new RegistryError(
      'unauthorized',
      'UNAUTHORIZED',
      `upstream ${host} refused the proxy's credentials for this repository (it may not exist)${said}`,
    );
  if (status === 403) return new RegistryError('denied', 'DENIED', `upstream ${host} denied access${said}`);
  if (status === 429) {
    return new RegistryError(
      'rate-limited',
      'TOOMANYREQUESTS',
      `upstream ${host} is rate limiting the proxy${said}`,
      retryAfter ? { retryAfter } : {},
    );
  }
  if (status === 400 && code) return new RegistryError('invalid', code, `upstream ${host} rejected the request${said}`);
  return new RegistryError('upstream', 'UNAVAILABLE', `upstream ${host} answered ${status}${said}`);
}
