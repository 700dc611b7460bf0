// Shared generators and bounds for the property tests.
import fc from 'fast-check';

/** Runs per property: enough to find the edge cases, few enough that each property takes a second or two. */
export const RUNS = 1_000;
/** The most one parse of hostile input may take. Generous for a loaded 2-core machine; a ReDoS or a quadratic loop takes far longer. */
export const MAX_MS = 100;

/** Runs fn and fails if it took longer than MAX_MS. */
export function boundedTime<T>(fn: () => T): T {
  const started = performance.now();
  const out = fn();
  const ms = performance.now() - started;
  if (ms > MAX_MS) throw new Error(`took ${ms.toFixed(0)} ms (bound ${MAX_MS} ms)`);
  return out;
}

/** boundedTime for work that awaits (a page of tags sorts in slices between turns of the event loop). */
export async function boundedTimeAsync<T>(fn: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const out = await fn();
  const ms = performance.now() - started;
  if (ms > MAX_MS) throw new Error(`took ${ms.toFixed(0)} ms (bound ${MAX_MS} ms)`);
  return out;
}

const alnum = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789'.split(''));
const run = fc.array(alnum, { minLength: 1, maxLength: 6 }).map((a) => a.join(''));
const separator = fc.constantFrom('.', '_', '__', '-', '--');
const component = fc
  .tuple(run, fc.array(fc.tuple(separator, run), { maxLength: 3 }))
  .map(([first, rest]) => first + rest.map(([s, r]) => s + r).join(''));

/** Repository names the distribution grammar allows (not starting with a registry-looking component). */
export const arbRepository = fc
  .array(
    component.filter((c) => !c.includes('.')),
    { minLength: 1, maxLength: 4 },
  )
  .map((c) => c.join('/'))
  .filter((n) => n.length <= 200);

export const arbTag = fc
  .tuple(
    fc.constantFrom(...'abcXYZ019_'.split('')),
    fc.array(fc.constantFrom(...'abcXYZ019_.-'.split('')), { maxLength: 20 }),
  )
  .map(([first, rest]) => first + rest.join(''));

export const arbDigest = fc
  .array(fc.constantFrom(...'0123456789abcdef'.split('')), { minLength: 64, maxLength: 64 })
  .map((h) => `sha256:${h.join('')}`);

/** Arbitrary JSON values, shallow and deep, with the keys manifests and evidence use. */
export const arbJsonKey = fc.constantFrom(
  'schemaVersion',
  'mediaType',
  'manifests',
  'layers',
  'config',
  'digest',
  'size',
  'annotations',
  'subject',
  'artifactType',
  'payload',
  'payloadType',
  'signatures',
  'sig',
  'keyid',
  'protected',
  'header',
  'signature',
  '__proto__',
  'constructor',
  'toString',
);
export const arbJson = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(null, true, false, 0, -1, 2, 1e308, ''),
    fc.string({ maxLength: 20 }),
    fc.integer(),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.oneof(arbJsonKey, fc.string({ maxLength: 8 })), tie('value'), { maxKeys: 5 }),
  ),
})).value;
