// What a rule asks of attestors, in the normalized forms selection, evaluation and lint share.
import type { AttestorRequirement, RuleSpec } from './types.ts';

/** `[a, b]` is "all of them"; `{anyOf, min}` is "at least min of them". `listPath` locates the names. */
export function requirementList(req: AttestorRequirement): {
  names: string[];
  min: number;
  all: boolean;
  listPath: string;
} {
  return Array.isArray(req)
    ? { names: req, min: req.length, all: true, listPath: '' }
    : { names: req.anyOf, min: req.min, all: false, listPath: '/anyOf' };
}

/** Every attestor a rule names, in document order, each once. */
export function referencedAttestors(rule: RuleSpec): string[] {
  const names = rule.requireAttestors === undefined ? [] : requirementList(rule.requireAttestors).names;
  return [...new Set([...names, ...(rule.attestations ?? []).map((a) => a.attestor)])];
}
