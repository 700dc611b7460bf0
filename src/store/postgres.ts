// PostgreSQL through pg: a pool for queries, all tables in one schema, exclusive transactions
// serialised with a transaction-scoped advisory lock, and LISTEN/NOTIFY on a dedicated connection
// for cross-replica events.
import pg from 'pg';
import type { Logger } from '../ops/log.ts';
import type { Db, Param, Queryable, Row } from './db.ts';
import type { EventBus } from './sql-store.ts';
import type { StoreEvent } from './types.ts';

/** `?` placeholders become `$1, $2, …` (the store's SQL has no `?` inside string literals). */
function numbered(sql: string): string {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
}

function queryable(client: pg.Pool | pg.PoolClient): Queryable {
  return {
    async query(sql: string, params: Param[] = []) {
      return (await client.query(numbered(sql), params)).rows as Row[];
    },
    async run(sql: string, params: Param[] = []) {
      return (await client.query(numbered(sql), params)).rowCount ?? 0;
    },
  };
}

export async function openPostgres(url: string, schema: string): Promise<{ db: Db; pool: pg.Pool }> {
  const pool = new pg.Pool({ connectionString: url, max: 10, options: `-c search_path=${schema}` });
  pool.on('error', () => { /* idle client errors surface on the next query */ });
  const lockKey = `pullgate:${schema}:exclusive`;
  // Replicas starting together would race on CREATE SCHEMA IF NOT EXISTS: serialise it.
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [lockKey]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    await pool.end();
    throw err;
  } finally {
    client.release();
  }
  const db: Db = {
    dialect: 'postgres',
    ...queryable(pool),
    async transaction<T>(fn: (tx: Queryable) => Promise<T>, opts: { exclusive?: boolean } = {}): Promise<T> {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        if (opts.exclusive) await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [lockKey]);
        const result = await fn(queryable(client));
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },
    async close() {
      await pool.end();
    },
  };
  return { db, pool };
}

const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5_000;

/** Events over NOTIFY; the listening connection reconnects with bounded backoff when it drops. */
export async function postgresEvents(url: string, schema: string, pool: pg.Pool, logger?: Logger): Promise<EventBus> {
  const channel = `pullgate_${schema}`;
  const listeners = new Set<(e: StoreEvent) => void>();
  let client: pg.Client | undefined;
  let closed = false;
  let delay = RECONNECT_MIN_MS;
  let timer: NodeJS.Timeout | undefined;

  const deliver = (e: StoreEvent) => { for (const l of listeners) l(e); };
  const connect = async (): Promise<void> => {
    const c = new pg.Client({ connectionString: url });
    c.on('notification', (n) => {
      if (n.channel !== channel || !n.payload) return;
      try {
        deliver(JSON.parse(n.payload) as StoreEvent);
      } catch {
        logger?.warn({ channel }, 'ignoring a malformed store notification');
      }
    });
    c.on('error', (err) => {
      logger?.warn({ error: err.message }, 'store notification connection lost; reconnecting');
      c.end().catch(() => undefined);
      if (client === c) client = undefined;
      schedule();
    });
    await c.connect();
    await c.query(`LISTEN ${channel}`);
    client = c;
    delay = RECONNECT_MIN_MS;
  };
  const schedule = () => {
    if (closed || timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      connect().catch((err: Error) => {
        logger?.warn({ error: err.message, retryMs: delay }, 'store notification reconnect failed');
        delay = Math.min(delay * 2, RECONNECT_MAX_MS);
        schedule();
      });
    }, delay);
  };
  await connect();
  return {
    async publish(e) {
      await pool.query('SELECT pg_notify($1, $2)', [channel, JSON.stringify(e)]);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => { listeners.delete(listener); };
    },
    async close() {
      closed = true;
      clearTimeout(timer);
      await client?.end().catch(() => undefined);
    },
  };
}
