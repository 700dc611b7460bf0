// Opens the configured store and brings its schema up to date.
import type { StoreConfig } from '../config/types.ts';
import type { Logger } from '../ops/log.ts';
import { localBus } from './events.ts';
import { migrate } from './migrations.ts';
import { postgresBus } from './pg-events.ts';
import { openPostgres } from './postgres.ts';
import { SqlStore } from './sql-store.ts';
import { openSqlite } from './sqlite.ts';
import type { AuditRecord, Store } from './types.ts';

/** Every committed audit record's hash goes to the log too: an anchor outside the database for `audit verify`. */
function anchor(logger: Logger | undefined): (r: AuditRecord) => void {
  return (r) => logger?.info({ seq: r.seq, kind: r.kind, digest: r.digest, hash: r.hash }, 'audit record');
}

export async function openStore(cfg: StoreConfig, opts: { logger?: Logger } = {}): Promise<Store> {
  if (cfg.kind === 'sqlite') {
    const db = openSqlite(cfg.path);
    try {
      await migrate(db);
    } catch (err) {
      await db.close();
      throw new Error(`cannot migrate the SQLite store at ${cfg.path}: ${(err as Error).message}`);
    }
    return new SqlStore(db, localBus(opts.logger), { onAudit: anchor(opts.logger) });
  }
  const db = await openPostgres(cfg.url, cfg.schema);
  try {
    await migrate(db);
    return new SqlStore(db, await postgresBus(cfg.url, cfg.schema, opts.logger), { onAudit: anchor(opts.logger) });
  } catch (err) {
    await db.close();
    throw err;
  }
}
