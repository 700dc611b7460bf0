// Opens the configured store, brings its schema up to date and starts watching its health.
import type { StoreConfig } from '../config/types.ts';
import type { Logger } from '../ops/log.ts';
import { localBus } from './events.ts';
import { HealthMonitor, STORE_PROBE_INTERVAL_MS } from './health.ts';
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
  const intervalMs = cfg.probeIntervalMs ?? STORE_PROBE_INTERVAL_MS;
  if (cfg.kind === 'sqlite') {
    const health = new HealthMonitor({ store: 'SQLite', intervalMs, logger: opts.logger });
    const db = openSqlite(cfg.path, { busyTimeoutMs: cfg.busyTimeoutMs, onFault: (e) => health.fault(e) });
    try {
      await migrate(db);
    } catch (err) {
      await db.close();
      const why = (err as { operator?: string }).operator ?? (err as Error).message;
      throw new Error(`cannot migrate the SQLite store at ${cfg.path}: ${why}`, { cause: err });
    }
    health.start(() => db.probe());
    return new SqlStore(db, localBus(opts.logger), health, { onAudit: anchor(opts.logger) });
  }
  const health = new HealthMonitor({ store: 'PostgreSQL', intervalMs, logger: opts.logger });
  const { url, schema, kind: _kind, probeIntervalMs: _probe, ...limits } = cfg;
  const db = await openPostgres(url, schema, { ...limits, onFault: (e) => health.fault(e) });
  try {
    await migrate(db);
    const bus = await postgresBus(url, schema, { logger: opts.logger, connectTimeoutMs: limits.connectTimeoutMs });
    health.start(() => db.probe());
    return new SqlStore(db, bus, health, { onAudit: anchor(opts.logger) });
  } catch (err) {
    await db.close();
    throw err;
  }
}
