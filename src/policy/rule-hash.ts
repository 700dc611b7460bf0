// The identity of what a verdict depends on: the rule, the attestors it names (their specs, the
// keys actually loaded, the trust roots actually loaded). A verdict cache keyed by it goes stale
// exactly when one of them changes, including a key or trusted_root.json file edited in place.
import { createHash } from 'node:crypto';
import type { CompiledAttestor } from '../verify/attestor.ts';
import { referencedAttestors } from './requirements.ts';
import type { AttestorSpec, RuleSpec } from './types.ts';

/** JSON with object keys sorted at every level and no whitespace. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * What an attestor contributes to a hash: its spec and what it loaded from files (key ids, the
 * trust root's content digest, the PKI's CA and intermediate certificates, the Notation trust
 * material's digest).
 */
export function attestorFingerprint(spec: AttestorSpec | undefined, compiled: CompiledAttestor | undefined): unknown {
  return {
    spec,
    keys: compiled?.keys.map((k) => k.id),
    trustRoot: compiled?.trustRoot.digest,
    notation: compiled?.notation?.digest,
    pki: compiled?.pki?.digest,
  };
}

export function ruleHash(
  name: string,
  rule: RuleSpec | null,
  attestorSpecs: Record<string, AttestorSpec>,
  attestors: ReadonlyMap<string, CompiledAttestor>,
): string {
  const named = rule === null ? [] : referencedAttestors(rule);
  const fingerprints = Object.fromEntries(
    named.map((n) => [
      n,
      attestorFingerprint(Object.hasOwn(attestorSpecs, n) ? attestorSpecs[n] : undefined, attestors.get(n)),
    ]),
  );
  return sha256Hex(canonicalJson({ name, rule, attestors: fingerprints }));
}
