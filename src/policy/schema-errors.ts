// Turns ajv's schema errors into problems an admin can act on: a JSON pointer to the offending
// value and a sentence about it (`/rules/2/evaluationMode: must be one of alwaysAllow, …`).
import type { ErrorObject } from 'ajv';

export interface Problem {
  /** JSON pointer into the document, `''` for the document itself. */
  path: string;
  problem: string;
}

const TYPE_WORDS: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  integer: 'an integer',
  boolean: 'true or false',
  null: 'null',
};

export function pointerSegment(key: string | number): string {
  return String(key).replace(/~/g, '~0').replace(/\//g, '~1');
}

export function pointer(segments: readonly (string | number)[]): string {
  return segments.map((s) => `/${pointerSegment(s)}`).join('');
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string')
    return `the string ${JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value)}`;
  return `${typeof value} ${String(value)}`;
}

function list(values: readonly unknown[]): string {
  return values.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join(', ');
}

/** One problem per offending value; ajv may report several keywords for one value, the first wins. */
export function schemaProblems(errors: readonly ErrorObject[]): Problem[] {
  const problems = new Map<string, string>();
  for (const e of errors) {
    // A bad attestor or trust root name is reported once, by the propertyNames keyword itself.
    if (e.propertyName !== undefined) continue;
    const { path, problem } = describe(e);
    if (!problems.has(path)) problems.set(path, problem);
  }
  return [...problems].map(([path, problem]) => ({ path, problem }));
}

function describe(e: ErrorObject): Problem {
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return { path: `${e.instancePath}/${pointerSegment(params.missingProperty as string)}`, problem: 'is required' };
    case 'additionalProperties': {
      const allowed = Object.keys((e.parentSchema as { properties?: object } | undefined)?.properties ?? {});
      return {
        path: `${e.instancePath}/${pointerSegment(params.additionalProperty as string)}`,
        problem: `unknown field${allowed.length ? `; expected one of: ${allowed.join(', ')}` : ''}`,
      };
    }
    case 'false schema':
      return { path: e.instancePath, problem: 'is not allowed here' };
    case 'const':
      return {
        path: e.instancePath,
        problem: `must be ${JSON.stringify(params.allowedValue)} (got ${kindOf(e.data)})`,
      };
    case 'enum':
      return {
        path: e.instancePath,
        problem: `must be one of ${list(params.allowedValues as unknown[])} (got ${kindOf(e.data)})`,
      };
    case 'type': {
      const types = String(params.type)
        .split(',')
        .map((t) => TYPE_WORDS[t] ?? t);
      return { path: e.instancePath, problem: `must be ${types.join(' or ')} (got ${kindOf(e.data)})` };
    }
    case 'minProperties':
    case 'maxProperties': {
      // Used on mappings that take exactly one of their fields (a key: pem or file).
      const fields = Object.keys((e.parentSchema as { properties?: object } | undefined)?.properties ?? {});
      return { path: e.instancePath, problem: `give exactly one of ${fields.join(' or ')}` };
    }
    case 'minItems':
      return {
        path: e.instancePath,
        problem: `must list at least ${String(params.limit)} item${params.limit === 1 ? '' : 's'}`,
      };
    case 'minLength':
      return { path: e.instancePath, problem: 'must not be empty' };
    case 'pattern':
      return { path: e.instancePath, problem: `${kindOf(e.data)} must match ${String(params.pattern)}` };
    case 'propertyNames':
      return {
        path: `${e.instancePath}/${pointerSegment(params.propertyName as string)}`,
        problem: 'invalid name: use letters, digits, ".", "_" and "-", starting with a letter or digit',
      };
    default:
      return { path: e.instancePath, problem: e.message ?? `fails schema keyword ${e.keyword}` };
  }
}
