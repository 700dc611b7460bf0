// Schema versions, applied in order at start; each runs once per database, recorded in
// schema_migrations. Never edit a released version: add the next one. A version only adds
// (tables, columns with defaults, indexes), so replicas of the previous release keep working
// against the migrated schema during a rolling upgrade (docs/deploy.md, upgrades).
import { GENESIS } from './audit-chain.ts';
import type { Db } from './db.ts';

const BLOB = { sqlite: 'BLOB', postgres: 'BYTEA' } as const;
const SERIAL = { sqlite: 'INTEGER PRIMARY KEY AUTOINCREMENT', postgres: 'BIGSERIAL PRIMARY KEY' } as const;

export function migrations(dialect: 'sqlite' | 'postgres'): string[][] {
  return [
    [
      `CREATE TABLE pins (upstream TEXT NOT NULL, repository TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL,
         rule TEXT NOT NULL, attestors TEXT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
         PRIMARY KEY (upstream, repository, tag))`,
      `CREATE TABLE drift (id ${SERIAL[dialect]}, upstream TEXT NOT NULL, repository TEXT NOT NULL, tag TEXT NOT NULL,
         pinned_digest TEXT NOT NULL, upstream_digest TEXT NOT NULL, first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL,
         count BIGINT NOT NULL, resolved INTEGER NOT NULL DEFAULT 0)`,
      `CREATE UNIQUE INDEX drift_open ON drift (upstream, repository, tag, upstream_digest) WHERE resolved = 0`,
      `CREATE TABLE manifests (digest TEXT PRIMARY KEY, media_type TEXT NOT NULL, bytes ${BLOB[dialect]} NOT NULL)`,
      `CREATE TABLE admissions (upstream TEXT NOT NULL, repository TEXT NOT NULL, digest TEXT NOT NULL, admitted_at BIGINT NOT NULL,
         PRIMARY KEY (upstream, repository, digest))`,
      `CREATE TABLE admitted_blobs (upstream TEXT NOT NULL, repository TEXT NOT NULL, blob TEXT NOT NULL, manifest TEXT NOT NULL,
         PRIMARY KEY (upstream, repository, blob, manifest))`,
      `CREATE TABLE admitted_children (upstream TEXT NOT NULL, repository TEXT NOT NULL, child TEXT NOT NULL, parent TEXT NOT NULL,
         PRIMARY KEY (upstream, repository, child, parent))`,
      `CREATE TABLE revocations (digest TEXT PRIMARY KEY, reason TEXT NOT NULL, actor TEXT NOT NULL, at BIGINT NOT NULL)`,
      `CREATE TABLE grants (id TEXT PRIMARY KEY, digest TEXT, upstream TEXT, repository TEXT, reason TEXT NOT NULL, actor TEXT NOT NULL,
         expires_at BIGINT NOT NULL, created_at BIGINT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)`,
      `CREATE TABLE audit (seq BIGINT PRIMARY KEY, at BIGINT NOT NULL, kind TEXT NOT NULL, actor TEXT NOT NULL, upstream TEXT,
         repository TEXT, tag TEXT, digest TEXT, rule TEXT, reasons TEXT, detail TEXT, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)`,
      `CREATE INDEX audit_digest ON audit (digest)`,
      `CREATE INDEX audit_image ON audit (upstream, repository)`,
    ],
    [
      // The chain head, so that records cut off the end of the trail are detected; seeded from the
      // newest record of a trail written before it existed.
      `CREATE TABLE audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL, hash TEXT NOT NULL)`,
      `INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '${GENESIS}')`,
      `UPDATE audit_head SET seq = (SELECT MAX(seq) FROM audit), hash = (SELECT hash FROM audit ORDER BY seq DESC LIMIT 1)
         WHERE EXISTS (SELECT 1 FROM audit)`,
      // Revoking an index looks up its children, and withdraws their blobs and admissions.
      `CREATE INDEX admitted_children_parent ON admitted_children (parent)`,
      `CREATE INDEX admitted_blobs_manifest ON admitted_blobs (upstream, repository, manifest)`,
    ],
    [
      // The tag a manifest was admitted under: a blob's permit judges its manifest again in that
      // context, since rules may match tags.
      `ALTER TABLE admissions ADD COLUMN tag TEXT`,
    ],
  ];
}

/** A database this pullgate must not use: its schema is newer than the migrations it knows. */
export class SchemaTooNewError extends Error {
  override name = 'SchemaTooNewError';
  readonly version: number;
  readonly known: number;
  constructor(version: number, known: number) {
    super(
      `the database schema is at version ${version}, newer than this pullgate knows (${known}): a newer pullgate migrated it. ` +
        'Run that version (or newer), or restore the backup taken before the upgrade; an older pullgate never runs on a newer schema (docs/deploy.md, upgrades)',
    );
    this.version = version;
    this.known = known;
  }
}

/**
 * Applies pending migrations; concurrent starts of several replicas serialise on the exclusive
 * lock. Refuses a schema newer than it knows (SchemaTooNewError): the newer pullgate may have
 * changed what tables mean, and an older one writing to them could break the pins, the
 * revocations or the audit chain for every replica.
 */
export async function migrate(db: Db): Promise<void> {
  const steps = migrations(db.dialect);
  await db.transaction(
    async (tx) => {
      await tx.run(
        'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)',
      );
      const done = new Set((await tx.query('SELECT version FROM schema_migrations')).map((r) => Number(r.version)));
      const newest = Math.max(0, ...done);
      if (newest > steps.length) throw new SchemaTooNewError(newest, steps.length);
      for (const [i, statements] of steps.entries()) {
        const version = i + 1;
        if (done.has(version)) continue;
        for (const sql of statements) await tx.run(sql);
        await tx.run('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)', [version, Date.now()]);
      }
    },
    { exclusive: true, maintenance: true },
  );
}
