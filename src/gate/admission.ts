// Admission as data: how a digest came to be served (or why not), and what follows from that.
// The gate's steps produce an Admission; `effectsOf` turns it into the writes, counts and log
// lines it implies (pure, tested by a table); the gate applies them in one place.
import { denied, RegistryError } from '../oci/errors.ts';
import { EVIDENCE_LAYER_TYPES, parseEvidenceTag } from '../oci/evidence.ts';
import { INDEX_MEDIA_TYPES, type FetchedManifest, type ImageIndex, type ImageManifest } from '../oci/types.ts';
import type { ImageRef } from '../policy/types.ts';
import type { AuditInput, Grant, Revocation } from '../store/types.ts';
import { imageName, type Decision } from './decider.ts';
import { DEFAULT_WIDTH_LIMITS, type WidthLimits } from './limits.ts';
import type { ClientInfo } from './types.ts';

/** A fetched manifest, read once as the kind of document its media type says it is. */
export interface Parsed {
  manifest?: ImageManifest;
  index?: ImageIndex;
}

/**
 * The manifest's document, parsed once per request. A manifest wider than the limits is refused
 * before anything is derived from it (blob rows, permits, children): a 4 MiB manifest holds tens of
 * thousands of descriptors, each of which would otherwise become a row, a cache entry and a string.
 */
export function parseManifest(m: FetchedManifest, limits: WidthLimits = DEFAULT_WIDTH_LIMITS): Parsed {
  // The client checked that these bytes are a schema 2 JSON document of this media type, and hands
  // on what it parsed; stored manifests are parsed here.
  const doc = (m.doc ?? JSON.parse(m.bytes.toString('utf8'))) as ImageManifest & ImageIndex;
  const isIndex = INDEX_MEDIA_TYPES.includes(m.mediaType);
  const width = isIndex ? doc.manifests : doc.layers;
  const [limit, key, what] = isIndex
    ? [limits.indexMaxManifests, 'limits.indexMaxManifests', 'manifests']
    : [limits.manifestMaxLayers, 'limits.manifestMaxLayers', 'layers'];
  if (Array.isArray(width) && width.length > limit) {
    throw new RegistryError(
      'denied',
      'MANIFEST_INVALID',
      `manifest ${m.digest} lists ${width.length} ${what}, more than the ${limit} this proxy accepts (${key})`,
    );
  }
  return isIndex ? { index: doc } : { manifest: doc };
}

export type Admission =
  /** The policy allows it now (a cached verdict, or evidence verified now). */
  | { admit: true; via: 'policy'; decision: Decision }
  /** A platform manifest of an index that is admitted now. */
  | { admit: true; via: 'index'; index: string }
  /** The policy denies it, but a valid break-glass grant covers it. */
  | { admit: true; via: 'grant'; decision: Decision; grant: Grant }
  /** Its evidence is unreachable, and it was admitted within the stale grace period. */
  | { admit: true; via: 'stale'; decision: Decision; admittedAt: Date }
  /** Signature or attestation data of an image admitted now. */
  | { admit: true; via: 'evidence'; subject: string }
  | { admit: false; why: 'revoked'; revocation: Revocation }
  | { admit: false; why: 'policy'; decision: Decision }
  | { admit: false; why: 'evidence-of-unadmitted'; subject: string }
  /** Asked of a digest the repository never admitted (a blob's permit, an index's child). */
  | { admit: false; why: 'never-admitted' };

export type Admitted = Extract<Admission, { admit: true }>;
export type Refused = Extract<Admission, { admit: false }>;

export type GateEvent = 'drift' | 'stale-serve' | 'break-glass' | 'revoked-hit';

export type Effect =
  /** Store the manifest and its admission (blobs, children, the tag it was pulled by). */
  | { kind: 'record' }
  /** Let this process serve the evidence manifest's own small layers. */
  | { kind: 'evidence-blobs'; subject: string }
  /** The client asks for the image's blobs next: what fetches the uncached ones may get ready now. */
  | { kind: 'expect-blobs' }
  | { kind: 'audit'; entry: AuditInput }
  | { kind: 'count'; event: GateEvent }
  /** A refused pull of an image (for the per-image deny counter). */
  | { kind: 'denied'; reason: 'policy' | 'revoked' }
  | { kind: 'log'; level: 'info' | 'warn'; msg: string; fields: Record<string, unknown> };

export interface EffectContext {
  image: ImageRef;
  /** This process wrote the admission recently: a cached verdict need not write it again. */
  recordedRecently: boolean;
  /** Who asked; goes into the records the request causes. */
  client?: ClientInfo;
  /** A refused pull of a revoked digest is due to be audited (they are rate-limited). */
  revokedAuditDue?: boolean;
}

/** What an admission implies. Pure. */
export function effectsOf(a: Admission, ctx: EffectContext): Effect[] {
  // First, so that getting ready runs beside the writes that follow, not after them.
  if (a.admit && a.via !== 'evidence') return [{ kind: 'expect-blobs' }, ...effectsOfJudgement(a, ctx)];
  return effectsOfJudgement(a, ctx);
}

function effectsOfJudgement(a: Admission, ctx: EffectContext): Effect[] {
  const { image } = ctx;
  const record: Effect[] = ctx.recordedRecently ? [] : [{ kind: 'record' }];
  const client = clientDetail(ctx.client);
  if (a.admit) {
    switch (a.via) {
      case 'policy':
        return a.decision.cached
          ? record
          : [{ kind: 'audit', entry: decisionAudit(a.decision, ctx.client) }, { kind: 'record' }];
      case 'index':
        return record;
      case 'grant':
        return [
          { kind: 'count', event: 'break-glass' },
          {
            kind: 'log',
            level: 'warn',
            msg: 'break-glass grant admits a denied image',
            fields: {
              image: imageName(image),
              grant: a.grant.id,
              reason: a.grant.reason,
              expiresAt: a.grant.expiresAt,
              policyReasons: a.decision.verdict.reasons,
            },
          },
          {
            kind: 'audit',
            entry: {
              kind: 'grant-use',
              actor: a.grant.actor,
              ...refOf(image),
              reasons: a.decision.verdict.reasons,
              detail: { grant: a.grant.id, grantReason: a.grant.reason, policy: a.decision.policyVersion, ...client },
            },
          },
          ...record,
        ];
      case 'stale':
        // Not recorded again: a stale serve must not renew the grace period it is living on.
        return [
          { kind: 'count', event: 'stale-serve' },
          {
            kind: 'log',
            level: 'warn',
            msg: 'stale serve: evidence unreachable, serving a digest admitted before',
            fields: { image: imageName(image), admittedAt: a.admittedAt, reasons: a.decision.verdict.reasons },
          },
          {
            kind: 'audit',
            entry: {
              kind: 'stale-serve',
              actor: 'proxy',
              ...refOf(image),
              reasons: a.decision.verdict.reasons,
              detail: { admittedAt: a.admittedAt.toISOString(), policy: a.decision.policyVersion, ...client },
            },
          },
        ];
      case 'evidence':
        return [{ kind: 'evidence-blobs', subject: a.subject }];
    }
  }
  switch (a.why) {
    case 'revoked':
      return [
        { kind: 'count', event: 'revoked-hit' },
        { kind: 'denied', reason: 'revoked' },
        ...(ctx.revokedAuditDue
          ? [
              {
                kind: 'audit' as const,
                entry: {
                  kind: 'revoked-pull' as const,
                  actor: 'proxy',
                  ...refOf(image),
                  reasons: [a.revocation.reason],
                  detail: { revokedBy: a.revocation.actor, revokedAt: a.revocation.at.toISOString(), ...client },
                },
              },
            ]
          : []),
      ];
    case 'policy':
      // A failure to check is logged by the decider; only judgements go into the audit trail.
      return !a.decision.cached && a.decision.failure === undefined
        ? [
            { kind: 'audit', entry: decisionAudit(a.decision, ctx.client) },
            { kind: 'denied', reason: 'policy' },
          ]
        : [{ kind: 'denied', reason: 'policy' }];
    case 'evidence-of-unadmitted':
    case 'never-admitted':
      return [];
  }
}

/** The error a refused pull answers with: what was refused, why, and what to do. */
export function refusal(
  a: Refused,
  image: ImageRef,
  where: string,
  opts: { byDigestManifest?: boolean } = {},
): RegistryError {
  switch (a.why) {
    case 'revoked':
      return denied(
        `${imageName(image)} was revoked by ${a.revocation.actor} at ${a.revocation.at.toISOString()}: ${a.revocation.reason}`,
        { digest: image.digest, revoked: true },
      );
    case 'policy': {
      const v = a.decision.verdict;
      // A platform manifest pulled by digest carries no signature of its own when its index is the
      // one signed: the proxy admits it through the index, which it has to have seen.
      const hint =
        opts.byDigestManifest && v.reasons.some((r) => r.includes('no signatures or attestations found'))
          ? '. If this is one platform of a signed multi-arch image, pull the image by its tag or index digest through the proxy first: platform manifests are admitted through their signed index'
          : '';
      return denied(`${imageName(image)} denied by policy (${v.rule}): ${v.reasons.join('; ')}${hint}`, {
        rule: v.rule,
        digest: image.digest,
        reasons: v.reasons,
      });
    }
    case 'evidence-of-unadmitted':
      return denied(
        `${where} is signature or attestation data for ${a.subject}, which is not admitted: pull the image itself through the proxy first`,
      );
    case 'never-admitted':
      return denied(`${imageName(image)} was never admitted in ${image.registry}/${image.repository}`);
  }
}

/** A one-line account of a refusal, for a blob whose manifest is no longer admitted. */
export function refusalReason(a: Refused): string {
  switch (a.why) {
    case 'revoked':
      return `revoked by ${a.revocation.actor}: ${a.revocation.reason}`;
    case 'policy':
      return `denied by policy (${a.decision.verdict.rule}): ${a.decision.verdict.reasons.join('; ')}`;
    case 'evidence-of-unadmitted':
      return `evidence of ${a.subject}, which is not admitted`;
    case 'never-admitted':
      return 'never admitted here';
  }
}

/**
 * The image digest a signature or attestation manifest belongs to, when the manifest is pure
 * evidence (every layer a signature/attestation type; an index only as the referrers fallback tag).
 */
export function evidenceSubject(reference: string, parsed: Parsed): string | undefined {
  const tag = parseEvidenceTag(reference);
  if (parsed.index) {
    // The referrers tag-schema index: harmless to serve, its entries are gated when fetched.
    return tag?.kind === 'index' ? tag.digest : undefined;
  }
  const m = parsed.manifest;
  if (!m || !Array.isArray(m.layers) || m.layers.length === 0) return undefined;
  if (!m.layers.every((l) => l && EVIDENCE_LAYER_TYPES.has(l.mediaType))) return undefined;
  if (tag) return tag.digest;
  return typeof m.subject?.digest === 'string' ? m.subject.digest : undefined;
}

/** The config and layer blobs a manifest references (none for an index). */
export function blobsOf(parsed: Parsed): string[] {
  const m = parsed.manifest;
  if (!m) return [];
  return [m.config, ...(Array.isArray(m.layers) ? m.layers : [])].flatMap((d) =>
    d && typeof d.digest === 'string' ? [d.digest] : [],
  );
}

/** The platform manifests an index lists. */
export function childrenOf(parsed: Parsed): string[] {
  const manifests = parsed.index?.manifests;
  return (Array.isArray(manifests) ? manifests : []).flatMap((d) =>
    d && typeof d.digest === 'string' ? [d.digest] : [],
  );
}

export function refOf(image: ImageRef): Partial<Pick<AuditInput, 'upstream' | 'repository' | 'tag' | 'digest'>> {
  return {
    upstream: image.registry,
    repository: image.repository,
    digest: image.digest,
    ...(image.tag ? { tag: image.tag } : {}),
  };
}

export function decisionAudit(d: Decision, client?: ClientInfo): AuditInput {
  const v = d.verdict;
  const kind = v.verdict === 'deny' ? 'deny' : v.judgement === 'deny' ? 'dryrun-deny' : 'allow';
  return {
    kind,
    actor: 'policy',
    ...refOf(d.image),
    rule: v.rule,
    reasons: v.reasons,
    detail: { mode: v.enforcementMode, ms: Math.round(d.ms), policy: d.policyVersion, ...clientDetail(client) },
  };
}

/** The client fields of a record: only what is known. */
function clientDetail(client: ClientInfo | undefined): { client?: ClientInfo } {
  if (!client) return {};
  const known: ClientInfo = {
    ...(client.address ? { address: client.address } : {}),
    ...(client.userAgent ? { userAgent: client.userAgent.slice(0, 200) } : {}),
    ...(client.identity ? { identity: client.identity } : {}),
  };
  return Object.keys(known).length > 0 ? { client: known } : {};
}

/** One step of a decision as `pullgate check --explain` prints it. */
export interface Step {
  step: 'pin' | 'revocation' | 'evidence' | 'index' | 'policy' | 'stale' | 'grant';
  outcome: string;
}

/** The steps an admission went through, in order, up to the one that settled it. Pure. */
export function explainAdmission(a: Admission): Step[] {
  const steps: Step[] = [];
  if (!a.admit && a.why === 'revoked') {
    return [
      {
        step: 'revocation',
        outcome: `revoked by ${a.revocation.actor} at ${a.revocation.at.toISOString()}: ${a.revocation.reason}`,
      },
    ];
  }
  steps.push({ step: 'revocation', outcome: 'not revoked' });
  if ((a.admit && a.via === 'evidence') || (!a.admit && a.why === 'evidence-of-unadmitted')) {
    steps.push({
      step: 'evidence',
      outcome: a.admit
        ? `signature or attestation data of ${a.subject}, which is admitted now: served without a decision of its own`
        : `signature or attestation data of ${a.subject}, which is not admitted: refused`,
    });
    return steps;
  }
  if (a.admit && a.via === 'index') {
    steps.push({ step: 'index', outcome: `a platform manifest of index ${a.index}, which is admitted now` });
    return steps;
  }
  if (!a.admit && a.why === 'never-admitted') {
    steps.push({ step: 'policy', outcome: 'never admitted in this repository' });
    return steps;
  }
  steps.push({ step: 'index', outcome: 'no admitted index lists it' });
  const d = a.decision;
  const v = d.verdict;
  const how = `${d.cached ? 'cached verdict' : 'verified now'}, policy ${d.policyVersion.slice(0, 12)}`;
  const judged =
    v.verdict === 'allow' && v.judgement === 'deny'
      ? `rule ${v.rule} (dry run) would deny, so it is served: ${v.reasons.join('; ')}`
      : `rule ${v.rule} ${v.verdict === 'allow' ? 'allows' : 'denies'}: ${v.reasons.join('; ')}`;
  steps.push({ step: 'policy', outcome: `${judged} (${how})` });
  if (a.admit && a.via === 'policy') return steps;
  steps.push({
    step: 'stale',
    outcome:
      a.admit && a.via === 'stale'
        ? `evidence unreachable; admitted before, at ${a.admittedAt.toISOString()}, within the stale grace period: served`
        : d.failure === 'transient'
          ? 'evidence unreachable, and not admitted within the stale grace period'
          : 'not applicable: the policy judged the evidence',
  });
  if (a.admit && a.via === 'stale') return steps;
  steps.push({
    step: 'grant',
    outcome:
      a.admit && a.via === 'grant'
        ? `break-glass grant ${a.grant.id} by ${a.grant.actor} until ${a.grant.expiresAt.toISOString()}: ${a.grant.reason}`
        : 'no valid break-glass grant',
  });
  return steps;
}
