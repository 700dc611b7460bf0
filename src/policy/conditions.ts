// Conditions on attestation predicates: validated when the policy loads, checked (purely) when an
// image is judged. A failed check says what the field holds and what was expected.
import { formatAge, parseDuration } from './duration.ts';
import type { ConditionSpec } from './types.ts';

export const OPERATORS = [
  'equals',
  'oneOf',
  'matches',
  'lessThan',
  'lessThanOrEqual',
  'greaterThan',
  'greaterThanOrEqual',
  'maxAge',
] as const;

/** Time stamps this far in the future still count as fresh (clock skew between builder and proxy). */
export const FUTURE_SKEW_MS = 5 * 60_000;

const RFC3339_RE = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

/** Anchored, like identity patterns: a policy pattern matches the whole value, never a part of it. */
export function anchoredRegExp(pattern: string): RegExp {
  return new RegExp(`^(?:${pattern})$`, 'u');
}

/** Problems with one condition, each naming the offending field of it (`''`: the condition as a whole). */
export function conditionProblems(spec: ConditionSpec): { field: string; problem: string }[] {
  const problems: { field: string; problem: string }[] = [];
  if (spec.path.split('.').some((segment) => segment === '')) {
    problems.push({
      field: 'path',
      problem: `"${spec.path}" has an empty segment: write a dot path such as runDetails.builder.id`,
    });
  }
  if (!OPERATORS.some((op) => spec[op] !== undefined)) {
    problems.push({
      field: '',
      problem: `condition on ${spec.path} has no test: give at least one of ${OPERATORS.join(', ')}`,
    });
  }
  if (spec.matches !== undefined) {
    try {
      anchoredRegExp(spec.matches);
    } catch (err) {
      problems.push({ field: 'matches', problem: `invalid regular expression: ${(err as Error).message}` });
    }
  }
  if (spec.maxAge !== undefined && parseDuration(spec.maxAge) === undefined) {
    problems.push({
      field: 'maxAge',
      problem: `"${spec.maxAge}" is not a duration: write a positive number and unit (w, d, h, m, s), e.g. 7d or 1d12h`,
    });
  }
  return problems;
}

type Lookup = { found: true; value: unknown } | { found: false };

function lookup(root: unknown, path: string): Lookup {
  let value = root;
  for (const segment of path.split('.')) {
    if (Array.isArray(value) && /^\d+$/.test(segment) && Number(segment) < value.length) value = value[Number(segment)];
    else if (typeof value === 'object' && value !== null && !Array.isArray(value) && Object.hasOwn(value, segment))
      value = (value as Record<string, unknown>)[segment];
    else return { found: false };
  }
  return { found: true, value };
}

/** Values found in evidence are cut short (they are not ours); values from the policy never are. */
function describe(value: unknown, max = 200): string {
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (typeof value === 'object' && value !== null) return 'an object';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

const expected = (value: unknown): string => describe(value, Number.POSITIVE_INFINITY);

const NUMERIC: {
  op: 'lessThan' | 'lessThanOrEqual' | 'greaterThan' | 'greaterThanOrEqual';
  words: string;
  holds: (v: number, limit: number) => boolean;
}[] = [
  { op: 'lessThan', words: 'less than', holds: (v, limit) => v < limit },
  { op: 'lessThanOrEqual', words: 'at most', holds: (v, limit) => v <= limit },
  { op: 'greaterThan', words: 'more than', holds: (v, limit) => v > limit },
  { op: 'greaterThanOrEqual', words: 'at least', holds: (v, limit) => v >= limit },
];

/** Why `predicate` fails the condition (e.g. `runDetails.builder.id is "x", expected "y"`), or undefined if it holds. */
export function conditionFailure(spec: ConditionSpec, predicate: unknown, now: Date): string | undefined {
  const at = lookup(predicate, spec.path);
  if (!at.found) return `${spec.path} is missing`;
  const { value } = at;
  const is = `${spec.path} is ${describe(value)}`;
  if (spec.equals !== undefined && value !== spec.equals) return `${is}, expected ${expected(spec.equals)}`;
  if (spec.oneOf !== undefined && !spec.oneOf.includes(value as string | number | boolean)) {
    return `${is}, expected one of ${spec.oneOf.map(expected).join(', ')}`;
  }
  if (spec.matches !== undefined && (typeof value !== 'string' || !anchoredRegExp(spec.matches).test(value))) {
    return `${is}, expected a string matching ${spec.matches}`;
  }
  for (const { op, words, holds } of NUMERIC) {
    const limit = spec[op];
    if (limit === undefined) continue;
    if (typeof value !== 'number' || !Number.isFinite(value)) return `${is}, expected a number ${words} ${limit}`;
    if (!holds(value, limit)) return `${is}, expected ${words} ${limit}`;
  }
  if (spec.maxAge !== undefined) return ageFailure(spec.path, spec.maxAge, value, now);
  return undefined;
}

function ageFailure(path: string, maxAge: string, value: unknown, now: Date): string | undefined {
  const max = parseDuration(maxAge);
  if (max === undefined) return `maxAge "${maxAge}" is not a duration`;
  const time = typeof value === 'string' && RFC3339_RE.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(time)) return `${path} is ${describe(value)}, expected an RFC 3339 time (e.g. 2025-01-31T12:00:00Z)`;
  const age = now.getTime() - time;
  if (age < -FUTURE_SKEW_MS) return `${path} is ${formatAge(-age)} in the future (${value as string})`;
  if (age > max) return `${path} is ${formatAge(age)} old, max ${maxAge}`;
  return undefined;
}
