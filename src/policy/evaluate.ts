// The policy's judgement on one image: facts in, verdict out. Pure: no I/O, and the only clock is
// `now`. Reasons explain the judgement: what satisfied the rule, or what is missing and why.
import { conditionFailure } from './conditions.ts';
import type { SelectedRule } from './match.ts';
import { requirementList } from './requirements.ts';
import type {
  AttestationRequirement,
  AttestorFacts,
  AttestorRequirement,
  Verdict,
  VerdictKind,
  VerifiedEvidence,
} from './types.ts';

/** How many rejections or candidates a reason spells out before summarizing the rest. */
const MAX_LISTED = 3;

interface Judgement {
  judgement: VerdictKind;
  reasons: string[];
}

export function evaluate(selected: SelectedRule, facts: ReadonlyMap<string, AttestorFacts>, now: Date): Verdict {
  const { judgement, reasons } = judge(selected, facts, now);
  const dryRunDeny = judgement === 'deny' && selected.enforcementMode === 'dryrun';
  return {
    verdict: dryRunDeny ? 'allow' : judgement,
    judgement,
    enforcementMode: selected.enforcementMode,
    rule: selected.name,
    ruleHash: selected.ruleHash,
    tagMode: selected.tagMode,
    reasons: dryRunDeny ? reasons.map((r) => `dry-run: would deny: ${r}`) : reasons,
  };
}

function ruleLabel(name: string): string {
  return name === 'default' ? 'the default rule' : `rule "${name.replace(/^rule:/, '')}"`;
}

function judge(selected: SelectedRule, facts: ReadonlyMap<string, AttestorFacts>, now: Date): Judgement {
  const { rule } = selected;
  if (rule === null)
    return {
      judgement: 'allow',
      reasons: [`allowlisted by "${selected.name.replace(/^allowlist:/, '')}": no evidence required`],
    };
  switch (rule.evaluationMode) {
    case 'alwaysAllow':
      return {
        judgement: 'allow',
        reasons: [`${ruleLabel(selected.name)} admits every image it governs (alwaysAllow)`],
      };
    case 'alwaysDeny':
      return {
        judgement: 'deny',
        reasons: [selected.message ?? `${ruleLabel(selected.name)} denies every image it governs (alwaysDeny)`],
      };
    case 'requireAttestation': {
      const results = [
        ...(rule.requireAttestors === undefined ? [] : [signaturesResult(rule.requireAttestors, facts)]),
        ...(rule.attestations ?? []).map((req) => attestationResult(req, facts.get(req.attestor), now)),
      ];
      const failed = results.filter((r) => !r.ok);
      return failed.length > 0
        ? { judgement: 'deny', reasons: failed.flatMap((r) => r.reasons) }
        : { judgement: 'allow', reasons: results.flatMap((r) => r.reasons) };
    }
  }
}

interface Result {
  ok: boolean;
  reasons: string[];
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function evidenceCount(n: number): string {
  return n === 1 ? '1 signature or attestation' : `${n} signatures or attestations`;
}

function listSome(items: readonly string[]): string {
  const shown = items.slice(0, MAX_LISTED).join('; ');
  return items.length > MAX_LISTED ? `${shown}; and ${items.length - MAX_LISTED} more` : shown;
}

function describeEvidence(e: VerifiedEvidence): string {
  return `${e.signer}, ${e.source}`;
}

/** An attestor is satisfied by a verified signature over the image; a verified attestation alone is not one. */
function signatureOf(f: AttestorFacts | undefined): VerifiedEvidence | undefined {
  return f?.verified.find((e) => e.kind === 'signature');
}

function signaturesResult(req: AttestorRequirement, facts: ReadonlyMap<string, AttestorFacts>): Result {
  const { names, min, all } = requirementList(req);
  const satisfied = names.filter((n) => signatureOf(facts.get(n)) !== undefined);
  if (satisfied.length >= min) {
    return {
      ok: true,
      reasons: satisfied.map(
        (n) =>
          `attestor "${n}": signature verified (${describeEvidence(signatureOf(facts.get(n)) as VerifiedEvidence)})`,
      ),
    };
  }
  const missing = names.filter((n) => !satisfied.includes(n)).map((n) => missingSignature(n, facts.get(n)));
  if (all) return { ok: false, reasons: missing };
  const got = satisfied.length > 0 ? ` (${satisfied.map((n) => `"${n}"`).join(', ')})` : '';
  const summary = `signatures from at least ${min} of ${names.map((n) => `"${n}"`).join(', ')} required, ${satisfied.length} found${got}`;
  return { ok: false, reasons: [summary, ...missing] };
}

function missingSignature(name: string, f: AttestorFacts | undefined): string {
  const label = `attestor "${name}"`;
  if (f === undefined) return `${label}: evidence was not verified for it`;
  if (f.examined === 0) return `${label}: no signatures or attestations found for this image`;
  const rejected = f.rejected.length > 0 ? `: ${listSome(f.rejected)}` : '';
  const attestations = f.verified.length;
  if (attestations > 0) {
    return `${label}: ${plural(attestations, 'attestation')} verified but no signature (an attestation does not count as a signature: sign the image too)${rejected}`;
  }
  return `${label}: ${evidenceCount(f.examined)} found, none verified${rejected}`;
}

function attestationResult(req: AttestationRequirement, f: AttestorFacts | undefined, now: Date): Result {
  const label = `attestation ${req.predicateType} by "${req.attestor}"`;
  const candidates = (f?.verified ?? []).filter((e) => e.predicateType === req.predicateType);
  if (candidates.length === 0) return { ok: false, reasons: [`${label}: ${noAttestation(f)}`] };
  const checked = candidates.map((e) => ({
    e,
    failures: (req.conditions ?? []).flatMap((c) => conditionFailure(c, e.predicate, now) ?? []),
  }));
  const passing = checked.find((c) => c.failures.length === 0);
  if (passing) {
    const met = req.conditions?.length ? `, ${plural(req.conditions.length, 'condition')} met` : '';
    return { ok: true, reasons: [`${label}: verified${met} (${describeEvidence(passing.e)})`] };
  }
  if (checked.length === 1)
    return { ok: false, reasons: [`${label}: ${(checked[0] as (typeof checked)[0]).failures.join('; ')}`] };
  const each = checked.map((c) => `${c.e.source}: ${c.failures.join(', ')}`);
  return {
    ok: false,
    reasons: [`${label}: none of ${checked.length} verified attestations meets the conditions: ${listSome(each)}`],
  };
}

function noAttestation(f: AttestorFacts | undefined): string {
  if (f === undefined) return 'evidence was not verified for this attestor';
  if (f.examined === 0) return 'none found: the image has no signatures or attestations';
  const others = [...new Set(f.verified.map((e) => e.predicateType ?? e.kind))];
  const verified = others.length > 0 ? `; verified for it: ${others.join(', ')}` : '';
  const rejected = f.rejected.length > 0 ? `; rejected: ${listSome(f.rejected)}` : '';
  return `none verified (${evidenceCount(f.examined)} examined${verified}${rejected})`;
}
