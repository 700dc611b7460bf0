// Every check a policy document goes through before it can be used: YAML, JSON Schema, meaning
// (references, counts, patterns, regular expressions, durations) and attestor compilation.
// Problems are collected, not thrown, so that lint can report all of them at once.
import { Ajv } from 'ajv';
import { parseDocument } from 'yaml';
import {
  AttestorConfigError,
  compileAttestor,
  DEFAULT_TRUST_ROOT,
  trustRootErrorPath,
  type CompiledAttestor,
} from '../verify/attestor.ts';
import { loadTrustRoot } from '../verify/trust-root.ts';
import { conditionProblems } from './conditions.ts';
import { GlobError, parseGlob } from './glob.ts';
import schema from './schema.json' with { type: 'json' };
import { pointer, schemaProblems, type Problem } from './schema-errors.ts';
import { requirementList } from './requirements.ts';
import type { PolicyDocument, RuleSpec } from './types.ts';

export type { Problem } from './schema-errors.ts';

export interface CheckedPolicy {
  /** Set once the document passed the schema (it may still have semantic problems). */
  doc: PolicyDocument | undefined;
  attestors: Map<string, CompiledAttestor>;
  problems: Problem[];
}

const validateSchema = new Ajv({
  allErrors: true,
  verbose: true,
  strict: true,
  allowUnionTypes: true,
}).compile<PolicyDocument>(schema);

export function checkPolicy(text: string, baseDir: string): CheckedPolicy {
  const attestors = new Map<string, CompiledAttestor>();
  const yaml = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (yaml.errors.length > 0) {
    return {
      doc: undefined,
      attestors,
      problems: yaml.errors.map((e) => ({
        path: '',
        problem: `not valid YAML: ${(e.message.split('\n')[0] ?? '').replace(/:$/, '')}`,
      })),
    };
  }
  let data: unknown;
  try {
    data = yaml.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return {
      doc: undefined,
      attestors,
      problems: [{ path: '', problem: `not valid YAML: ${(err as Error).message}` }],
    };
  }
  if (!validateSchema(data))
    return { doc: undefined, attestors, problems: schemaProblems(validateSchema.errors ?? []) };
  const doc = data;
  const problems = [
    ...compileAttestors(doc, baseDir, attestors),
    ...unusedTrustRootProblems(doc, baseDir),
    ...allowlistProblems(doc),
    ...ruleProblems(doc),
  ];
  return { doc, attestors, problems };
}

function compileAttestors(doc: PolicyDocument, baseDir: string, into: Map<string, CompiledAttestor>): Problem[] {
  const problems: Problem[] = [];
  const trustRoots = doc.trustRoots ?? {};
  for (const [name, spec] of Object.entries(doc.attestors ?? {})) {
    try {
      into.set(name, compileAttestor(name, spec, { baseDir, trustRoots }));
    } catch (err) {
      if (!(err instanceof AttestorConfigError)) throw err;
      problems.push({ path: pointer(err.path), problem: err.message });
    }
  }
  return problems;
}

/** Trust roots no attestor uses are still checked: a broken one must not wait for its first user. */
function unusedTrustRootProblems(doc: PolicyDocument, baseDir: string): Problem[] {
  const used = new Set(Object.values(doc.attestors ?? {}).map((a) => a.trustRoot ?? DEFAULT_TRUST_ROOT));
  return Object.entries(doc.trustRoots ?? {}).flatMap(([name, spec]) => {
    if (used.has(name)) return [];
    try {
      loadTrustRoot(spec, baseDir);
      return [];
    } catch (err) {
      const problem = `trust root "${name}": ${(err as Error).message}`;
      return [{ path: pointer(trustRootErrorPath(name, spec, err)), problem }];
    }
  });
}

function patternProblem(pattern: string, path: string): Problem[] {
  try {
    parseGlob(pattern);
    return [];
  } catch (err) {
    if (!(err instanceof GlobError)) throw err;
    return [{ path, problem: `pattern "${pattern}": ${err.message}` }];
  }
}

function allowlistProblems(doc: PolicyDocument): Problem[] {
  return (doc.allowlist ?? []).flatMap((pattern, i) => patternProblem(pattern, `/allowlist/${i}`));
}

function ruleProblems(doc: PolicyDocument): Problem[] {
  const problems = checkRule(doc, doc.defaultRule, '/defaultRule');
  const firstIndex = new Map<string, number>();
  (doc.rules ?? []).forEach((rule, i) => {
    const at = `/rules/${i}`;
    const earlier = firstIndex.get(rule.match);
    if (earlier !== undefined)
      problems.push({
        path: `${at}/match`,
        problem: `"${rule.match}" is already the match of /rules/${earlier}: merge the two rules`,
      });
    else firstIndex.set(rule.match, i);
    problems.push(...patternProblem(rule.match, `${at}/match`), ...checkRule(doc, rule, at));
  });
  return problems;
}

function checkRule(doc: PolicyDocument, rule: RuleSpec, at: string): Problem[] {
  const problems: Problem[] = [];
  const known = new Set(Object.keys(doc.attestors ?? {}));
  const unknown = (name: string, path: string): void => {
    if (known.has(name)) return;
    const names = [...known];
    problems.push({
      path,
      problem: `unknown attestor "${name}"; ${names.length ? `defined: ${names.join(', ')}` : 'define it under attestors'}`,
    });
  };
  if (rule.requireAttestors !== undefined) {
    const { names, min, all, listPath } = requirementList(rule.requireAttestors);
    const seen = new Set<string>();
    names.forEach((name, i) => {
      const path = `${at}/requireAttestors${listPath}/${i}`;
      unknown(name, path);
      if (seen.has(name)) problems.push({ path, problem: `attestor "${name}" is listed twice` });
      seen.add(name);
    });
    if (!all && (min < 1 || min > names.length)) {
      problems.push({
        path: `${at}/requireAttestors/min`,
        problem: `must be between 1 and ${names.length} (the number of attestors in anyOf), got ${min}`,
      });
    }
  }
  (rule.attestations ?? []).forEach((req, i) => {
    unknown(req.attestor, `${at}/attestations/${i}/attestor`);
    (req.conditions ?? []).forEach((cond, j) => {
      for (const { field, problem } of conditionProblems(cond))
        problems.push({ path: `${at}/attestations/${i}/conditions/${j}${field ? `/${field}` : ''}`, problem });
    });
  });
  if (
    rule.evaluationMode === 'requireAttestation' &&
    rule.requireAttestors === undefined &&
    (rule.attestations ?? []).length === 0
  ) {
    problems.push({
      path: `${at}/evaluationMode`,
      problem: 'requireAttestation needs requireAttestors or attestations (or both): name what must be verified',
    });
  }
  return problems;
}
