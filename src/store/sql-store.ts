// The Store, once, over either database: SQLite and PostgreSQL differ only in their Db adapter.
import { randomUUID } from 'node:crypto';
import type { Db, Param, Row } from './db.ts';
import { GENESIS, chainHash, verifyChain } from './audit-chain.ts';
import type {
  AuditInput, AuditQuery, AuditRecord, DriftEvent, Grant, Pin, Revocation, Store, StoreEvent, StoredManifest,
} from './types.ts';

const str = (v: unknown) => String(v);
const num = (v: unknown) => Number(v);
const date = (v: unknown) => new Date(Number(v));
const opt = (v: unknown) => (v === null || v === undefined ? undefined : String(v));

function pinOf(r: Row): Pin {
  return {
    upstream: str(r.upstream), repository: str(r.repository), tag: str(r.tag), digest: str(r.digest), rule: str(r.rule),
    attestors: JSON.parse(str(r.attestors)) as string[], createdAt: date(r.created_at), updatedAt: date(r.updated_at),
  };
}

function driftOf(r: Row): DriftEvent {
  return {
    id: num(r.id), upstream: str(r.upstream), repository: str(r.repository), tag: str(r.tag), pinnedDigest: str(r.pinned_digest),
    upstreamDigest: str(r.upstream_digest), firstSeen: date(r.first_seen), lastSeen: date(r.last_seen), count: num(r.count), resolved: num(r.resolved) === 1,
  };
}

function revocationOf(r: Row): Revocation {
  return { digest: str(r.digest), reason: str(r.reason), actor: str(r.actor), at: date(r.at) };
}

function grantOf(r: Row): Grant {
  const digest = opt(r.digest);
  return {
    id: str(r.id), scope: digest ? { digest } : { upstream: str(r.upstream), repository: str(r.repository) },
    reason: str(r.reason), actor: str(r.actor), expiresAt: date(r.expires_at), createdAt: date(r.created_at),
  };
}

function auditOf(r: Row): AuditRecord {
  const record: AuditRecord = { seq: num(r.seq), at: date(r.at), kind: str(r.kind) as AuditRecord['kind'], actor: str(r.actor), prevHash: str(r.prev_hash), hash: str(r.hash) };
  for (const key of ['upstream', 'repository', 'tag', 'digest', 'rule'] as const) {
    const v = opt(r[key]);
    if (v !== undefined) record[key] = v;
  }
  if (r.reasons !== null && r.reasons !== undefined) record.reasons = JSON.parse(str(r.reasons)) as string[];
  if (r.detail !== null && r.detail !== undefined) record.detail = JSON.parse(str(r.detail)) as Record<string, unknown>;
  return record;
}

export interface EventBus {
  publish(e: StoreEvent): Promise<void>;
  subscribe(listener: (e: StoreEvent) => void): () => void;
  close(): Promise<void>;
}

export class SqlStore implements Store {
  readonly kind: 'sqlite' | 'postgres';
  readonly #db: Db;
  readonly #events: EventBus;

  constructor(db: Db, events: EventBus) {
    this.#db = db;
    this.kind = db.dialect;
    this.#events = events;
  }

  async getPin(upstream: string, repository: string, tag: string): Promise<Pin | undefined> {
    const [row] = await this.#db.query('SELECT * FROM pins WHERE upstream = ? AND repository = ? AND tag = ?', [upstream, repository, tag]);
    return row ? pinOf(row) : undefined;
  }

  async createPin(p: Omit<Pin, 'createdAt' | 'updatedAt'>): Promise<{ pin: Pin; created: boolean }> {
    const now = Date.now();
    const created = await this.#db.run(
      'INSERT INTO pins (upstream, repository, tag, digest, rule, attestors, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
      [p.upstream, p.repository, p.tag, p.digest, p.rule, JSON.stringify(p.attestors), now, now],
    ) === 1;
    const pin = await this.getPin(p.upstream, p.repository, p.tag);
    if (!pin) throw new Error(`pin ${p.upstream}/${p.repository}:${p.tag} vanished while being created`);
    if (created) await this.publish({ type: 'pin-changed', upstream: p.upstream, repository: p.repository, tag: p.tag, digest: p.digest });
    return { pin, created };
  }

  async movePin(upstream: string, repository: string, tag: string, fromDigest: string, toDigest: string, rule: string, attestors: string[]): Promise<boolean> {
    const moved = await this.#db.run(
      'UPDATE pins SET digest = ?, rule = ?, attestors = ?, updated_at = ? WHERE upstream = ? AND repository = ? AND tag = ? AND digest = ?',
      [toDigest, rule, JSON.stringify(attestors), Date.now(), upstream, repository, tag, fromDigest],
    ) === 1;
    if (moved) await this.publish({ type: 'pin-changed', upstream, repository, tag, digest: toDigest });
    return moved;
  }

  async deletePin(upstream: string, repository: string, tag: string): Promise<boolean> {
    const removed = await this.#db.run('DELETE FROM pins WHERE upstream = ? AND repository = ? AND tag = ?', [upstream, repository, tag]) === 1;
    if (removed) await this.publish({ type: 'pin-changed', upstream, repository, tag });
    return removed;
  }

  async listPins(filter: { upstream?: string; repository?: string } = {}): Promise<Pin[]> {
    const where: string[] = [];
    const params: Param[] = [];
    if (filter.upstream) { where.push('upstream = ?'); params.push(filter.upstream); }
    if (filter.repository) { where.push('repository = ?'); params.push(filter.repository); }
    const rows = await this.#db.query(`SELECT * FROM pins ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY upstream, repository, tag`, params);
    return rows.map(pinOf);
  }

  async recordDrift(upstream: string, repository: string, tag: string, pinnedDigest: string, upstreamDigest: string): Promise<{ event: DriftEvent; isNew: boolean }> {
    const now = Date.now();
    const isNew = await this.#db.run(
      `INSERT INTO drift (upstream, repository, tag, pinned_digest, upstream_digest, first_seen, last_seen, count, resolved)
       VALUES (?, ?, ?, ?, ?, ?, ?, 1, 0) ON CONFLICT (upstream, repository, tag, upstream_digest) WHERE resolved = 0 DO NOTHING`,
      [upstream, repository, tag, pinnedDigest, upstreamDigest, now, now],
    ) === 1;
    if (!isNew) {
      await this.#db.run('UPDATE drift SET count = count + 1, last_seen = ? WHERE upstream = ? AND repository = ? AND tag = ? AND upstream_digest = ? AND resolved = 0',
        [now, upstream, repository, tag, upstreamDigest]);
    }
    const [row] = await this.#db.query('SELECT * FROM drift WHERE upstream = ? AND repository = ? AND tag = ? AND upstream_digest = ? AND resolved = 0',
      [upstream, repository, tag, upstreamDigest]);
    if (!row) throw new Error(`drift event for ${upstream}/${repository}:${tag} vanished while being recorded`);
    return { event: driftOf(row), isNew };
  }

  async listDrift(filter: { unresolvedOnly?: boolean } = {}): Promise<DriftEvent[]> {
    const rows = await this.#db.query(`SELECT * FROM drift ${filter.unresolvedOnly ? 'WHERE resolved = 0' : ''} ORDER BY id`);
    return rows.map(driftOf);
  }

  async resolveDrift(id: number): Promise<DriftEvent | undefined> {
    await this.#db.run('UPDATE drift SET resolved = 1 WHERE id = ?', [id]);
    const [row] = await this.#db.query('SELECT * FROM drift WHERE id = ?', [id]);
    return row ? driftOf(row) : undefined;
  }

  async putManifest(m: StoredManifest): Promise<void> {
    await this.#db.run('INSERT INTO manifests (digest, media_type, bytes) VALUES (?, ?, ?) ON CONFLICT DO NOTHING', [m.digest, m.mediaType, m.bytes]);
  }

  async getManifest(digest: string): Promise<StoredManifest | undefined> {
    const [row] = await this.#db.query('SELECT * FROM manifests WHERE digest = ?', [digest]);
    return row ? { digest: str(row.digest), mediaType: str(row.media_type), bytes: Buffer.from(row.bytes as Uint8Array) } : undefined;
  }

  async admit(upstream: string, repository: string, digest: string, blobs: string[], children: string[]): Promise<void> {
    await this.#db.transaction(async (tx) => {
      const now = Date.now();
      if (await tx.run('UPDATE admissions SET admitted_at = ? WHERE upstream = ? AND repository = ? AND digest = ?', [now, upstream, repository, digest]) === 0) {
        await tx.run('INSERT INTO admissions (upstream, repository, digest, admitted_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING', [upstream, repository, digest, now]);
      }
      for (const blob of new Set(blobs)) {
        await tx.run('INSERT INTO admitted_blobs (upstream, repository, blob, manifest) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING', [upstream, repository, blob, digest]);
      }
      for (const child of new Set(children)) {
        await tx.run('INSERT INTO admitted_children (upstream, repository, child, parent) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING', [upstream, repository, child, digest]);
      }
    });
  }

  async isBlobAdmitted(upstream: string, repository: string, blobDigest: string): Promise<boolean> {
    const rows = await this.#db.query(
      `SELECT 1 AS ok FROM admitted_blobs b WHERE b.upstream = ? AND b.repository = ? AND b.blob = ?
         AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.digest = b.manifest) LIMIT 1`,
      [upstream, repository, blobDigest]);
    return rows.length > 0;
  }

  async isAdmitted(upstream: string, repository: string, digest: string): Promise<{ admittedAt: Date } | undefined> {
    if (await this.getRevocation(digest)) return undefined;
    const [own] = await this.#db.query('SELECT admitted_at FROM admissions WHERE upstream = ? AND repository = ? AND digest = ?', [upstream, repository, digest]);
    if (own) return { admittedAt: date(own.admitted_at) };
    const parent = await this.admittedParent(upstream, repository, digest);
    if (!parent) return undefined;
    const [row] = await this.#db.query('SELECT admitted_at FROM admissions WHERE upstream = ? AND repository = ? AND digest = ?', [upstream, repository, parent]);
    return row ? { admittedAt: date(row.admitted_at) } : undefined;
  }

  async admittedParent(upstream: string, repository: string, digest: string): Promise<string | undefined> {
    const [row] = await this.#db.query(
      `SELECT c.parent FROM admitted_children c JOIN admissions a ON a.upstream = c.upstream AND a.repository = c.repository AND a.digest = c.parent
       WHERE c.upstream = ? AND c.repository = ? AND c.child = ? AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.digest = c.parent) LIMIT 1`,
      [upstream, repository, digest]);
    return row ? str(row.parent) : undefined;
  }

  async revoke(digest: string, reason: string, actor: string): Promise<Revocation> {
    await this.#db.run('INSERT INTO revocations (digest, reason, actor, at) VALUES (?, ?, ?, ?) ON CONFLICT (digest) DO UPDATE SET reason = excluded.reason, actor = excluded.actor, at = excluded.at',
      [digest, reason, actor, Date.now()]);
    await this.publish({ type: 'revoked', digest });
    const revocation = await this.getRevocation(digest);
    if (!revocation) throw new Error(`revocation of ${digest} vanished while being written`);
    return revocation;
  }

  async unrevoke(digest: string, _actor: string): Promise<boolean> {
    const removed = await this.#db.run('DELETE FROM revocations WHERE digest = ?', [digest]) === 1;
    if (removed) await this.publish({ type: 'unrevoked', digest });
    return removed;
  }

  async getRevocation(digest: string): Promise<Revocation | undefined> {
    const [row] = await this.#db.query('SELECT * FROM revocations WHERE digest = ?', [digest]);
    return row ? revocationOf(row) : undefined;
  }

  async listRevocations(): Promise<Revocation[]> {
    return (await this.#db.query('SELECT * FROM revocations ORDER BY at')).map(revocationOf);
  }

  async createGrant(g: Omit<Grant, 'id' | 'createdAt'>): Promise<Grant> {
    const id = randomUUID();
    const scope = 'digest' in g.scope ? [g.scope.digest, null, null] : [null, g.scope.upstream, g.scope.repository];
    await this.#db.run('INSERT INTO grants (id, digest, upstream, repository, reason, actor, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      [id, ...scope, g.reason, g.actor, g.expiresAt.getTime(), Date.now()]);
    await this.publish({ type: 'grant-changed', ...('digest' in g.scope ? { digest: g.scope.digest } : g.scope) });
    const [row] = await this.#db.query('SELECT * FROM grants WHERE id = ?', [id]);
    if (!row) throw new Error(`grant ${id} vanished while being written`);
    return grantOf(row);
  }

  async findGrant(upstream: string, repository: string, digest: string, now: Date): Promise<Grant | undefined> {
    const [row] = await this.#db.query(
      `SELECT * FROM grants WHERE revoked = 0 AND expires_at > ? AND (digest = ? OR (upstream = ? AND repository = ?)) ORDER BY expires_at DESC LIMIT 1`,
      [now.getTime(), digest, upstream, repository]);
    return row ? grantOf(row) : undefined;
  }

  async revokeGrant(id: string): Promise<boolean> {
    const removed = await this.#db.run('UPDATE grants SET revoked = 1 WHERE id = ? AND revoked = 0', [id]) === 1;
    if (removed) await this.publish({ type: 'grant-changed' });
    return removed;
  }

  async listGrants(includeExpired = false): Promise<Grant[]> {
    const rows = includeExpired
      ? await this.#db.query('SELECT * FROM grants ORDER BY created_at')
      : await this.#db.query('SELECT * FROM grants WHERE revoked = 0 AND expires_at > ? ORDER BY created_at', [Date.now()]);
    return rows.map(grantOf);
  }

  async appendAudit(e: AuditInput): Promise<AuditRecord> {
    return this.#db.transaction(async (tx) => {
      const [head] = await tx.query('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1');
      const base: Omit<AuditRecord, 'prevHash' | 'hash'> = { ...e, seq: head ? num(head.seq) + 1 : 1, at: new Date() };
      const prevHash = head ? str(head.hash) : GENESIS;
      const record: AuditRecord = { ...base, prevHash, hash: chainHash(prevHash, base) };
      await tx.run(
        'INSERT INTO audit (seq, at, kind, actor, upstream, repository, tag, digest, rule, reasons, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        [record.seq, record.at.getTime(), record.kind, record.actor, e.upstream ?? null, e.repository ?? null, e.tag ?? null, e.digest ?? null, e.rule ?? null,
          e.reasons ? JSON.stringify(e.reasons) : null, e.detail ? JSON.stringify(e.detail) : null, record.prevHash, record.hash]);
      return record;
    }, { exclusive: true });
  }

  async queryAudit(q: AuditQuery): Promise<AuditRecord[]> {
    const where: string[] = [];
    const params: Param[] = [];
    if (q.digest) { where.push('digest = ?'); params.push(q.digest); }
    if (q.image) { where.push(`(upstream || '/' || repository) LIKE ?`); params.push(`${q.image.replace(/[\\%_]/g, (c) => `\\${c}`)}%`); }
    if (q.kind) { where.push('kind = ?'); params.push(q.kind); }
    if (q.since) { where.push('at >= ?'); params.push(q.since.getTime()); }
    if (q.until) { where.push('at <= ?'); params.push(q.until.getTime()); }
    if (q.afterSeq !== undefined) { where.push('seq > ?'); params.push(q.afterSeq); }
    const limit = Math.min(10_000, Math.max(1, q.limit ?? 100));
    const likeEscape = q.image ? " ESCAPE '\\'" : '';
    const sql = `SELECT * FROM audit ${where.length ? `WHERE ${where.join(' AND ')}` : ''}`.replace(`LIKE ?`, `LIKE ?${likeEscape}`);
    return (await this.#db.query(`${sql} ORDER BY seq DESC LIMIT ${limit}`, params)).map(auditOf);
  }

  async verifyAudit(): Promise<{ ok: boolean; records: number; problems: ReturnType<typeof verifyChain> }> {
    const records = (await this.#db.query('SELECT * FROM audit ORDER BY seq')).map(auditOf);
    const problems = verifyChain(records);
    return { ok: problems.length === 0, records: records.length, problems };
  }

  publish(e: StoreEvent): Promise<void> {
    return this.#events.publish(e);
  }

  subscribe(listener: (e: StoreEvent) => void): () => void {
    return this.#events.subscribe(listener);
  }

  async close(): Promise<void> {
    await this.#events.close();
    await this.#db.close();
  }
}
