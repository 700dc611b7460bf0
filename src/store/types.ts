// The proxy's durable state behind one interface, with two backends: SQLite (node:sqlite, the
// embedded default for one replica) and PostgreSQL (several replicas). Both run the same SQL through
// a small adapter (sql-store.ts), so there is one implementation of the logic and one conformance
// suite. Times are stored as epoch milliseconds so both dialects compare them the same way.

export interface Pin { upstream: string; repository: string; tag: string; digest: string; rule: string; attestors: string[]; createdAt: Date; updatedAt: Date }
export interface DriftEvent { id: number; upstream: string; repository: string; tag: string; pinnedDigest: string; upstreamDigest: string; firstSeen: Date; lastSeen: Date; count: number; resolved: boolean }
export interface StoredManifest { digest: string; mediaType: string; bytes: Buffer }
export interface Revocation { digest: string; reason: string; actor: string; at: Date }
export interface Grant { id: string; scope: { digest: string } | { upstream: string; repository: string }; reason: string; actor: string; expiresAt: Date; createdAt: Date }
export type AuditKind = 'allow' | 'deny' | 'dryrun-deny' | 'drift' | 'approve' | 'revoke' | 'unrevoke' | 'pin' | 'repin' | 'unpin' | 'grant' | 'grant-use' | 'stale-serve' | 'policy-reload' | 'admin';
export interface AuditInput { kind: AuditKind; actor: string; upstream?: string; repository?: string; tag?: string; digest?: string; rule?: string; reasons?: string[]; detail?: Record<string, unknown> }
export interface AuditRecord extends AuditInput { seq: number; at: Date; prevHash: string; hash: string }
export interface AuditQuery { digest?: string; image?: string; kind?: AuditKind; since?: Date; until?: Date; limit?: number; afterSeq?: number }
export type AuditProblem = { seq: number; problem: 'modified' | 'deleted-before' | 'inserted' | 'broken-link'; message: string };
export type StoreEvent = { type: 'revoked' | 'unrevoked' | 'pin-changed' | 'grant-changed' | 'policy-changed'; digest?: string; upstream?: string; repository?: string; tag?: string };

export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  getPin(upstream: string, repository: string, tag: string): Promise<Pin | undefined>;
  /** First writer wins: an existing pin is returned unchanged with created=false. */
  createPin(pin: Omit<Pin, 'createdAt' | 'updatedAt'>): Promise<{ pin: Pin; created: boolean }>;
  /** Compare-and-set: false when the pin was not at `fromDigest`. */
  movePin(upstream: string, repository: string, tag: string, fromDigest: string, toDigest: string, rule: string, attestors: string[]): Promise<boolean>;
  deletePin(upstream: string, repository: string, tag: string): Promise<boolean>;
  listPins(filter?: { upstream?: string; repository?: string }): Promise<Pin[]>;

  /** Upserts the unresolved drift event for (tag, upstream digest), counting sightings. */
  recordDrift(upstream: string, repository: string, tag: string, pinnedDigest: string, upstreamDigest: string): Promise<{ event: DriftEvent; isNew: boolean }>;
  listDrift(filter?: { unresolvedOnly?: boolean }): Promise<DriftEvent[]>;
  resolveDrift(id: number): Promise<DriftEvent | undefined>;

  putManifest(m: StoredManifest): Promise<void>;
  getManifest(digest: string): Promise<StoredManifest | undefined>;
  /** Records an admitted manifest of a repository with its config/layer blobs and (index) child manifests. */
  admit(upstream: string, repository: string, digest: string, blobs: string[], children: string[]): Promise<void>;
  /** Whether some admitted, non-revoked manifest of the repository lists the blob. */
  isBlobAdmitted(upstream: string, repository: string, blobDigest: string): Promise<boolean>;
  /** When the digest was last admitted in the repository (itself or as a child of an admitted index), unless revoked. */
  isAdmitted(upstream: string, repository: string, digest: string): Promise<{ admittedAt: Date } | undefined>;
  /** The admitted, non-revoked index of the repository that lists `digest` as a child, if any. */
  admittedParent(upstream: string, repository: string, digest: string): Promise<string | undefined>;

  revoke(digest: string, reason: string, actor: string): Promise<Revocation>;
  unrevoke(digest: string, actor: string): Promise<boolean>;
  getRevocation(digest: string): Promise<Revocation | undefined>;
  listRevocations(): Promise<Revocation[]>;

  createGrant(g: Omit<Grant, 'id' | 'createdAt'>): Promise<Grant>;
  /** A grant valid at `now` for the digest, or for the whole repository. */
  findGrant(upstream: string, repository: string, digest: string, now: Date): Promise<Grant | undefined>;
  revokeGrant(id: string): Promise<boolean>;
  listGrants(includeExpired?: boolean): Promise<Grant[]>;

  /** Appends to the hash chain; appends are serialised across replicas. */
  appendAudit(e: AuditInput): Promise<AuditRecord>;
  /** Newest first. */
  queryAudit(q: AuditQuery): Promise<AuditRecord[]>;
  verifyAudit(): Promise<{ ok: boolean; records: number; problems: AuditProblem[] }>;

  /** Tells every replica (this one included). Mutating methods publish their own events. */
  publish(e: StoreEvent): Promise<void>;
  subscribe(listener: (e: StoreEvent) => void): () => void;
  close(): Promise<void>;
}
