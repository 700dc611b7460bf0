// The blob store's seams: where bytes come from (an origin, bound to one upstream repository by
// the gate) and what a request gets back (a body it can stream, whole or a range of).
import type { Readable, Writable } from 'node:stream';

/** An upstream's answer to a whole-blob GET. */
export interface UpstreamBlob {
  /** Content-Length, when the upstream sent one. */
  size: number | undefined;
  body: Readable;
}

/** How to reach the upstream for one blob: the gate binds it to a repository the blob was admitted in. */
export interface BlobOrigin {
  /** The upstream host, for messages and metrics. */
  readonly upstream: string;
  /** The upstream repository, when the origin is an allowlisted registry: the fill thread can then fetch it itself. */
  readonly repository?: string;
  /** A whole-blob GET; throws a RegistryError (not found, unreachable, wrong answer). */
  get(): Promise<UpstreamBlob>;
  /** The blob's size without its bytes. */
  head(): Promise<{ size: number | undefined }>;
}

/** Bytes `start` to `end` inclusive, as in an HTTP Range. */
export interface ByteRange {
  start: number;
  end: number;
}

export type BlobSource = 'cache' | 'fill' | 'memory';

/** One request's view of a blob. Single use: call `send` once, or `close` if it will not be sent. */
export interface BlobBody {
  readonly digest: string;
  readonly source: BlobSource;
  /** The length, when known (always for a cache hit; for a fill once the upstream declared it). */
  readonly size: number | undefined;
  /** Resolves once the whole content is verified against the digest; rejects when it cannot be. */
  readonly complete: Promise<void>;
  /**
   * Writes the content, or a range of it, to `out` as it becomes available, and resolves with the
   * bytes written. A reader never receives the last byte of content that does not match its
   * digest: the send fails instead. A client that takes no bytes for `writeTimeoutMs` fails it too.
   */
  send(out: Writable, range: ByteRange | undefined, writeTimeoutMs: number): Promise<number>;
  close(): void;
}
