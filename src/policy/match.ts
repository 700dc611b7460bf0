// Which part of the policy governs an image: an allowlist entry, else the most specific matching
// rule, else the default rule. Pure; the per-policy preparation (parsed patterns in precedence
// order, rule hashes) is computed once per compiled policy and kept beside it.
import { EMBEDDED_SOURCE, type CompiledPolicy } from './load.ts';
import { compareSpecificity, globMatches, parseGlob, type Glob } from './glob.ts';
import { referencedAttestors } from './requirements.ts';
import { ruleHash } from './rule-hash.ts';
import type { EnforcementMode, ImageRef, RuleSpec, TagMode } from './types.ts';

export { globMatch } from './glob.ts';

export interface SelectedRule {
  /** `allowlist:<pattern>`, `rule:<match>` or `default`. */
  name: string;
  /** null for an allowlist entry. */
  rule: RuleSpec | null;
  ruleHash: string;
  /** Attestors whose evidence must be verified to evaluate the rule (none unless requireAttestation). */
  attestors: string[];
  tagMode: TagMode;
  enforcementMode: EnforcementMode;
  /** Why an alwaysDeny rule denies, when the policy has more to say than the mode itself. */
  message?: string;
}

/** Tags pinned to the first admitted digest unless a rule says otherwise. */
export const DEFAULT_TAG_MODE: TagMode = 'pin';
/** Allowlisted images need no evidence, so a moved tag is simply followed (see docs/policy.md). */
export const ALLOWLIST_TAG_MODE: TagMode = 'follow';

const EMBEDDED_MESSAGE =
  'no policy is configured: pullgate runs its embedded fail-closed policy, which denies every image; ' +
  'write a policy (docs/policy.md) and set policy.file in the configuration';

interface Candidate {
  glob: Glob;
  selected: SelectedRule;
}

interface Prepared {
  allowlist: Candidate[];
  /** Image rules, most specific first (ties: document order). */
  rules: Candidate[];
  fallback: SelectedRule;
}

const prepared = new WeakMap<CompiledPolicy, Prepared>();

function prepare(policy: CompiledPolicy): Prepared {
  const specs = policy.doc.attestors ?? {};
  const forRule = (name: string, rule: RuleSpec): SelectedRule => ({
    name,
    rule,
    ruleHash: ruleHash(name, rule, specs, policy.attestors),
    attestors: rule.evaluationMode === 'requireAttestation' ? referencedAttestors(rule) : [],
    tagMode: rule.tagMode ?? DEFAULT_TAG_MODE,
    enforcementMode: rule.enforcementMode ?? 'enforce',
  });
  const allowlist = (policy.doc.allowlist ?? []).map((pattern) => {
    const name = `allowlist:${pattern}`;
    return {
      glob: parseGlob(pattern),
      selected: {
        name,
        rule: null,
        ruleHash: ruleHash(name, null, specs, policy.attestors),
        attestors: [],
        tagMode: ALLOWLIST_TAG_MODE,
        enforcementMode: 'enforce' as const,
      },
    };
  });
  const rules = (policy.doc.rules ?? [])
    .map((rule, index) => ({ glob: parseGlob(rule.match), selected: forRule(`rule:${rule.match}`, rule), index }))
    .sort((a, b) => compareSpecificity(a.glob, b.glob) || a.index - b.index);
  const fallback = forRule('default', policy.doc.defaultRule);
  if (policy.source === EMBEDDED_SOURCE) fallback.message = EMBEDDED_MESSAGE;
  return { allowlist, rules, fallback };
}

/** `image` must be normalized (`docker.io/library/nginx`, not `nginx`). */
export function selectRule(policy: CompiledPolicy, image: ImageRef): SelectedRule {
  let p = prepared.get(policy);
  if (!p) {
    p = prepare(policy);
    prepared.set(policy, p);
  }
  // A pull by tag is matched as `registry/repository:tag`, a pull by digest as `registry/repository@digest`.
  const subject = { name: `${image.registry}/${image.repository}`, tag: image.tag };
  const hit =
    p.allowlist.find((c) => globMatches(c.glob, subject)) ?? p.rules.find((c) => globMatches(c.glob, subject));
  const selected = hit?.selected ?? p.fallback;
  return { ...selected, attestors: [...selected.attestors] };
}
