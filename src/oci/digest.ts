// Content digests: the proxy computes every digest it vouches for itself.
import { createHash, type Hash } from 'node:crypto';
import { parseDigest } from './reference.ts';

export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Whether bytes hash to the given digest under that digest's own algorithm; false for a malformed digest. */
export function matchesDigest(bytes: Uint8Array, digest: string): boolean {
  const parsed = parseDigest(digest);
  if (typeof parsed === 'string') return false;
  return createHash(parsed.algorithm).update(bytes).digest('hex') === parsed.hex;
}

/** A running hash for streamed content, compared at the end against the expected digest. */
export function digestHasher(digest: string): { hash: Hash; matches(): boolean } | undefined {
  const parsed = parseDigest(digest);
  if (typeof parsed === 'string') return undefined;
  const hash = createHash(parsed.algorithm);
  return { hash, matches: () => hash.digest('hex') === parsed.hex };
}
