// The proxy's gate: a manifest is fetched once, judged on the digest of those bytes, and those
// bytes are served. Tags are pinned to the digest first admitted; a blob is served only while a
// manifest listing it is admitted now; revocations and break-glass grants come from the shared
// store. Admission is a sequence of small steps that return an Admission (admission.ts); its
// effects are applied in one place, `#apply`.
import type { BlobStore } from '../blobs/store.ts';
import type { BlobBody } from '../blobs/types.ts';
import { memoryBody } from '../blobs/memory-body.ts';
import { acceptedManifestTypes } from '../oci/accept.ts';
import { matchesDigest } from '../oci/digest.ts';
import { denied, isNotFound, isTransient, RegistryError } from '../oci/errors.ts';
import { EVIDENCE_BLOB_MAX_BYTES, parseEvidenceTag } from '../oci/evidence.ts';
import { isDigest } from '../oci/reference.ts';
import type { FetchedManifest, ImageIndex } from '../oci/types.ts';
import type { Upstreams } from '../oci/upstreams.ts';
import type { Logger } from '../ops/log.ts';
import type { Metrics } from '../ops/metrics.ts';
import type { ImageRef } from '../policy/types.ts';
import type { AuditInput, Pin, Store } from '../store/types.ts';
import type { EvidenceSource } from '../verify/source.ts';
import { Lru } from '../util/lru.ts';
import { SingleFlight } from '../util/single-flight.ts';
import {
  blobsOf,
  childrenOf,
  effectsOf,
  evidenceSubject,
  parseManifest,
  explainAdmission,
  refusal,
  refusalReason,
  type Admission,
  type Admitted,
  type Effect,
  type Parsed,
  type Step,
} from './admission.ts';
import { DEFAULT_TAG_LIST_MAX_TAGS, type WidthLimits } from './limits.ts';
import { blobOrigin } from '../blobs/upstream-origin.ts';
import type { DecideOptions, Decider } from './decider.ts';
import { evidenceBindingProblem } from './evidence-blobs.ts';
import { registryEvidenceSource } from './evidence-source.ts';
import { TagRechecks } from './rechecks.ts';
import type { Revocations } from './revocations.ts';
import { pageOfScan, TagListScanner } from './tag-list.ts';
import { tagAction } from './tags.ts';
import type { ClientInfo, Explanation, Gate, ManifestRequest, Repo, TagPage } from './types.ts';

const LIST_MAX_BYTES = 16 * 1024 * 1024;
/** A blob's permit is derived again this often: the inputs (verdicts, grants) are cached below it. */
const PERMIT_TTL_MS = 5_000;
/** A cached verdict re-writes a manifest's admission at most this often per process. */
const RECORD_REFRESH_MS = 60_000;
/** A cached pin is read again after this long even without an event: a backstop for lost notifications. */
const PIN_TTL_MS = 10_000;
/** Manifests examined for one blob's permit: a layer shared by more images needs only one admitted. */
const MANIFESTS_PER_BLOB = 8;
/** Default of limits.driftAuditSeconds: drift of one tag is written at most this often. */
const DRIFT_AUDIT_SECONDS = 3600;

export interface GateDeps {
  upstreams: Upstreams;
  decider: Decider;
  store: Store;
  revocations: Revocations;
  blobs: BlobStore;
  logger: Logger;
  metrics: Metrics;
  manifestMaxBytes: number;
  /** The widest manifest and index accepted (limits.manifestMaxLayers, limits.indexMaxManifests). */
  widths?: WidthLimits;
  /** Drift of one tag is audited at most once per this many seconds (limits.driftAuditSeconds). */
  driftAuditSeconds?: number;
  /** Valid tags read from one upstream tag list (limits.tagListMaxTags). */
  tagListMaxTags?: number;
  maxCached: number;
  staleGraceSeconds: number;
  /** A pinned tag is asked of its upstream at most once per this many seconds. */
  tagRecheckSeconds: number;
  now?: () => Date;
}

/** What makes a blob servable now. */
type Permit =
  { kind: 'image'; manifest: string } | { kind: 'evidence'; subject: string; mediaType: string; size: number };

interface EvidenceLayer {
  subject: string;
  mediaType: string;
  size: number;
}

const key = (repo: Repo, digest: string): string => `${repo.upstream}/${repo.repository}@${digest}`;

/** One manifest request as the gate works on it: where, which manifest types, for whom. */
interface Rq {
  repo: Repo;
  /** The canonical Accept list (oci/accept.ts). */
  accept: string;
  client: ClientInfo;
  /**
   * Aborts when every client waiting for this run has left: upstream reads of the manifest stop.
   * Judging does not take it: a verdict half-reached is still worth caching (bounded by deadlines).
   */
  signal?: AbortSignal;
}

/** A refused pull of a revoked digest is audited at most this often per repository and digest. */
const REVOKED_AUDIT_MS = 60_000;

/** What a pull of a tag that moved under a `tagMode: deny` rule is told (and `pullgate check` says). */
function movedTagRefusal(tagKey: string, from: string, to: string): string {
  return `tag ${tagKey} moved upstream from ${from} to ${to}; this rule refuses moved tags. An admin can approve the new digest with: pullgate pins approve ${tagKey} ${to}`;
}

export class PolicyGate implements Gate {
  readonly #deps: GateDeps;
  readonly #flights = new SingleFlight<FetchedManifest>();
  /** `repo@child` → the index that admitted it, for children admitted by this process. */
  readonly #parents: Lru<string, string>;
  /** `repo@digest` → when this process last wrote its admission. */
  readonly #recorded: Lru<string, number>;
  /** `repo@blob` → the evidence layer this process may serve it as (never an image layer's permit). */
  readonly #evidenceLayers: Lru<string, EvidenceLayer>;
  readonly #permits: Lru<string, Permit>;
  /** Pins read from the store, by tag: a pinned tag is answered without a query. Dropped on pin events. */
  readonly #pins: Lru<string, Pin>;
  readonly #rechecks: TagRechecks;
  /** `repo@digest` → when a refused pull of it, revoked, was last audited. */
  readonly #revokedAudited: Lru<string, number>;
  /** `repo:tag` → when drift of it was last written to the store (recorded or opened). */
  readonly #driftWritten: Lru<string, number>;

  constructor(deps: GateDeps) {
    this.#deps = deps;
    this.#parents = new Lru({ max: deps.maxCached });
    this.#recorded = new Lru({ max: deps.maxCached });
    this.#evidenceLayers = new Lru({ max: deps.maxCached });
    this.#permits = new Lru({ max: deps.maxCached, ttl: PERMIT_TTL_MS });
    this.#pins = new Lru({ max: deps.maxCached, ttl: PIN_TTL_MS });
    this.#rechecks = new TagRechecks(deps.tagRecheckSeconds * 1000, deps.maxCached);
    this.#revokedAudited = new Lru({ max: 10_000 });
    this.#driftWritten = new Lru({ max: deps.maxCached });
  }

  /** A pin changed (here or on another replica): forget it; without a tag, forget them all. */
  pinChanged(e: { upstream?: string; repository?: string; tag?: string }): void {
    // A new pin starts a new drift history: its first drift is recorded whatever the rate limit.
    if (e.upstream && e.repository && e.tag) {
      this.#pins.delete(`${e.upstream}/${e.repository}:${e.tag}`);
      this.#driftWritten.delete(`${e.upstream}/${e.repository}:${e.tag}`);
    } else {
      this.#pins.clear();
      this.#driftWritten.clear();
    }
  }

  /** Forgets every cached permit and verdict (policy reload, revocation, grant change). */
  invalidate(): void {
    this.#permits.clear();
    this.#deps.decider.invalidate();
  }

  async manifest(req: ManifestRequest): Promise<FetchedManifest> {
    const { repo, reference } = req;
    const accept = acceptedManifestTypes(req.accept).join(', ');
    return this.#flights.run(
      `${key(repo, reference)}|${accept}`,
      async (signal) => {
        const rq: Rq = { repo, accept, client: req.client ?? {}, signal };
        const m = isDigest(reference)
          ? await this.#serveDigest(rq, reference, undefined)
          : await this.#serveTag(rq, reference);
        // The parsed document served admission; the answer is the bytes, which a slow client may
        // hold for a while: the parsed form (several times their size) is not kept with them.
        return { bytes: m.bytes, mediaType: m.mediaType, digest: m.digest };
      },
      req.signal,
    );
  }

  async blob(repo: Repo, digest: string): Promise<BlobBody> {
    const permit = await this.#permit(repo, digest);
    const client = this.#deps.upstreams.client(repo.upstream);
    if (permit.kind === 'image') return this.#deps.blobs.open(digest, blobOrigin(client, repo.repository, digest));
    // Evidence is small: read whole (bounded by its declared size), checked, from memory.
    const bytes = await client.smallBlob(repo.repository, digest, permit.size);
    if (bytes.length !== permit.size) {
      throw denied(
        `blob ${digest} is admitted as ${permit.size} bytes of evidence, but the upstream has ${bytes.length}`,
      );
    }
    const problem = evidenceBindingProblem(permit.mediaType, bytes, permit.subject);
    if (problem) throw denied(`blob ${digest} is listed as evidence for ${permit.subject}, but it ${problem}`);
    return memoryBody(digest, bytes);
  }

  async blobSize(repo: Repo, digest: string): Promise<number | undefined> {
    const permit = await this.#permit(repo, digest);
    if (permit.kind === 'evidence') return permit.size;
    const client = this.#deps.upstreams.client(repo.upstream);
    return this.#deps.blobs.size(digest, blobOrigin(client, repo.repository, digest));
  }

  async tags(repo: Repo, page: { n?: number; last?: string }, signal?: AbortSignal): Promise<TagPage> {
    const query = new URLSearchParams();
    if (page.n !== undefined) query.set('n', String(page.n));
    if (page.last !== undefined) query.set('last', page.last);
    const client = this.#deps.upstreams.client(repo.upstream);
    // Scanned as it arrives: a list of up to LIST_MAX_BYTES is never held whole nor scanned in one
    // go, and reading stops as soon as it is refused (invalid, or over limits.tagListMaxTags).
    const maxTags = this.#deps.tagListMaxTags ?? DEFAULT_TAG_LIST_MAX_TAGS;
    const scanner = new TagListScanner(maxTags);
    const res = await client.tags(repo.repository, query, LIST_MAX_BYTES, (piece) => !!scanner.write(piece), signal);
    return pageOfScan(scanner.end(), `${repo.upstream}/${repo.repository}`, page, res.link, maxTags);
  }

  async referrers(repo: Repo, digest: string, artifactType?: string, signal?: AbortSignal): Promise<ImageIndex> {
    const client = this.#deps.upstreams.client(repo.upstream);
    const { index } = await client.referrers(repo.repository, digest, LIST_MAX_BYTES, signal);
    return artifactType
      ? { ...index, manifests: index.manifests.filter((d) => d.artifactType === artifactType) }
      : index;
  }

  /**
   * What the proxy would serve for a reference now, and why, step by step: the same steps a pull
   * takes, without any of its writes (no pin is created or moved, no verdict cached, nothing is
   * recorded, audited or counted).
   */
  async explain(repo: Repo, reference: string): Promise<Explanation> {
    const name = `${repo.upstream}/${repo.repository}${isDigest(reference) ? '@' : ':'}${reference}`;
    const accept = acceptedManifestTypes(undefined).join(', ');
    if (isDigest(reference)) return this.#explainDigest(repo, name, reference, undefined, [], accept);
    const tag = reference;
    const tagKey = `${repo.upstream}/${repo.repository}:${tag}`;
    const pin = await this.#deps.store.getPin(repo.upstream, repo.repository, tag);
    if (!pin) {
      const fetched = await this.#fetch(repo, tag, accept);
      const steps: Step[] = [
        {
          step: 'pin',
          outcome: `not pinned yet: the upstream tag points at ${fetched.digest}, which the first pull pins if admitted`,
        },
      ];
      return this.#explainDigest(repo, name, fetched.digest, tag, steps, accept);
    }
    const selected = this.#deps.decider.select({
      registry: repo.upstream,
      repository: repo.repository,
      tag,
      digest: pin.digest,
    });
    const pinned = `tag pinned to ${pin.digest} since ${pin.updatedAt.toISOString()} (tag mode ${selected.tagMode})`;
    if (selected.tagMode === 'pin') {
      // The pin is served whatever the upstream says: what this replica saw last is a note, not a step.
      const seen = this.#rechecks.last(tagKey);
      const moved = seen?.digest !== undefined && seen.digest !== pin.digest ? seen.digest : undefined;
      const note = moved
        ? `; the upstream tag was last seen at ${moved}, ${new Date(seen?.at ?? 0).toISOString()}`
        : '';
      return this.#explainDigest(repo, name, pin.digest, tag, [{ step: 'pin', outcome: pinned + note }], accept);
    }
    // deny and follow: a pull asks the upstream where the tag points, so the explanation does too (read-only).
    const upstream = await this.#peekTag(repo, tag, accept);
    const action = tagAction(pin.digest, upstream, selected.tagMode);
    const steps: Step[] = [
      {
        step: 'pin',
        outcome: `${pinned}; the upstream tag points at ${upstream ?? 'nothing it can tell now (unreachable or gone): the pin is served'}`,
      },
    ];
    switch (action.action) {
      case 'serve-pinned':
        return this.#explainDigest(repo, name, pin.digest, tag, steps, accept);
      case 'deny-moved': {
        const message = movedTagRefusal(tagKey, action.from, action.to);
        return { image: name, digest: pin.digest, served: false, message, steps, reasons: [message] };
      }
      case 'try-follow': {
        const next = await this.#explainDigest(
          repo,
          name,
          action.to,
          tag,
          [
            ...steps,
            { step: 'pin', outcome: `the tag moved: a pull judges ${action.to} and moves the pin if admitted` },
          ],
          accept,
        );
        if (next.served) return { ...next, message: `serves ${action.to} (a pull moves the pin from ${action.from})` };
        steps.push({
          step: 'pin',
          outcome: `the tag moved to ${action.to}, which is refused (${next.message}): a pull keeps serving the pin`,
        });
        return this.#explainDigest(repo, name, pin.digest, tag, steps, accept);
      }
    }
  }

  /** The explanation of serving `digest` (asked as `name`), after the steps that led to it. */
  async #explainDigest(
    repo: Repo,
    name: string,
    digest: string,
    tag: string | undefined,
    steps: Step[],
    accept: string,
  ): Promise<Explanation> {
    const manifest = (await this.#deps.store.getManifest(digest)) ?? (await this.#fetch(repo, digest, accept));
    const image: ImageRef = { registry: repo.upstream, repository: repo.repository, digest, ...(tag ? { tag } : {}) };
    const admission = await this.#judge(repo, image, parseManifest(manifest, this.#deps.widths), tag ?? digest, {
      record: false,
    });
    steps = [...steps, ...explainAdmission(admission)];
    if (admission.admit) {
      const reasons = 'decision' in admission ? admission.decision.verdict.reasons : [];
      return { image: name, digest, served: true, message: `serves ${digest}`, steps, reasons };
    }
    const err = refusal(admission, image, name);
    return {
      image: name,
      digest,
      served: false,
      message: err.message,
      steps,
      reasons: admission.why === 'policy' ? admission.decision.verdict.reasons : [err.message],
      ...(admission.why === 'policy' ? { rule: admission.decision.verdict.rule } : {}),
    };
  }

  /** Where the upstream tag points now, asked without touching this replica's re-check state. */
  async #peekTag(repo: Repo, tag: string, accept: string): Promise<string | undefined> {
    try {
      return await this.#deps.upstreams
        .client(repo.upstream)
        .resolveTag(repo.repository, tag, accept, this.#deps.manifestMaxBytes);
    } catch (err) {
      if (isTransient(err) || isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * Judges a digest the repository admitted again, with evidence fetched now (keys rotated, a scan
   * past its maxAge, a signature removed), in the context it was pulled by. Undefined for what is
   * not judged on its own: revoked digests (already withdrawn) and platform manifests (they follow
   * their index). No side effects but the refreshed verdict cache.
   */
  async revalidate(repo: Repo, digest: string, tag: string | undefined): Promise<Admission | undefined> {
    if (this.#deps.revocations.get(digest)) return undefined;
    if (await this.#throughIndex(repo, digest, 0)) return undefined;
    return this.#byPolicy(
      repo,
      { registry: repo.upstream, repository: repo.repository, digest, ...(tag ? { tag } : {}) },
      { fresh: true },
    );
  }

  // ---- Manifests -------------------------------------------------------------------------

  async #serveTag(rq: Rq, tag: string): Promise<FetchedManifest> {
    const { repo, accept } = rq;
    const { store, decider } = this.#deps;
    const tagKey = `${repo.upstream}/${repo.repository}:${tag}`;
    let pin = this.#pins.get(tagKey);
    if (!pin) {
      pin = await store.getPin(repo.upstream, repo.repository, tag);
      if (!pin) return this.#firstPull(rq, tag);
      this.#pins.set(tagKey, pin);
    }

    const selected = decider.select({ registry: repo.upstream, repository: repo.repository, tag, digest: pin.digest });
    const seen = this.#rechecks.last(tagKey);
    let upstreamDigest = seen?.digest;
    let fresh = false;
    if (this.#rechecks.claim(tagKey, Date.now())) {
      if (selected.tagMode === 'pin') {
        // The pin is the answer whatever the upstream says: ask it without making the client wait.
        void this.#recheckPinned(repo, tag, pin.digest, accept);
      } else {
        upstreamDigest = (await this.#resolve(repo, tag, pin.digest, accept, rq.signal)) ?? upstreamDigest;
        fresh = true;
      }
    }
    if (fresh && upstreamDigest === pin.digest)
      await this.#driftResolved(repo, tag, pin.digest, 'the upstream tag is back at the pin');
    const refused = !fresh && seen?.refused === true && seen.digest === upstreamDigest;
    const action = tagAction(pin.digest, refused ? undefined : upstreamDigest, selected.tagMode);
    switch (action.action) {
      case 'serve-pinned':
        return this.#serveDigest(rq, pin.digest, tag);
      case 'deny-moved':
        if (fresh) await this.#drift(repo, tag, action.from, action.to, 'deny');
        this.#deps.metrics.deniedPull(`${repo.upstream}/${repo.repository}`, 'moved-tag');
        throw denied(movedTagRefusal(tagKey, action.from, action.to));
      case 'try-follow': {
        let next: FetchedManifest;
        try {
          next = await this.#serveDigest(rq, action.to, tag);
        } catch (err) {
          if (!(err instanceof RegistryError)) throw err;
          this.#rechecks.refuse(tagKey, action.to);
          await this.#drift(repo, tag, action.from, action.to, 'follow');
          this.#deps.logger.warn(
            { tag: tagKey, pinned: action.from, upstream: action.to, error: err.message },
            'tag moved to a digest that is not admitted; serving the pin',
          );
          return this.#serveDigest(rq, pin.digest, tag);
        }
        if (
          await store.movePin(
            repo.upstream,
            repo.repository,
            tag,
            action.from,
            action.to,
            selected.name,
            selected.attestors,
            {
              kind: 'repin',
              actor: 'proxy',
              upstream: repo.upstream,
              repository: repo.repository,
              tag,
              digest: action.to,
              rule: selected.name,
              detail: { from: action.from },
            },
          )
        ) {
          this.#deps.logger.info({ tag: tagKey, from: action.from, to: action.to }, 'pin followed the tag');
          // The pin reached what the upstream says: the drift that asked for it is over.
          await this.#driftResolved(repo, tag, action.to, 'the pin followed the tag');
        }
        return next;
      }
    }
  }

  /** A tag never pulled before: fetched, judged, and pinned to what was judged (first writer wins across replicas). */
  async #firstPull(rq: Rq, tag: string): Promise<FetchedManifest> {
    const { repo, accept } = rq;
    const fetched = await this.#fetch(repo, tag, accept, rq.signal);
    this.#rechecks.observe(`${repo.upstream}/${repo.repository}:${tag}`, fetched.digest, Date.now());
    await this.#admitOrThrow(rq, fetched, tag);
    if (parseEvidenceTag(tag)) return fetched; // signature tags are evidence, not images to pin
    const selected = this.#deps.decider.select({
      registry: repo.upstream,
      repository: repo.repository,
      tag,
      digest: fetched.digest,
    });
    const { pin: winner, created } = await this.#deps.store.createPin(
      {
        upstream: repo.upstream,
        repository: repo.repository,
        tag,
        digest: fetched.digest,
        rule: selected.name,
        attestors: selected.attestors,
      },
      {
        kind: 'pin',
        actor: 'proxy',
        upstream: repo.upstream,
        repository: repo.repository,
        tag,
        digest: fetched.digest,
        rule: selected.name,
      },
    );
    if (created) return fetched;
    // Another replica pinned this tag first: everyone serves its digest.
    return winner.digest === fetched.digest ? fetched : this.#serveDigest(rq, winner.digest, tag);
  }

  /** What the upstream tag points at now; undefined when the upstream cannot say (it is down, the tag is gone). */
  async #resolve(
    repo: Repo,
    tag: string,
    pinned: string,
    accept: string,
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    const client = this.#deps.upstreams.client(repo.upstream);
    try {
      const digest = await client.resolveTag(repo.repository, tag, accept, this.#deps.manifestMaxBytes, signal);
      this.#rechecks.observe(`${repo.upstream}/${repo.repository}:${tag}`, digest, Date.now());
      return digest;
    } catch (err) {
      if (signal?.aborted || (!isTransient(err) && !isNotFound(err))) throw err;
      this.#deps.logger.warn(
        { upstream: repo.upstream, repository: repo.repository, tag, pinned, error: (err as Error).message },
        'upstream cannot resolve the tag; serving the pin',
      );
      return undefined;
    }
  }

  async #recheckPinned(repo: Repo, tag: string, pinned: string, accept: string): Promise<void> {
    try {
      const now = await this.#resolve(repo, tag, pinned, accept);
      if (now !== undefined && now !== pinned) await this.#drift(repo, tag, pinned, now, 'pin');
      else if (now === pinned) await this.#driftResolved(repo, tag, pinned, 'the upstream tag is back at the pin');
    } catch (err) {
      this.#deps.logger.warn(
        { upstream: repo.upstream, repository: repo.repository, tag, error: (err as Error).message },
        'tag re-check failed',
      );
    }
  }

  async #drift(repo: Repo, tag: string, pinned: string, moved: string, mode: string): Promise<void> {
    // An upstream whose tag answers a new digest on every request must not write a drift record and
    // an audit record per pull: one drift write per tag per interval, the rest are counted and logged.
    const tagKey = `${repo.upstream}/${repo.repository}:${tag}`;
    const last = this.#driftWritten.get(tagKey);
    const interval = (this.#deps.driftAuditSeconds ?? DRIFT_AUDIT_SECONDS) * 1000;
    if (last !== undefined && Date.now() - last < interval) {
      this.#deps.metrics.events.inc({ event: 'drift-rate-limited' });
      this.#deps.logger.debug(
        { image: tagKey, pinned, upstream: moved, mode },
        'tag drift seen again within limits.driftAuditSeconds; not recorded',
      );
      return;
    }
    this.#driftWritten.set(tagKey, Date.now());
    const { event } = await this.#deps.store.recordDrift(repo.upstream, repo.repository, tag, pinned, moved, (e) => ({
      kind: 'drift',
      actor: 'proxy',
      upstream: repo.upstream,
      repository: repo.repository,
      tag,
      digest: moved,
      detail: { pinned, mode, drift: e.id },
    }));
    this.#deps.metrics.events.inc({ event: 'drift' });
    this.#deps.logger.warn(
      {
        image: `${repo.upstream}/${repo.repository}:${tag}`,
        pinned,
        upstream: moved,
        mode,
        drift: event.id,
        seen: event.count,
      },
      'tag drift: upstream tag moved away from the pin',
    );
  }

  /** Closes a tag's open drift records: the pin and the upstream agree again. */
  async #driftResolved(repo: Repo, tag: string, digest: string, why: string): Promise<void> {
    const ids = await this.#deps.store.resolveTagDrift(repo.upstream, repo.repository, tag, (resolved) => ({
      kind: 'drift',
      actor: 'proxy',
      upstream: repo.upstream,
      repository: repo.repository,
      tag,
      digest,
      reasons: [why],
      detail: { resolved },
    }));
    if (ids.length > 0) {
      this.#deps.logger.info(
        { image: `${repo.upstream}/${repo.repository}:${tag}`, digest, resolved: ids, why },
        'tag drift resolved',
      );
    }
  }

  /** The admitted manifest for a digest: stored bytes if the proxy has them, else fetched and judged. */
  async #serveDigest(rq: Rq, digest: string, tag: string | undefined): Promise<FetchedManifest> {
    const { repo, accept } = rq;
    const stored = await this.#deps.store.getManifest(digest);
    if (stored && !matchesDigest(stored.bytes, digest)) {
      throw new RegistryError(
        'internal',
        'UNAVAILABLE',
        `the proxy's stored copy of ${digest} does not match its digest; the store has been tampered with or corrupted`,
      );
    }
    const fetched = stored ?? (await this.#fetch(repo, digest, accept, rq.signal));
    await this.#admitOrThrow(rq, fetched, tag ?? digest);
    return fetched;
  }

  #fetch(repo: Repo, reference: string, accept: string, signal?: AbortSignal): Promise<FetchedManifest> {
    return this.#deps.upstreams
      .client(repo.upstream)
      .manifest(repo.repository, reference, accept, this.#deps.manifestMaxBytes, signal);
  }

  // ---- Admission -------------------------------------------------------------------------

  /** Judges `fetched` as asked for by `reference`, applies what follows, and throws if it is refused. */
  async #admitOrThrow(rq: Rq, fetched: FetchedManifest, reference: string): Promise<void> {
    const { repo } = rq;
    const parsed = parseManifest(fetched, this.#deps.widths);
    const image: ImageRef = {
      registry: repo.upstream,
      repository: repo.repository,
      digest: fetched.digest,
      ...(isDigest(reference) ? {} : { tag: reference }),
    };
    const admission = await this.#judge(repo, image, parsed, reference);
    const recordedAt = this.#recorded.get(key(repo, fetched.digest));
    const recordedRecently = recordedAt !== undefined && Date.now() - recordedAt < RECORD_REFRESH_MS;
    const revokedAuditDue =
      admission.admit === false && admission.why === 'revoked' && this.#revokedAuditDue(key(repo, fetched.digest));
    await this.#apply(effectsOf(admission, { image, recordedRecently, client: rq.client, revokedAuditDue }), {
      repo,
      image,
      fetched,
      parsed,
    });
    if (!admission.admit) {
      throw refusal(admission, image, `${repo.upstream}/${repo.repository}:${reference}`, {
        byDigestManifest: isDigest(reference) && parsed.manifest !== undefined,
      });
    }
  }

  /** The steps of admitting a fetched manifest, in order: revocation, evidence, index, policy. */
  async #judge(
    repo: Repo,
    image: ImageRef,
    parsed: Parsed,
    reference: string,
    opts: DecideOptions = {},
  ): Promise<Admission> {
    const revocation = this.#deps.revocations.get(image.digest);
    if (revocation) return { admit: false, why: 'revoked', revocation };
    const subject = evidenceSubject(reference, parsed);
    if (subject !== undefined) {
      const of = await this.#admittedNow(repo, subject, 0, opts);
      return of.admit
        ? { admit: true, via: 'evidence', subject }
        : { admit: false, why: 'evidence-of-unadmitted', subject };
    }
    const throughIndex = await this.#throughIndex(repo, image.digest, 0, opts);
    return throughIndex ?? this.#byPolicy(repo, image, opts);
  }

  /** A platform manifest admitted now because an index listing it is. */
  async #throughIndex(
    repo: Repo,
    digest: string,
    depth: number,
    opts: DecideOptions = {},
  ): Promise<Admitted | undefined> {
    if (depth > 0) return undefined; // an index of indexes admits nothing through its grandchildren
    const parent =
      this.#parents.get(key(repo, digest)) ??
      (await this.#deps.store.admittedParent(repo.upstream, repo.repository, digest));
    if (parent === undefined || parent === digest) return undefined;
    return (await this.#admittedNow(repo, parent, depth + 1, opts)).admit
      ? { admit: true, via: 'index', index: parent }
      : undefined;
  }

  /** The policy's verdict, and the two things that may still admit a digest it refuses: staleness and grants. */
  async #byPolicy(repo: Repo, image: ImageRef, opts: DecideOptions = {}): Promise<Admission> {
    const { store, decider } = this.#deps;
    const decision = await decider.decide(image, this.#evidence(repo), opts);
    if (decision.verdict.verdict === 'allow') return { admit: true, via: 'policy', decision };
    const now = this.#deps.now?.() ?? new Date();
    if (decision.failure === 'transient') {
      const admitted = await store.isAdmitted(repo.upstream, repo.repository, image.digest);
      if (admitted && now.getTime() - admitted.admittedAt.getTime() <= this.#deps.staleGraceSeconds * 1000) {
        return { admit: true, via: 'stale', decision, admittedAt: admitted.admittedAt };
      }
    }
    const grant = await store.findGrant(repo.upstream, repo.repository, image.digest, now);
    if (grant) return { admit: true, via: 'grant', decision, grant };
    return { admit: false, why: 'policy', decision };
  }

  /**
   * Whether a digest the repository admitted before would be admitted now: not revoked, and its
   * index, the current policy (in the context it was pulled in) or a grant admits it. No side effects.
   */
  async #admittedNow(repo: Repo, digest: string, depth = 0, opts: DecideOptions = {}): Promise<Admission> {
    const revocation = this.#deps.revocations.get(digest);
    if (revocation) return { admit: false, why: 'revoked', revocation };
    const throughIndex = await this.#throughIndex(repo, digest, depth, opts);
    if (throughIndex) return throughIndex;
    const own = await this.#deps.store.getAdmission(repo.upstream, repo.repository, digest);
    if (!own) return { admit: false, why: 'never-admitted' };
    return this.#byPolicy(
      repo,
      { registry: repo.upstream, repository: repo.repository, digest, ...(own.tag ? { tag: own.tag } : {}) },
      opts,
    );
  }

  #revokedAuditDue(k: string): boolean {
    const last = this.#revokedAudited.get(k);
    if (last !== undefined && Date.now() - last < REVOKED_AUDIT_MS) return false;
    this.#revokedAudited.set(k, Date.now());
    return true;
  }

  /** The one place admission effects happen. */
  async #apply(
    effects: Effect[],
    ctx: { repo: Repo; image: ImageRef; fetched: FetchedManifest; parsed: Parsed },
  ): Promise<void> {
    const { metrics, logger } = this.#deps;
    for (const e of effects) {
      switch (e.kind) {
        case 'record':
          await this.#record(ctx.repo, ctx.fetched, ctx.parsed, ctx.image.tag);
          break;
        case 'evidence-blobs':
          this.#admitEvidenceLayers(ctx.repo, ctx.parsed, e.subject);
          break;
        case 'expect-blobs':
          this.#deps.blobs.expect(blobsOf(ctx.parsed), ctx.repo.upstream, ctx.repo.repository);
          break;
        case 'audit':
          await this.#audit(e.entry);
          break;
        case 'count':
          metrics.events.inc({ event: e.event });
          break;
        case 'denied':
          metrics.deniedPull(`${ctx.repo.upstream}/${ctx.repo.repository}`, e.reason);
          break;
        case 'log':
          logger[e.level](e.fields, e.msg);
          break;
      }
    }
  }

  /** Stores the admitted bytes and what they admit: their blobs, and for an index its platform manifests. */
  async #record(repo: Repo, fetched: FetchedManifest, parsed: Parsed, tag: string | undefined): Promise<void> {
    const children = childrenOf(parsed);
    await this.#deps.store.putManifest({ digest: fetched.digest, mediaType: fetched.mediaType, bytes: fetched.bytes });
    await this.#deps.store.admit({
      upstream: repo.upstream,
      repository: repo.repository,
      digest: fetched.digest,
      blobs: blobsOf(parsed),
      children,
      ...(tag ? { tag } : {}),
    });
    this.#recorded.set(key(repo, fetched.digest), Date.now());
    for (const child of children) this.#parents.set(key(repo, child), fetched.digest);
  }

  /**
   * Evidence admits only its own small signature layers, in this process, each no larger than
   * evidence can be and served only if its content names the subject: an index under an evidence
   * tag admits none of the manifests it lists, and a crafted signature manifest can neither change
   * an image layer's permit nor make another image's blobs servable.
   */
  #admitEvidenceLayers(repo: Repo, parsed: Parsed, subject: string): void {
    for (const layer of parsed.manifest?.layers ?? []) {
      if (
        typeof layer.digest === 'string' &&
        Number.isSafeInteger(layer.size) &&
        layer.size >= 0 &&
        layer.size <= EVIDENCE_BLOB_MAX_BYTES
      ) {
        this.#evidenceLayers.set(key(repo, layer.digest), { subject, mediaType: layer.mediaType, size: layer.size });
      }
    }
  }

  // ---- Blobs -----------------------------------------------------------------------------

  /** Why a blob may be served now: an image admitted now lists it, or it is evidence of one. */
  async #permit(repo: Repo, digest: string): Promise<Permit> {
    const k = key(repo, digest);
    const cached = this.#permits.get(k);
    if (cached) return cached;
    const manifests = await this.#deps.store.manifestsWithBlob(
      repo.upstream,
      repo.repository,
      digest,
      MANIFESTS_PER_BLOB,
    );
    let refused: string | undefined;
    for (const manifest of manifests) {
      const now = await this.#admittedNow(repo, manifest);
      if (now.admit) {
        const permit: Permit = { kind: 'image', manifest };
        // Stale and granted permits are not kept: the grace period and the grant end on their own clock.
        if (now.via !== 'stale' && now.via !== 'grant') this.#permits.set(k, permit);
        return permit;
      }
      refused ??= `it belongs to ${manifest}, which is ${refusalReason(now)}`;
    }
    const evidence = this.#evidenceLayers.get(k);
    if (evidence && (await this.#admittedNow(repo, evidence.subject)).admit) return { kind: 'evidence', ...evidence };
    const where = `${repo.upstream}/${repo.repository}`;
    throw denied(
      refused
        ? `blob ${digest} in ${where} is not part of an image admitted now: ${refused}`
        : `blob is not part of an admitted image: ${digest} in ${where} belongs to no manifest this proxy admitted; pull the image's manifest through the proxy first`,
    );
  }

  #evidence(repo: Repo): EvidenceSource {
    return registryEvidenceSource(this.#deps.upstreams, repo.upstream, this.#deps.manifestMaxBytes);
  }

  /** The store logs each record's hash as it commits it: an anchor outside the database for `audit verify`. */
  async #audit(e: AuditInput): Promise<void> {
    await this.#deps.store.appendAudit(e);
  }
}
