// A blob already in memory and verified (small evidence blobs), as a BlobBody.
import type { BlobBody } from './types.ts';

export function memoryBody(digest: string, bytes: Buffer): BlobBody {
  return {
    digest,
    source: 'memory',
    size: bytes.length,
    complete: Promise.resolve(),
    async send(out, range) {
      const part = bytes.subarray(
        range?.start ?? 0,
        range && Number.isFinite(range.end) ? range.end + 1 : bytes.length,
      );
      out.write(part);
      return part.length;
    },
    close() {},
  };
}
