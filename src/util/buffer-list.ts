// Lists of buffers written with one writev: what is left of them after a short write.

/** `buffers` less their first `skip` bytes, as views (nothing is copied). */
export function skipBytes<T extends Uint8Array>(buffers: readonly T[], skip: number): T[] {
  const out: T[] = [];
  let left = skip;
  for (const b of buffers) {
    if (left >= b.length) {
      left -= b.length;
      continue;
    }
    out.push(left > 0 ? (b.subarray(left) as T) : b);
    left = 0;
  }
  return out;
}
