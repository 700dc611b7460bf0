// Opens the configured store and brings its schema up to date.
import type { StoreConfig } from '../config/types.ts';
import type { Logger } from '../ops/log.ts';
import type { Db } from './db.ts';
import { migrations } from './migrations.ts';
import { openPostgres, postgresEvents } from './postgres.ts';
import { SqlStore, type EventBus } from './sql-store.ts';
import { openSqlite } from './sqlite.ts';
import type { Store, StoreEvent } from './types.ts';

/** Applies pending migrations; concurrent starts of several replicas serialise on the exclusive lock. */
export async function migrate(db: Db): Promise<void> {
  const steps = migrations(db.dialect);
  await db.transaction(async (tx) => {
    await tx.run('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)');
    const done = new Set((await tx.query('SELECT version FROM schema_migrations')).map((r) => Number(r.version)));
    for (const [i, statements] of steps.entries()) {
      const version = i + 1;
      if (done.has(version)) continue;
      for (const sql of statements) await tx.run(sql);
      await tx.run('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)', [version, Date.now()]);
    }
  }, { exclusive: true });
}

/** In-process events: a single SQLite replica has no one else to tell. */
function localEvents(): EventBus {
  const listeners = new Set<(e: StoreEvent) => void>();
  return {
    async publish(e) { for (const l of listeners) l(e); },
    subscribe(listener) {
      listeners.add(listener);
      return () => { listeners.delete(listener); };
    },
    async close() { listeners.clear(); },
  };
}

export async function openStore(cfg: StoreConfig, opts: { logger?: Logger } = {}): Promise<Store> {
  if (cfg.kind === 'sqlite') {
    const db = openSqlite(cfg.path);
    await migrate(db);
    return new SqlStore(db, localEvents());
  }
  const { db, pool } = await openPostgres(cfg.url, cfg.schema);
  try {
    await migrate(db);
    return new SqlStore(db, await postgresEvents(cfg.url, cfg.schema, pool, opts.logger));
  } catch (err) {
    await db.close();
    throw err;
  }
}
