// The Store, once, over either database: SQLite and PostgreSQL differ only in their Db adapter and
// event bus. Every change runs in one transaction together with the event it causes.
import { randomUUID } from 'node:crypto';
import type { Db, Param, Queryable, Row } from './db.ts';
import { GENESIS, chainHash, normaliseAuditInput, verifyChain, type ChainHead } from './audit-chain.ts';
import type { EventBus } from './events.ts';
import type { HealthMonitor } from './health.ts';
import type {
  Admission,
  AdmissionInput,
  AuditInput,
  AuditProblem,
  AuditQuery,
  AuditRecord,
  DriftEvent,
  Grant,
  Pin,
  Revocation,
  Store,
  StoreEvent,
  StoredManifest,
} from './types.ts';

const AUDIT_PAGE = 1000;
const AUDIT_LIMIT_DEFAULT = 100;
const AUDIT_LIMIT_MAX = 10_000;

const str = (v: unknown) => String(v);
const num = (v: unknown) => Number(v);
const date = (v: unknown) => new Date(Number(v));
const opt = (v: unknown) => (v === null || v === undefined ? undefined : String(v));

function pinOf(r: Row): Pin {
  return {
    upstream: str(r.upstream),
    repository: str(r.repository),
    tag: str(r.tag),
    digest: str(r.digest),
    rule: str(r.rule),
    attestors: JSON.parse(str(r.attestors)) as string[],
    createdAt: date(r.created_at),
    updatedAt: date(r.updated_at),
  };
}

function driftOf(r: Row): DriftEvent {
  return {
    id: num(r.id),
    upstream: str(r.upstream),
    repository: str(r.repository),
    tag: str(r.tag),
    pinnedDigest: str(r.pinned_digest),
    upstreamDigest: str(r.upstream_digest),
    firstSeen: date(r.first_seen),
    lastSeen: date(r.last_seen),
    count: num(r.count),
    resolved: num(r.resolved) === 1,
  };
}

function revocationOf(r: Row): Revocation {
  return { digest: str(r.digest), reason: str(r.reason), actor: str(r.actor), at: date(r.at) };
}

function grantOf(r: Row): Grant {
  const digest = opt(r.digest);
  return {
    id: str(r.id),
    scope: digest ? { digest } : { upstream: str(r.upstream), repository: str(r.repository) },
    reason: str(r.reason),
    actor: str(r.actor),
    expiresAt: date(r.expires_at),
    createdAt: date(r.created_at),
  };
}

function auditOf(r: Row): AuditRecord {
  const record: AuditRecord = {
    seq: num(r.seq),
    at: date(r.at),
    kind: str(r.kind) as AuditRecord['kind'],
    actor: str(r.actor),
    prevHash: str(r.prev_hash),
    hash: str(r.hash),
  };
  for (const key of ['upstream', 'repository', 'tag', 'digest', 'rule'] as const) {
    const v = opt(r[key]);
    if (v !== undefined) record[key] = v;
  }
  if (r.reasons !== null && r.reasons !== undefined) record.reasons = JSON.parse(str(r.reasons)) as string[];
  if (r.detail !== null && r.detail !== undefined) record.detail = JSON.parse(str(r.detail)) as Record<string, unknown>;
  return record;
}

/** The event a grant's scope maps to. */
function grantEvent(scope: Grant['scope']): StoreEvent {
  return {
    type: 'grant-changed',
    ...('digest' in scope ? { digest: scope.digest } : { upstream: scope.upstream, repository: scope.repository }),
  };
}

/** `image` is a prefix of "upstream/repository": LIKE with its own wildcards escaped. */
function likePrefix(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

function auditLimit(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return AUDIT_LIMIT_DEFAULT;
  return Math.min(AUDIT_LIMIT_MAX, Math.max(1, Math.trunc(limit)));
}

/** The trail in seq order, a page at a time (from below 1, so forged records numbered 0 or less are seen too). */
async function* auditPages(q: Queryable): AsyncGenerator<AuditRecord> {
  let after = Number.MIN_SAFE_INTEGER;
  for (;;) {
    const rows = await q.query(`SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ${AUDIT_PAGE}`, [after]);
    for (const row of rows) yield auditOf(row);
    const last = rows.at(-1);
    if (!last || rows.length < AUDIT_PAGE) return;
    after = num(last.seq);
  }
}

/**
 * Matches rows of `table` whose `column` is a platform manifest admitted through index `?` and listed
 * by no other live index of its repository: what revoking that index withdraws.
 */
function orphanedChild(table: string, column: string): string {
  return `EXISTS (SELECT 1 FROM admitted_children c WHERE c.parent = ? AND c.upstream = ${table}.upstream AND c.repository = ${table}.repository AND c.child = ${table}.${column}
    AND NOT EXISTS (SELECT 1 FROM admitted_children o JOIN admissions a ON a.upstream = o.upstream AND a.repository = o.repository AND a.digest = o.parent
      WHERE o.upstream = c.upstream AND o.repository = c.repository AND o.child = c.child AND o.parent <> c.parent
        AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.digest = o.parent)))`;
}

type Emit = (e: StoreEvent) => void;
/** Appends an audit record inside the change's own transaction. */
type Audit = (e: AuditInput) => Promise<AuditRecord>;

export interface SqlStoreOptions {
  /** Told of every audit record once it is committed (the log line that anchors the chain outside the database). */
  onAudit?: (record: AuditRecord) => void;
}

export class SqlStore implements Store {
  readonly kind: 'sqlite' | 'postgres';
  readonly #db: Db;
  readonly #bus: EventBus;
  readonly #health: HealthMonitor;

  readonly #onAudit: ((record: AuditRecord) => void) | undefined;

  constructor(db: Db, bus: EventBus, health: HealthMonitor, opts: SqlStoreOptions = {}) {
    this.#db = db;
    this.kind = db.dialect;
    this.#bus = bus;
    this.#health = health;
    this.#onAudit = opts.onAudit;
  }

  get health(): HealthMonitor {
    return this.#health;
  }

  /**
   * Runs a change, the events it emits and the audit records it writes in one transaction: a
   * change is never committed without its record. This process hears of events and records after
   * the commit. A change that audits takes the chain's exclusive lock.
   */
  async #change<T>(
    fn: (tx: Queryable, emit: Emit, audit: Audit) => Promise<T>,
    opts: { exclusive?: boolean } = {},
  ): Promise<T> {
    let events: StoreEvent[] = [];
    let records: AuditRecord[] = [];
    const result = await this.#db.transaction(async (tx) => {
      events = [];
      records = [];
      const audit: Audit = async (e) => {
        if (!opts.exclusive) throw new Error('internal: an audited change must run exclusive');
        const record = await this.#appendIn(tx, e);
        records.push(record);
        return record;
      };
      const out = await fn(tx, (e) => events.push(e), audit);
      for (const e of events) await this.#bus.send(tx, e);
      return out;
    }, opts);
    for (const e of events) this.#bus.deliver(e);
    for (const r of records) this.#onAudit?.(r);
    return result;
  }

  async getPin(upstream: string, repository: string, tag: string): Promise<Pin | undefined> {
    const [row] = await this.#db.query('SELECT * FROM pins WHERE upstream = ? AND repository = ? AND tag = ?', [
      upstream,
      repository,
      tag,
    ]);
    return row ? pinOf(row) : undefined;
  }

  createPin(p: Omit<Pin, 'createdAt' | 'updatedAt'>, audit?: AuditInput): Promise<{ pin: Pin; created: boolean }> {
    return this.#change(
      async (tx, emit, append) => {
        const now = Date.now();
        const created =
          (await tx.run(
            'INSERT INTO pins (upstream, repository, tag, digest, rule, attestors, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
            [p.upstream, p.repository, p.tag, p.digest, p.rule, JSON.stringify(p.attestors), now, now],
          )) === 1;
        const [row] = await tx.query('SELECT * FROM pins WHERE upstream = ? AND repository = ? AND tag = ?', [
          p.upstream,
          p.repository,
          p.tag,
        ]);
        if (!row) throw new Error(`pin ${p.upstream}/${p.repository}:${p.tag} was deleted while being created; retry`);
        if (created) {
          emit({ type: 'pin-changed', upstream: p.upstream, repository: p.repository, tag: p.tag, digest: p.digest });
          if (audit) await append(audit);
        }
        return { pin: pinOf(row), created };
      },
      { exclusive: audit !== undefined },
    );
  }

  movePin(
    upstream: string,
    repository: string,
    tag: string,
    fromDigest: string,
    toDigest: string,
    rule: string,
    attestors: string[],
    audit?: AuditInput,
  ): Promise<boolean> {
    return this.#change(
      async (tx, emit, append) => {
        const moved =
          (await tx.run(
            'UPDATE pins SET digest = ?, rule = ?, attestors = ?, updated_at = ? WHERE upstream = ? AND repository = ? AND tag = ? AND digest = ?',
            [toDigest, rule, JSON.stringify(attestors), Date.now(), upstream, repository, tag, fromDigest],
          )) === 1;
        if (moved) {
          emit({ type: 'pin-changed', upstream, repository, tag, digest: toDigest });
          if (audit) await append(audit);
        }
        return moved;
      },
      { exclusive: audit !== undefined },
    );
  }

  deletePin(upstream: string, repository: string, tag: string, audit?: AuditInput): Promise<boolean> {
    return this.#change(
      async (tx, emit, append) => {
        const removed =
          (await tx.run('DELETE FROM pins WHERE upstream = ? AND repository = ? AND tag = ?', [
            upstream,
            repository,
            tag,
          ])) === 1;
        if (removed) {
          emit({ type: 'pin-changed', upstream, repository, tag });
          if (audit) await append(audit);
        }
        return removed;
      },
      { exclusive: audit !== undefined },
    );
  }

  approvePin(
    upstream: string,
    repository: string,
    tag: string,
    digest: string,
    actor: string,
  ): Promise<{ pin: Pin; from: string | undefined; resolvedDrift: number[] }> {
    return this.#change(
      async (tx, emit, append) => {
        const key = [upstream, repository, tag];
        const [before] = await tx.query('SELECT * FROM pins WHERE upstream = ? AND repository = ? AND tag = ?', key);
        const now = Date.now();
        if (before) {
          await tx.run('UPDATE pins SET digest = ?, updated_at = ? WHERE upstream = ? AND repository = ? AND tag = ?', [
            digest,
            now,
            ...key,
          ]);
        } else {
          await tx.run(
            'INSERT INTO pins (upstream, repository, tag, digest, rule, attestors, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
            [...key, digest, 'admin', '[]', now, now],
          );
        }
        const open = await tx.query(
          'SELECT id FROM drift WHERE upstream = ? AND repository = ? AND tag = ? AND resolved = 0 ORDER BY id',
          key,
        );
        const resolvedDrift = open.map((r) => num(r.id));
        await tx.run(
          'UPDATE drift SET resolved = 1 WHERE upstream = ? AND repository = ? AND tag = ? AND resolved = 0',
          key,
        );
        const [row] = await tx.query('SELECT * FROM pins WHERE upstream = ? AND repository = ? AND tag = ?', key);
        if (!row) throw new Error(`pin ${upstream}/${repository}:${tag} vanished while being approved`);
        const from = before ? str(before.digest) : undefined;
        emit({ type: 'pin-changed', upstream, repository, tag, digest });
        await append({
          kind: 'approve',
          actor,
          upstream,
          repository,
          tag,
          digest,
          detail: { from: from ?? null, resolvedDrift },
        });
        return { pin: pinOf(row), from, resolvedDrift };
      },
      { exclusive: true },
    );
  }

  async resolveTagDrift(
    upstream: string,
    repository: string,
    tag: string,
    audit: (ids: number[]) => AuditInput,
  ): Promise<number[]> {
    // Most re-checks find nothing open: answer those without the chain's lock.
    const key = [upstream, repository, tag];
    const open = await this.#db.query(
      'SELECT 1 AS x FROM drift WHERE upstream = ? AND repository = ? AND tag = ? AND resolved = 0 LIMIT 1',
      key,
    );
    if (open.length === 0) return [];
    return this.#change(
      async (tx, _emit, append) => {
        const key = [upstream, repository, tag];
        const open = await tx.query(
          'SELECT id FROM drift WHERE upstream = ? AND repository = ? AND tag = ? AND resolved = 0',
          key,
        );
        if (open.length === 0) return [];
        const ids = open.map((r) => num(r.id));
        await tx.run(
          'UPDATE drift SET resolved = 1 WHERE upstream = ? AND repository = ? AND tag = ? AND resolved = 0',
          key,
        );
        await append(audit(ids));
        return ids;
      },
      { exclusive: true },
    );
  }

  async listPins(filter: { upstream?: string; repository?: string } = {}): Promise<Pin[]> {
    const where: string[] = [];
    const params: Param[] = [];
    if (filter.upstream) {
      where.push('upstream = ?');
      params.push(filter.upstream);
    }
    if (filter.repository) {
      where.push('repository = ?');
      params.push(filter.repository);
    }
    const rows = await this.#db.query(
      `SELECT * FROM pins ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY upstream, repository, tag`,
      params,
    );
    return rows.map(pinOf);
  }

  recordDrift(
    upstream: string,
    repository: string,
    tag: string,
    pinnedDigest: string,
    upstreamDigest: string,
    auditIfNew?: (event: DriftEvent) => AuditInput,
  ): Promise<{ event: DriftEvent; isNew: boolean }> {
    return this.#change(
      async (tx, _emit, append) => {
        const now = Date.now();
        const isNew =
          (await tx.run(
            `INSERT INTO drift (upstream, repository, tag, pinned_digest, upstream_digest, first_seen, last_seen, count, resolved)
         VALUES (?, ?, ?, ?, ?, ?, ?, 1, 0) ON CONFLICT (upstream, repository, tag, upstream_digest) WHERE resolved = 0 DO NOTHING`,
            [upstream, repository, tag, pinnedDigest, upstreamDigest, now, now],
          )) === 1;
        if (!isNew) {
          await tx.run(
            'UPDATE drift SET count = count + 1, last_seen = ? WHERE upstream = ? AND repository = ? AND tag = ? AND upstream_digest = ? AND resolved = 0',
            [now, upstream, repository, tag, upstreamDigest],
          );
        }
        const [row] = await tx.query(
          'SELECT * FROM drift WHERE upstream = ? AND repository = ? AND tag = ? AND upstream_digest = ? AND resolved = 0',
          [upstream, repository, tag, upstreamDigest],
        );
        if (!row)
          throw new Error(`drift event for ${upstream}/${repository}:${tag} was resolved while being recorded; retry`);
        const event = driftOf(row);
        if (isNew && auditIfNew) await append(auditIfNew(event));
        return { event, isNew };
      },
      { exclusive: auditIfNew !== undefined },
    );
  }

  async listDrift(filter: { unresolvedOnly?: boolean } = {}): Promise<DriftEvent[]> {
    const rows = await this.#db.query(
      `SELECT * FROM drift ${filter.unresolvedOnly ? 'WHERE resolved = 0' : ''} ORDER BY id`,
    );
    return rows.map(driftOf);
  }

  resolveDrift(id: number, audit?: AuditInput): Promise<DriftEvent | undefined> {
    return this.#change(
      async (tx, _emit, append) => {
        const changed = (await tx.run('UPDATE drift SET resolved = 1 WHERE id = ? AND resolved = 0', [id])) === 1;
        const [row] = await tx.query('SELECT * FROM drift WHERE id = ?', [id]);
        if (changed && audit) await append(audit);
        return row ? driftOf(row) : undefined;
      },
      { exclusive: audit !== undefined },
    );
  }

  async putManifest(m: StoredManifest): Promise<void> {
    await this.#db.run('INSERT INTO manifests (digest, media_type, bytes) VALUES (?, ?, ?) ON CONFLICT DO NOTHING', [
      m.digest,
      m.mediaType,
      m.bytes,
    ]);
  }

  async getManifest(digest: string): Promise<StoredManifest | undefined> {
    const [row] = await this.#db.query('SELECT * FROM manifests WHERE digest = ?', [digest]);
    return row
      ? { digest: str(row.digest), mediaType: str(row.media_type), bytes: Buffer.from(row.bytes as Uint8Array) }
      : undefined;
  }

  async admit({ upstream, repository, digest, blobs, children, tag }: AdmissionInput): Promise<void> {
    await this.#db.transaction(async (tx) => {
      const now = Date.now();
      const key = [upstream, repository, digest];
      if (
        (await tx.run(
          'UPDATE admissions SET admitted_at = ?, tag = ? WHERE upstream = ? AND repository = ? AND digest = ?',
          [now, tag ?? null, ...key],
        )) === 0
      ) {
        await tx.run(
          'INSERT INTO admissions (upstream, repository, digest, admitted_at, tag) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
          [...key, now, tag ?? null],
        );
      }
      for (const blob of new Set(blobs)) {
        await tx.run(
          'INSERT INTO admitted_blobs (upstream, repository, blob, manifest) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING',
          [upstream, repository, blob, digest],
        );
      }
      for (const child of new Set(children)) {
        await tx.run(
          'INSERT INTO admitted_children (upstream, repository, child, parent) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING',
          [upstream, repository, child, digest],
        );
      }
    });
  }

  async getAdmission(upstream: string, repository: string, digest: string): Promise<Admission | undefined> {
    const [row] = await this.#db.query(
      `SELECT a.admitted_at, a.tag FROM admissions a WHERE a.upstream = ? AND a.repository = ? AND a.digest = ?
         AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.digest = a.digest)`,
      [upstream, repository, digest],
    );
    if (!row) return undefined;
    const tag = opt(row.tag);
    return { admittedAt: date(row.admitted_at), ...(tag === undefined ? {} : { tag }) };
  }

  async recentAdmissions(
    since: Date,
    limit: number,
  ): Promise<(Admission & { upstream: string; repository: string; digest: string })[]> {
    const rows = await this.#db.query(
      `SELECT a.upstream, a.repository, a.digest, a.admitted_at, a.tag FROM admissions a
         WHERE a.admitted_at >= ? AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.digest = a.digest)
         ORDER BY a.admitted_at DESC LIMIT ${Math.max(1, Math.trunc(limit))}`,
      [since.getTime()],
    );
    return rows.map((r) => {
      const tag = opt(r.tag);
      return {
        upstream: str(r.upstream),
        repository: str(r.repository),
        digest: str(r.digest),
        admittedAt: date(r.admitted_at),
        ...(tag === undefined ? {} : { tag }),
      };
    });
  }

  async manifestsWithBlob(upstream: string, repository: string, blobDigest: string, limit: number): Promise<string[]> {
    const rows = await this.#db.query(
      `SELECT b.manifest FROM admitted_blobs b
         JOIN admissions a ON a.upstream = b.upstream AND a.repository = b.repository AND a.digest = b.manifest
         WHERE b.upstream = ? AND b.repository = ? AND b.blob = ?
           AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.digest = b.manifest)
         ORDER BY a.admitted_at DESC LIMIT ${Math.max(1, Math.trunc(limit))}`,
      [upstream, repository, blobDigest],
    );
    return rows.map((r) => str(r.manifest));
  }

  async isAdmitted(upstream: string, repository: string, digest: string): Promise<{ admittedAt: Date } | undefined> {
    if (await this.getRevocation(digest)) return undefined;
    const [own] = await this.#db.query(
      'SELECT admitted_at FROM admissions WHERE upstream = ? AND repository = ? AND digest = ?',
      [upstream, repository, digest],
    );
    if (own) return { admittedAt: date(own.admitted_at) };
    const parent = await this.admittedParent(upstream, repository, digest);
    if (!parent) return undefined;
    const [row] = await this.#db.query(
      'SELECT admitted_at FROM admissions WHERE upstream = ? AND repository = ? AND digest = ?',
      [upstream, repository, parent],
    );
    return row ? { admittedAt: date(row.admitted_at) } : undefined;
  }

  async admittedParent(upstream: string, repository: string, digest: string): Promise<string | undefined> {
    const [row] = await this.#db.query(
      `SELECT c.parent FROM admitted_children c JOIN admissions a ON a.upstream = c.upstream AND a.repository = c.repository AND a.digest = c.parent
       WHERE c.upstream = ? AND c.repository = ? AND c.child = ? AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.digest = c.parent) LIMIT 1`,
      [upstream, repository, digest],
    );
    return row ? str(row.parent) : undefined;
  }

  revoke(digest: string, reason: string, actor: string, audit?: AuditInput): Promise<Revocation> {
    return this.#change(
      async (tx, emit, append) => {
        await tx.run(
          'INSERT INTO revocations (digest, reason, actor, at) VALUES (?, ?, ?, ?) ON CONFLICT (digest) DO UPDATE SET reason = excluded.reason, actor = excluded.actor, at = excluded.at',
          [digest, reason, actor, Date.now()],
        );
        // A revoked index withdraws the platform manifests it admitted: they were served on its word.
        await tx.run(`DELETE FROM admitted_blobs WHERE ${orphanedChild('admitted_blobs', 'manifest')}`, [digest]);
        await tx.run(`DELETE FROM admissions WHERE ${orphanedChild('admissions', 'digest')}`, [digest]);
        const [row] = await tx.query('SELECT * FROM revocations WHERE digest = ?', [digest]);
        if (!row) throw new Error(`revocation of ${digest} vanished while being written`);
        emit({ type: 'revoked', digest });
        if (audit) await append(audit);
        return revocationOf(row);
      },
      { exclusive: audit !== undefined },
    );
  }

  unrevoke(digest: string, audit?: AuditInput): Promise<boolean> {
    return this.#change(
      async (tx, emit, append) => {
        const removed = (await tx.run('DELETE FROM revocations WHERE digest = ?', [digest])) === 1;
        if (removed) {
          emit({ type: 'unrevoked', digest });
          if (audit) await append(audit);
        }
        return removed;
      },
      { exclusive: audit !== undefined },
    );
  }

  async getRevocation(digest: string): Promise<Revocation | undefined> {
    const [row] = await this.#db.query('SELECT * FROM revocations WHERE digest = ?', [digest]);
    return row ? revocationOf(row) : undefined;
  }

  async listRevocations(): Promise<Revocation[]> {
    return (await this.#db.query('SELECT * FROM revocations ORDER BY at, digest')).map(revocationOf);
  }

  createGrant(g: Omit<Grant, 'id' | 'createdAt'>, audit?: (grant: Grant) => AuditInput): Promise<Grant> {
    return this.#change(
      async (tx, emit, append) => {
        const id = randomUUID();
        const scope = 'digest' in g.scope ? [g.scope.digest, null, null] : [null, g.scope.upstream, g.scope.repository];
        await tx.run(
          'INSERT INTO grants (id, digest, upstream, repository, reason, actor, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
          [id, ...scope, g.reason, g.actor, g.expiresAt.getTime(), Date.now()],
        );
        const [row] = await tx.query('SELECT * FROM grants WHERE id = ?', [id]);
        if (!row) throw new Error(`grant ${id} vanished while being written`);
        const grant = grantOf(row);
        emit(grantEvent(grant.scope));
        if (audit) await append(audit(grant));
        return grant;
      },
      { exclusive: audit !== undefined },
    );
  }

  async findGrant(upstream: string, repository: string, digest: string, now: Date): Promise<Grant | undefined> {
    const [row] = await this.#db.query(
      `SELECT * FROM grants WHERE revoked = 0 AND expires_at > ? AND (digest = ? OR (upstream = ? AND repository = ?)) ORDER BY expires_at DESC LIMIT 1`,
      [now.getTime(), digest, upstream, repository],
    );
    return row ? grantOf(row) : undefined;
  }

  revokeGrant(id: string, audit?: AuditInput): Promise<boolean> {
    return this.#change(
      async (tx, emit, append) => {
        if ((await tx.run('UPDATE grants SET revoked = 1 WHERE id = ? AND revoked = 0', [id])) !== 1) return false;
        const [row] = await tx.query('SELECT * FROM grants WHERE id = ?', [id]);
        if (row) emit(grantEvent(grantOf(row).scope));
        if (audit) await append(audit);
        return true;
      },
      { exclusive: audit !== undefined },
    );
  }

  async listGrants(includeExpired = false): Promise<Grant[]> {
    const rows = includeExpired
      ? await this.#db.query('SELECT * FROM grants ORDER BY created_at, id')
      : await this.#db.query('SELECT * FROM grants WHERE revoked = 0 AND expires_at > ? ORDER BY created_at, id', [
          Date.now(),
        ]);
    return rows.map(grantOf);
  }

  async appendAudit(e: AuditInput): Promise<AuditRecord> {
    return this.#change((_tx, _emit, append) => append(e), { exclusive: true });
  }

  /** Appends to the chain inside `tx`, which must hold the exclusive lock. */
  async #appendIn(tx: Queryable, e: AuditInput): Promise<AuditRecord> {
    const fields = normaliseAuditInput(e);
    // Continue from the head, so a trail cut off at the end stays detectable after further appends;
    // number past any record beyond it, so a forged record there cannot block appends.
    const [headRow] = await tx.query('SELECT seq, hash FROM audit_head WHERE id = 1');
    const [newest] = await tx.query('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1');
    const head = headRow ?? newest;
    const prevHash = head ? str(head.hash) : GENESIS;
    const seq = Math.max(head ? num(head.seq) : 0, newest ? num(newest.seq) : 0) + 1;
    const base = { ...fields, seq, at: new Date() };
    const record: AuditRecord = { ...base, prevHash, hash: chainHash(prevHash, base) };
    await tx.run(
      'INSERT INTO audit (seq, at, kind, actor, upstream, repository, tag, digest, rule, reasons, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [
        record.seq,
        record.at.getTime(),
        record.kind,
        record.actor,
        record.upstream ?? null,
        record.repository ?? null,
        record.tag ?? null,
        record.digest ?? null,
        record.rule ?? null,
        record.reasons ? JSON.stringify(record.reasons) : null,
        record.detail ? JSON.stringify(record.detail) : null,
        record.prevHash,
        record.hash,
      ],
    );
    await tx.run(
      'INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash',
      [record.seq, record.hash],
    );
    return record;
  }

  async queryAudit(q: AuditQuery): Promise<AuditRecord[]> {
    const where: string[] = [];
    const params: Param[] = [];
    if (q.digest) {
      where.push('digest = ?');
      params.push(q.digest);
    }
    if (q.image) {
      where.push(`(upstream || '/' || repository) LIKE ? ESCAPE '\\'`);
      params.push(likePrefix(q.image));
    }
    for (const key of ['upstream', 'repository', 'tag'] as const) {
      const v = q[key];
      if (v !== undefined) {
        where.push(`${key} = ?`);
        params.push(v);
      }
    }
    if (q.kind) {
      where.push('kind = ?');
      params.push(q.kind);
    }
    if (q.kinds) {
      // An empty list matches nothing, as "any of no kinds" should.
      where.push(q.kinds.length ? `kind IN (${q.kinds.map(() => '?').join(', ')})` : '1 = 0');
      params.push(...q.kinds);
    }
    if (q.since) {
      where.push('at >= ?');
      params.push(q.since.getTime());
    }
    if (q.until) {
      where.push('at <= ?');
      params.push(q.until.getTime());
    }
    if (q.afterSeq !== undefined) {
      where.push('seq > ?');
      params.push(q.afterSeq);
    }
    const sql = `SELECT * FROM audit ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ${auditLimit(q.limit)}`;
    return (await this.#db.query(sql, params)).map(auditOf);
  }

  verifyAudit(): Promise<{ ok: boolean; records: number; problems: AuditProblem[] }> {
    return this.#db.snapshot(async (q) => {
      const [row] = await q.query('SELECT seq, hash FROM audit_head WHERE id = 1');
      const head: ChainHead | undefined = row ? { seq: num(row.seq), hash: str(row.hash) } : undefined;
      const { records, problems } = await verifyChain(auditPages(q), head);
      return { ok: problems.length === 0, records, problems };
    });
  }

  publish(e: StoreEvent, audit?: AuditInput): Promise<void> {
    return this.#change(
      async (_tx, emit, append) => {
        emit(e);
        if (audit) await append(audit);
      },
      { exclusive: audit !== undefined },
    );
  }

  subscribe(listener: (e: StoreEvent) => void): () => void {
    return this.#bus.subscribe(listener);
  }

  async close(): Promise<void> {
    this.#health.stop();
    await this.#bus.close();
    await this.#db.close();
  }
}
