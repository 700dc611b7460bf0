// Sorting a long list of strings without holding the event loop: one Array#sort of 100,000
// shuffled tags of 128 bytes took 100-200 ms on the CI machine, with every other request waiting.
// Runs of `slice` strings are sorted natively, then merged pairwise, with a turn of the event loop
// after each run and after every `slice` strings a merge places.
import { setImmediate as turn } from 'node:timers/promises';

/** Strings sorted or merged between two turns of the event loop (about 2 ms of work on the CI machine). */
export const SORT_SLICE = 4096;

/** `items` in code-unit order, as Array#sort without a comparator orders strings; `items` is left as it is. */
export async function sortInSlices(items: readonly string[], slice: number = SORT_SLICE): Promise<string[]> {
  if (items.length <= slice) return [...items].sort();
  let runs: string[][] = [];
  for (let i = 0; i < items.length; i += slice) {
    runs.push(items.slice(i, i + slice).sort());
    await turn();
  }
  while (runs.length > 1) {
    const merged: string[][] = [];
    for (let r = 0; r + 1 < runs.length; r += 2) merged.push(await merge(runs[r] ?? [], runs[r + 1] ?? [], slice));
    if (runs.length % 2 === 1) merged.push(runs[runs.length - 1] ?? []);
    runs = merged;
  }
  return runs[0] ?? [];
}

/** Two sorted runs as one; of equal strings, a's come first (a stable merge). */
async function merge(a: string[], b: string[], slice: number): Promise<string[]> {
  const out: string[] = new Array<string>(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) {
    const x = a[i] as string;
    const y = b[j] as string;
    if (y < x) {
      out[k++] = y;
      j++;
    } else {
      out[k++] = x;
      i++;
    }
    if (k % slice === 0) await turn();
  }
  while (i < a.length) out[k++] = a[i++] as string;
  while (j < b.length) out[k++] = b[j++] as string;
  return out;
}
