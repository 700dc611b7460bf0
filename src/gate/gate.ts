// The proxy's gate: a manifest is fetched once, judged on the digest of those bytes, and those
// bytes are served. Tags are pinned to the digest first admitted; blobs are served only as parts
// of admitted manifests; revocations and break-glass grants come from the shared store.
import { LRUCache } from 'lru-cache';
import { isNotFound, isTransient, RegistryError } from '../oci/errors.ts';
import { matchesDigest } from '../oci/digest.ts';
import { isDigest } from '../oci/reference.ts';
import {
  INDEX_MEDIA_TYPES,
  MediaType,
  type FetchedManifest,
  type ImageIndex,
  type ImageManifest,
} from '../oci/types.ts';
import type { Logger } from '../ops/log.ts';
import type { Metrics } from '../ops/metrics.ts';
import type { ImageRef } from '../policy/types.ts';
import type { Target } from '../proxy/route.ts';
import type { Upstreams } from '../proxy/upstreams.ts';
import type { AuditInput, Store } from '../store/types.ts';
import { imageName, type Decider, type Decision } from './decider.ts';
import { registryEvidenceSource } from './evidence-source.ts';
import type { EvidenceSource } from '../verify/source.ts';
import type { Revocations } from './revocations.ts';
import { tagAction } from './tags.ts';
import type { Gate, ManifestRequest } from './types.ts';

/** Layer media types that carry signatures or attestations, never a filesystem. */
const EVIDENCE_LAYER_TYPES = new Set<string>([
  MediaType.cosignSimpleSigning,
  MediaType.dsseEnvelope,
  MediaType.sigstoreBundleV03,
  'application/vnd.dev.sigstore.bundle+json;version=0.1',
  'application/vnd.dev.sigstore.bundle+json;version=0.2',
  'application/vnd.in-toto+json',
  'application/vnd.cncf.notary.signature',
  'application/jose+json',
  'application/cose',
]);
const EVIDENCE_TAG_RE = /^sha256-([a-f0-9]{64})(?:\.(?:sig|att|sbom))?$/;
/** The largest signature payload, envelope or bundle evidence discovery reads (src/verify). */
const EVIDENCE_BLOB_MAX_BYTES = 1024 * 1024;

export interface GateDeps {
  upstreams: Upstreams;
  decider: Decider;
  store: Store;
  revocations: Revocations;
  logger: Logger;
  metrics: Metrics;
  manifestMaxBytes: number;
  maxCached: number;
  staleGraceSeconds: number;
  now?: () => Date;
}

interface Parsed {
  manifest?: ImageManifest;
  index?: ImageIndex;
}

function parse(m: FetchedManifest): Parsed {
  const doc = JSON.parse(m.bytes.toString('utf8')) as ImageManifest & ImageIndex;
  return INDEX_MEDIA_TYPES.includes(m.mediaType) ? { index: doc } : { manifest: doc };
}

function denied(message: string, detail?: unknown): RegistryError {
  return new RegistryError('denied', 'DENIED', message, detail === undefined ? {} : { detail });
}

export class PolicyGate implements Gate {
  readonly #deps: GateDeps;
  /** `repo@digest` of manifests admitted by this process, mapped to the digest that admitted them (itself or its index). */
  readonly #admitted: LRUCache<string, string>;
  /** `repo@blob` known to belong to an admitted manifest (no size limit) or to admitted evidence (its declared size). */
  readonly #blobs: LRUCache<string, number>;
  readonly #running = new Map<string, Promise<FetchedManifest>>();

  constructor(deps: GateDeps) {
    this.#deps = deps;
    this.#admitted = new LRUCache<string, string>({ max: deps.maxCached });
    this.#blobs = new LRUCache<string, number>({ max: deps.maxCached });
  }

  /**
   * Requests for the same thing at the same time share one run: one upstream fetch, one decision,
   * one store write. The entry lives until the run is done, so a request arriving after the fetch
   * but before the manifest is stored does not fetch again.
   */
  #shared(key: string, run: () => Promise<FetchedManifest>): Promise<FetchedManifest> {
    const running = this.#running.get(key);
    if (running) return running;
    const p = run().finally(() => this.#running.delete(key));
    this.#running.set(key, p);
    return p;
  }

  #evidence(target: Target): EvidenceSource {
    return registryEvidenceSource(this.#deps.upstreams.client(target.upstream), this.#deps.manifestMaxBytes);
  }

  #fetch(target: Target, reference: string, accept: string | undefined): Promise<FetchedManifest> {
    return this.#deps.upstreams
      .client(target.upstream)
      .manifest(target.repository, reference, accept, this.#deps.manifestMaxBytes);
  }

  /** Forgets every cached admission and verdict (policy reload, revocation, trust change). */
  invalidate(): void {
    this.#admitted.clear();
    this.#blobs.clear();
    this.#deps.decider.invalidate();
  }

  async manifest(req: ManifestRequest): Promise<FetchedManifest> {
    const { target, reference, accept } = req;
    const key = `${target.upstream}/${target.repository}:${reference}|${accept ?? ''}`;
    return this.#shared(key, () =>
      isDigest(reference)
        ? this.#serveDigest(target, reference, undefined, accept)
        : this.#serveTag(target, reference, accept),
    );
  }

  async blob(target: Target, digest: string): Promise<{ maxBytes: number }> {
    const key = `${target.upstream}/${target.repository}@${digest}`;
    const known = this.#blobs.get(key);
    if (known !== undefined) return { maxBytes: known };
    if (await this.#deps.store.isBlobAdmitted(target.upstream, target.repository, digest)) {
      this.#blobs.set(key, Number.POSITIVE_INFINITY);
      return { maxBytes: Number.POSITIVE_INFINITY };
    }
    throw denied(
      `blob is not part of an admitted image: ${digest} in ${target.upstream}/${target.repository} belongs to no manifest this proxy admitted; pull the image's manifest through the proxy first`,
    );
  }

  async #serveTag(target: Target, tag: string, accept: string | undefined): Promise<FetchedManifest> {
    const { store } = this.#deps;
    const client = this.#deps.upstreams.client(target.upstream);
    const pin = await store.getPin(target.upstream, target.repository, tag);
    if (!pin) {
      const fetched = await this.#fetch(target, tag, accept);
      await this.#admit(target, fetched, tag);
      if (EVIDENCE_TAG_RE.test(tag)) return fetched; // signature tags are evidence, not images to pin
      const decision = this.#deps.decider.select({
        registry: target.upstream,
        repository: target.repository,
        tag,
        digest: fetched.digest,
      });
      const { pin: winner, created } = await store.createPin({
        upstream: target.upstream,
        repository: target.repository,
        tag,
        digest: fetched.digest,
        rule: decision.name,
        attestors: decision.attestors,
      });
      if (created) {
        await this.#audit({
          kind: 'pin',
          actor: 'proxy',
          upstream: target.upstream,
          repository: target.repository,
          tag,
          digest: fetched.digest,
          rule: decision.name,
        });
        return fetched;
      }
      // Another replica pinned this tag first: everyone serves its digest.
      if (winner.digest === fetched.digest) return fetched;
      return this.#serveDigest(target, winner.digest, tag, accept);
    }

    let upstreamDigest: string | undefined;
    try {
      upstreamDigest = await client.resolveTag(target.repository, tag, accept, this.#deps.manifestMaxBytes);
    } catch (err) {
      if (!(err instanceof RegistryError) || !(isTransient(err) || isNotFound(err))) throw err;
      this.#deps.logger.warn(
        { upstream: target.upstream, repository: target.repository, tag, pinned: pin.digest, error: err.message },
        'upstream cannot resolve the tag; serving the pin',
      );
    }
    const selected = this.#deps.decider.select({
      registry: target.upstream,
      repository: target.repository,
      tag,
      digest: pin.digest,
    });
    const action = tagAction(pin.digest, upstreamDigest, selected.tagMode);
    const where = `${target.upstream}/${target.repository}:${tag}`;
    switch (action.action) {
      case 'serve-pinned':
        if (action.drift) await this.#drift(target, tag, pin.digest, action.drift, 'pin');
        return this.#serveDigest(target, pin.digest, tag, accept);
      case 'deny-moved':
        await this.#drift(target, tag, action.from, action.to, 'deny');
        throw denied(
          `tag ${where} moved upstream from ${action.from} to ${action.to}; this rule refuses moved tags. An admin can approve the new digest with: pullgate pins approve ${where} ${action.to}`,
        );
      case 'try-follow': {
        let next: FetchedManifest;
        try {
          next = await this.#serveDigest(target, action.to, tag, accept);
        } catch (err) {
          if (!(err instanceof RegistryError)) throw err;
          await this.#drift(target, tag, action.from, action.to, 'follow');
          this.#deps.logger.warn(
            { tag: where, pinned: action.from, upstream: action.to, error: err.message },
            'tag moved to a digest that is not admitted; serving the pin',
          );
          return this.#serveDigest(target, pin.digest, tag, accept);
        }
        if (
          await this.#deps.store.movePin(
            target.upstream,
            target.repository,
            tag,
            action.from,
            action.to,
            selected.name,
            selected.attestors,
          )
        ) {
          this.#deps.logger.info({ tag: where, from: action.from, to: action.to }, 'pin followed the tag');
          await this.#audit({
            kind: 'repin',
            actor: 'proxy',
            upstream: target.upstream,
            repository: target.repository,
            tag,
            digest: action.to,
            rule: selected.name,
            detail: { from: action.from },
          });
        }
        return next;
      }
    }
  }

  async #drift(target: Target, tag: string, pinned: string, moved: string, mode: string): Promise<void> {
    const { event, isNew } = await this.#deps.store.recordDrift(target.upstream, target.repository, tag, pinned, moved);
    this.#deps.metrics.events.inc({ event: 'drift' });
    this.#deps.logger.warn(
      {
        image: `${target.upstream}/${target.repository}:${tag}`,
        pinned,
        upstream: moved,
        mode,
        drift: event.id,
        seen: event.count,
      },
      'tag drift: upstream tag moved away from the pin',
    );
    if (isNew) {
      await this.#audit({
        kind: 'drift',
        actor: 'proxy',
        upstream: target.upstream,
        repository: target.repository,
        tag,
        digest: moved,
        detail: { pinned, mode, drift: event.id },
      });
    }
  }

  /** The admitted manifest for a digest: stored bytes if the proxy has them, else fetched and judged. */
  async #serveDigest(
    target: Target,
    digest: string,
    tag: string | undefined,
    accept: string | undefined,
  ): Promise<FetchedManifest> {
    const stored = await this.#deps.store.getManifest(digest);
    if (stored && !matchesDigest(stored.bytes, digest)) {
      throw new RegistryError(
        'internal',
        'UNAVAILABLE',
        `the proxy's stored copy of ${digest} does not match its digest; the store has been tampered with or corrupted`,
      );
    }
    const fetched = stored ?? (await this.#fetch(target, digest, accept));
    await this.#admit(target, fetched, tag ?? digest);
    return fetched;
  }

  /** Admits `fetched` for serving or throws DENIED. `reference` is what the client asked for. */
  async #admit(target: Target, fetched: FetchedManifest, reference: string): Promise<void> {
    const { store } = this.#deps;
    const repoKey = `${target.upstream}/${target.repository}`;
    const parsed = parse(fetched);
    const image: ImageRef = {
      registry: target.upstream,
      repository: target.repository,
      digest: fetched.digest,
      ...(isDigest(reference) ? {} : { tag: reference }),
    };

    const revoked = this.#deps.revocations.get(fetched.digest);
    if (revoked) {
      this.#deps.metrics.events.inc({ event: 'revoked-hit' });
      throw denied(
        `${imageName(image)} was revoked by ${revoked.actor} at ${revoked.at.toISOString()}: ${revoked.reason}`,
        { digest: fetched.digest, revoked: true },
      );
    }

    const subject = evidenceSubject(reference, parsed);
    if (subject !== undefined) {
      if (!(await this.#isAdmitted(target, subject))) {
        throw denied(
          `${repoKey}:${reference} is signature or attestation data for ${subject}, which has not been admitted: pull the image itself through the proxy first`,
        );
      }
      // Evidence admits only its own small signature layers, in this process, each no larger than
      // a signature can be: an index under an evidence tag admits none of the manifests it lists,
      // and a fake signature manifest cannot name an image layer into the admitted set.
      for (const layer of parsed.manifest?.layers ?? []) {
        if (
          typeof layer.digest === 'string' &&
          Number.isSafeInteger(layer.size) &&
          layer.size <= EVIDENCE_BLOB_MAX_BYTES
        ) {
          this.#blobs.set(`${repoKey}@${layer.digest}`, layer.size);
        }
      }
      return;
    }

    // A platform manifest of an admitted index (admitted here, or by another replica).
    const parent =
      this.#admitted.get(`${repoKey}@${fetched.digest}`) ??
      (await store.admittedParent(target.upstream, target.repository, fetched.digest));
    if (parent !== undefined && parent !== fetched.digest && (await this.#stillAdmitted(target, parent))) {
      await this.#record(target, fetched, parsed);
      return;
    }

    const decision = await this.#deps.decider.decide(image, this.#evidence(target));
    if (decision.verdict.verdict !== 'allow') {
      await this.#refused(target, fetched, parsed, image, decision);
      return;
    }
    if (!decision.cached) {
      await this.#audit(auditOf(decision));
      await this.#record(target, fetched, parsed);
    } else if (parent === undefined) {
      await this.#record(target, fetched, parsed);
    }
  }

  /** A deny stands unless the digest was admitted before and only the evidence is unreachable, or a break-glass grant covers it. */
  async #refused(
    target: Target,
    fetched: FetchedManifest,
    parsed: Parsed,
    image: ImageRef,
    decision: Decision,
  ): Promise<void> {
    const { store, metrics, logger } = this.#deps;
    const now = this.#deps.now?.() ?? new Date();
    if (decision.failure === 'transient') {
      const admitted = await store.isAdmitted(target.upstream, target.repository, fetched.digest);
      if (admitted && now.getTime() - admitted.admittedAt.getTime() <= this.#deps.staleGraceSeconds * 1000) {
        metrics.events.inc({ event: 'stale-serve' });
        logger.warn(
          { image: imageName(image), admittedAt: admitted.admittedAt, reasons: decision.verdict.reasons },
          'stale serve: evidence unreachable, serving a digest admitted before',
        );
        // Not recorded again: a stale serve must not renew the grace period it is living on.
        await this.#audit({ kind: 'stale-serve', actor: 'proxy', ...refOf(image), reasons: decision.verdict.reasons });
        return;
      }
    }
    const grant = await store.findGrant(target.upstream, target.repository, fetched.digest, now);
    if (grant) {
      metrics.events.inc({ event: 'break-glass' });
      logger.warn(
        {
          image: imageName(image),
          grant: grant.id,
          reason: grant.reason,
          expiresAt: grant.expiresAt,
          policyReasons: decision.verdict.reasons,
        },
        'break-glass grant admits a denied image',
      );
      await this.#audit({
        kind: 'grant-use',
        actor: grant.actor,
        ...refOf(image),
        reasons: decision.verdict.reasons,
        detail: { grant: grant.id, grantReason: grant.reason },
      });
      await this.#record(target, fetched, parsed);
      return;
    }
    if (!decision.cached && decision.failure === undefined) await this.#audit(auditOf(decision));
    const v = decision.verdict;
    throw denied(`${imageName(image)} denied by policy (${v.rule}): ${v.reasons.join('; ')}`, {
      rule: v.rule,
      digest: image.digest,
      reasons: v.reasons,
    });
  }

  /**
   * Whether an index that once admitted its platform manifests still would: not revoked, and
   * allowed by the current policy (usually a cached verdict) or by a valid break-glass grant.
   */
  async #stillAdmitted(target: Target, index: string): Promise<boolean> {
    if (this.#deps.revocations.get(index)) return false;
    const image: ImageRef = { registry: target.upstream, repository: target.repository, digest: index };
    const decision = await this.#deps.decider.decide(image, this.#evidence(target));
    if (decision.verdict.verdict === 'allow') return true;
    return (
      (await this.#deps.store.findGrant(
        target.upstream,
        target.repository,
        index,
        this.#deps.now?.() ?? new Date(),
      )) !== undefined
    );
  }

  async #isAdmitted(target: Target, digest: string): Promise<boolean> {
    if (this.#admitted.has(`${target.upstream}/${target.repository}@${digest}`)) return true;
    return (await this.#deps.store.isAdmitted(target.upstream, target.repository, digest)) !== undefined;
  }

  /** Stores the admitted bytes and what they admit: their blobs, and for an index its platform manifests. */
  async #record(target: Target, fetched: FetchedManifest, parsed: Parsed): Promise<void> {
    const repoKey = `${target.upstream}/${target.repository}`;
    const blobs = blobsOf(parsed);
    const children = (parsed.index?.manifests ?? []).flatMap((d) => (typeof d.digest === 'string' ? [d.digest] : []));
    await this.#deps.store.putManifest({ digest: fetched.digest, mediaType: fetched.mediaType, bytes: fetched.bytes });
    await this.#deps.store.admit(target.upstream, target.repository, fetched.digest, blobs, children);
    this.#admitted.set(
      `${repoKey}@${fetched.digest}`,
      this.#admitted.get(`${repoKey}@${fetched.digest}`) ?? fetched.digest,
    );
    for (const child of children) this.#admitted.set(`${repoKey}@${child}`, fetched.digest);
    for (const blob of blobs) this.#blobs.set(`${repoKey}@${blob}`, Number.POSITIVE_INFINITY);
  }

  /** Each record's hash also goes to the log: an anchor outside the database for `audit verify`. */
  async #audit(e: AuditInput): Promise<void> {
    const record = await this.#deps.store.appendAudit(e);
    this.#deps.logger.info(
      { seq: record.seq, kind: record.kind, digest: record.digest, hash: record.hash },
      'audit record',
    );
  }
}

/** The config and layer blobs a manifest references (none for an index). */
function blobsOf(parsed: Parsed): string[] {
  const m = parsed.manifest;
  if (!m) return [];
  return [m.config, ...(Array.isArray(m.layers) ? m.layers : [])].flatMap((d) =>
    d && typeof d.digest === 'string' ? [d.digest] : [],
  );
}

function refOf(image: ImageRef): Partial<Pick<AuditInput, 'upstream' | 'repository' | 'tag' | 'digest'>> {
  return {
    upstream: image.registry,
    repository: image.repository,
    digest: image.digest,
    ...(image.tag ? { tag: image.tag } : {}),
  };
}

function auditOf(d: Decision): AuditInput {
  const v = d.verdict;
  const kind = v.verdict === 'deny' ? 'deny' : v.judgement === 'deny' ? 'dryrun-deny' : 'allow';
  return {
    kind,
    actor: 'policy',
    ...refOf(d.image),
    rule: v.rule,
    reasons: v.reasons,
    detail: { mode: v.enforcementMode, ms: Math.round(d.ms) },
  };
}

/**
 * The image digest a signature or attestation manifest belongs to, when the manifest is pure
 * evidence (every layer a signature/attestation type; an index only as the referrers fallback tag).
 */
function evidenceSubject(reference: string, parsed: Parsed): string | undefined {
  const tag = EVIDENCE_TAG_RE.exec(reference);
  if (parsed.index) {
    // The referrers tag-schema index: harmless to serve, its entries are gated when fetched.
    return tag && !reference.includes('.') ? `sha256:${tag[1]}` : undefined;
  }
  const m = parsed.manifest;
  if (!m || !Array.isArray(m.layers) || m.layers.length === 0) return undefined;
  if (!m.layers.every((l) => EVIDENCE_LAYER_TYPES.has(l.mediaType))) return undefined;
  if (tag) return `sha256:${tag[1]}`;
  return m.subject?.digest;
}
