// The proxy's durable state behind one interface, with two backends: SQLite (node:sqlite, the
// embedded default for one replica) and PostgreSQL (several replicas).
//
// Design choices, and why:
// - One SQL implementation (sql-store.ts) over a small adapter per database (sqlite.ts, postgres.ts):
//   the SQL is the subset both accept (ON CONFLICT, partial unique indexes, RETURNING-free), so the
//   logic exists once and one conformance suite covers both. Times are epoch milliseconds (BIGINT)
//   so both dialects compare them the same way.
// - Races are settled by the database, not by the caller: a pin's primary key makes the first writer
//   win (INSERT … ON CONFLICT DO NOTHING, then read the winner); pin moves are compare-and-set on the
//   old digest; audit appends and migrations take an exclusive lock (PostgreSQL: a transaction-scoped
//   advisory lock per schema; SQLite: BEGIN IMMEDIATE), so replicas never fork the chain.
// - SQLite runs in WAL mode with synchronous=FULL: a commit is on disk before the call returns, so an
//   acknowledged write survives kill -9 or power loss. One connection per process, every statement
//   queued, so no statement lands inside another caller's open transaction.
// - Events ride on the change itself: each mutating method sends its event in the same transaction
//   (PostgreSQL NOTIFY is delivered on commit, never for a rolled-back change) and hands it to this
//   process's subscribers after the commit, before the method returns; callers cannot forget.
//   Notifications are lost while a replica's listening connection is down, so after it reconnects its
//   subscribers get one event of every type without subject fields: "anything of this kind may have
//   changed; drop what you cached".
// - Audit trail: a hash chain (hash = sha256(prevHash + canonical JSON of the record's fields incl. seq
//   and at), genesis prevHash = 64 zeros) plus a chain-head row written in the same transaction as each
//   record, so a cut-off tail is detected too. Fields are normalised through JSON before hashing, so
//   what is hashed is exactly what is stored. Anyone with write access to the database can recompute
//   a whole chain and head; the chain makes tampering visible to a verifier who kept an earlier head
//   (e.g. from the log line of each append), it does not prevent it.
// - Revoking an index withdraws the platform manifests admitted through it (unless another live index
//   of the repository lists them) together with their blobs; unrevoking does not restore them, the
//   next pull of the index admits them again.

import type { StoreHealth } from './health.ts';

export interface Pin {
  upstream: string;
  repository: string;
  tag: string;
  digest: string;
  rule: string;
  attestors: string[];
  createdAt: Date;
  updatedAt: Date;
}
export interface DriftEvent {
  id: number;
  upstream: string;
  repository: string;
  tag: string;
  pinnedDigest: string;
  upstreamDigest: string;
  firstSeen: Date;
  lastSeen: Date;
  count: number;
  resolved: boolean;
}
export interface AdmissionInput {
  upstream: string;
  repository: string;
  digest: string;
  blobs: string[];
  children: string[];
  tag?: string;
}
export interface Admission {
  admittedAt: Date;
  tag?: string;
}
export interface StoredManifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}
export interface Revocation {
  digest: string;
  reason: string;
  actor: string;
  at: Date;
}
export interface Grant {
  id: string;
  scope: { digest: string } | { upstream: string; repository: string };
  reason: string;
  actor: string;
  expiresAt: Date;
  createdAt: Date;
}
/** Every kind of audit record, for queries to validate against. */
export const AUDIT_KINDS = [
  'allow',
  'deny',
  'dryrun-deny',
  'drift',
  'approve',
  'revoke',
  'unrevoke',
  'revoked-pull',
  'revalidate-deny',
  'pin',
  'repin',
  'unpin',
  'grant',
  'grant-use',
  'stale-serve',
  'policy-reload',
  'admin',
] as const;
export type AuditKind = (typeof AUDIT_KINDS)[number];
export interface AuditInput {
  kind: AuditKind;
  actor: string;
  upstream?: string;
  repository?: string;
  tag?: string;
  digest?: string;
  rule?: string;
  reasons?: string[];
  detail?: Record<string, unknown>;
}
export interface AuditRecord extends AuditInput {
  seq: number;
  at: Date;
  prevHash: string;
  hash: string;
}
export interface AuditQuery {
  digest?: string;
  image?: string /* "upstream/repository" prefix */;
  /** Exact matches, for one image: its upstream, repository and tag. */
  upstream?: string;
  repository?: string;
  tag?: string;
  kind?: AuditKind;
  /** Any of these kinds (with `kind`, both apply). */
  kinds?: AuditKind[];
  since?: Date;
  until?: Date;
  limit?: number /* default 100, max 10000 */;
  afterSeq?: number;
}
export type AuditProblem = {
  seq: number;
  problem: 'modified' | 'deleted-before' | 'inserted' | 'broken-link';
  message: string;
};
/** An event without subject fields (digest, upstream, …) means: anything of this type may have changed. */
export type StoreEvent = {
  type: 'revoked' | 'unrevoked' | 'pin-changed' | 'grant-changed' | 'policy-changed';
  digest?: string;
  upstream?: string;
  repository?: string;
  tag?: string;
};

export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  /** Whether the database can serve requests now (drives /readyz and pullgate_store_up). */
  readonly health: StoreHealth;
  getPin(upstream: string, repository: string, tag: string): Promise<Pin | undefined>;
  // Every change that takes an `audit` writes that record in the change's own transaction, only
  // when the change happens: a change is never committed without its record, nor a record without it.

  /** First writer wins, across replicas: an existing pin is returned unchanged with created=false. */
  createPin(pin: Omit<Pin, 'createdAt' | 'updatedAt'>, audit?: AuditInput): Promise<{ pin: Pin; created: boolean }>;
  /** Compare-and-set: false when the pin was not at `fromDigest`. */
  movePin(
    upstream: string,
    repository: string,
    tag: string,
    fromDigest: string,
    toDigest: string,
    rule: string,
    attestors: string[],
    audit?: AuditInput,
  ): Promise<boolean>;
  deletePin(upstream: string, repository: string, tag: string, audit?: AuditInput): Promise<boolean>;
  /**
   * An admin's approval: the tag pinned to `digest` (created if needed), its open drift resolved,
   * and an `approve` record, in one transaction. The digest still has to pass policy when served.
   */
  approvePin(
    upstream: string,
    repository: string,
    tag: string,
    digest: string,
    actor: string,
  ): Promise<{ pin: Pin; from: string | undefined; resolvedDrift: number[] }>;
  listPins(filter?: { upstream?: string; repository?: string }): Promise<Pin[]>;

  /** Upserts the unresolved drift event for (tag, upstream digest), counting sightings. */
  recordDrift(
    upstream: string,
    repository: string,
    tag: string,
    pinnedDigest: string,
    upstreamDigest: string,
    auditIfNew?: (event: DriftEvent) => AuditInput,
  ): Promise<{ event: DriftEvent; isNew: boolean }>;
  listDrift(filter?: { unresolvedOnly?: boolean }): Promise<DriftEvent[]>;
  resolveDrift(id: number, audit?: AuditInput): Promise<DriftEvent | undefined>;
  /** Resolves every open drift record of a tag (the pin reached the upstream, or the upstream moved back); audited when any. */
  resolveTagDrift(
    upstream: string,
    repository: string,
    tag: string,
    audit: (ids: number[]) => AuditInput,
  ): Promise<number[]>;

  /** Idempotent by digest: the first bytes stored for a digest stay. */
  putManifest(m: StoredManifest): Promise<void>;
  getManifest(digest: string): Promise<StoredManifest | undefined>;
  /**
   * Records an admitted manifest of a repository with its config/layer blobs and (index) child
   * manifests, and the tag it was pulled by (none for a pull by digest): the context in which it is
   * judged again later. Idempotent; refreshes the admission time and the tag.
   */
  admit(a: AdmissionInput): Promise<void>;
  /** The repository's own admission of a digest (not through an index), unless revoked. */
  getAdmission(upstream: string, repository: string, digest: string): Promise<Admission | undefined>;
  /** Admissions (not revoked) written since `since`, newest first: what was served recently. */
  recentAdmissions(
    since: Date,
    limit: number,
  ): Promise<(Admission & { upstream: string; repository: string; digest: string })[]>;
  /** Admitted, non-revoked manifests of the repository that list the blob, newest admission first. */
  manifestsWithBlob(upstream: string, repository: string, blobDigest: string, limit: number): Promise<string[]>;
  /** When the digest was last admitted in the repository (itself or as a child of an admitted index), unless revoked. */
  isAdmitted(upstream: string, repository: string, digest: string): Promise<{ admittedAt: Date } | undefined>;
  /** The admitted, non-revoked index of the repository that lists `digest` as a child, if any. */
  admittedParent(upstream: string, repository: string, digest: string): Promise<string | undefined>;

  /** Revoking again replaces the reason. Also withdraws an index's platform manifests (see above). */
  revoke(digest: string, reason: string, actor: string, audit?: AuditInput): Promise<Revocation>;
  unrevoke(digest: string, audit?: AuditInput): Promise<boolean>;
  getRevocation(digest: string): Promise<Revocation | undefined>;
  listRevocations(): Promise<Revocation[]>;

  createGrant(g: Omit<Grant, 'id' | 'createdAt'>, audit?: (grant: Grant) => AuditInput): Promise<Grant>;
  /** A grant valid at `now` for the digest (in any repository), or for the whole repository. */
  findGrant(upstream: string, repository: string, digest: string, now: Date): Promise<Grant | undefined>;
  revokeGrant(id: string, audit?: AuditInput): Promise<boolean>;
  /** Active grants; with `includeExpired`, also expired and revoked ones. */
  listGrants(includeExpired?: boolean): Promise<Grant[]>;

  /** Appends to the hash chain; appends are serialised across replicas. */
  appendAudit(e: AuditInput): Promise<AuditRecord>;
  /** Newest first. */
  queryAudit(q: AuditQuery): Promise<AuditRecord[]>;
  /** Checks the whole chain on one consistent snapshot, streaming it (appends go on meanwhile). */
  verifyAudit(): Promise<{ ok: boolean; records: number; problems: AuditProblem[] }>;

  /** Tells every replica, this one included (its own subscribers before this resolves). */
  publish(e: StoreEvent, audit?: AuditInput): Promise<void>;
  subscribe(listener: (e: StoreEvent) => void): () => void;
  close(): Promise<void>;
}
