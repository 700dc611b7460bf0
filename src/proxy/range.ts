// The one byte range a blob request may ask for. Pure.
import type { ByteRange } from '../blobs/types.ts';

export type RangeRequest =
  /** No Range header, or one this proxy ignores (several ranges, another unit): serve the whole blob. */
  | { kind: 'whole' }
  | { kind: 'range'; range: ByteRange }
  /** Well formed but outside the content: 416. */
  | { kind: 'unsatisfiable' };

/** Parses `Range: bytes=a-b | a- | -n` against the blob's length (RFC 9110 §14.1.2). */
export function parseRange(header: string | undefined, size: number): RangeRequest {
  if (header === undefined) return { kind: 'whole' };
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return { kind: 'whole' };
  const [, first = '', last = ''] = m;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'range', range: { start: Math.max(0, size - suffix), end: size - 1 } };
  }
  const start = Number(first);
  // A last position before the first makes the spec invalid, and an invalid Range is ignored.
  if (last !== '' && Number(last) < start) return { kind: 'whole' };
  if (start >= size) return { kind: 'unsatisfiable' };
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  return { kind: 'range', range: { start, end } };
}
