// A blob already in memory and verified (small evidence blobs), as a BlobBody.
import { Readable } from 'node:stream';
import type { BlobBody } from './types.ts';

export function memoryBody(digest: string, bytes: Buffer): BlobBody {
  return {
    digest,
    source: 'memory',
    size: bytes.length,
    complete: Promise.resolve(),
    stream(range) {
      const end = range && Number.isFinite(range.end) ? range.end + 1 : bytes.length;
      return Readable.from([bytes.subarray(range?.start ?? 0, end)]);
    },
    close() {},
  };
}
