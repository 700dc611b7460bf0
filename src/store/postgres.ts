// PostgreSQL through pg: a pool for queries with every table in one schema (created if missing),
// exclusive transactions serialised with a transaction-scoped advisory lock per schema.
import pg from 'pg';
import type { Db, Param, Queryable, Row } from './db.ts';
import { poolName } from './pg-events.ts';

/** Unquoted, lowercase SQL identifiers only: the schema is spliced into DDL and the search path. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export const CONNECT_TIMEOUT_MS = 10_000;

/** The URL without its password, for error messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable store.url)';
  }
}

export function checkSchemaName(schema: string): void {
  if (!SCHEMA_NAME.test(schema)) {
    throw new Error(
      `store.schema ${JSON.stringify(schema)} is not a lowercase SQL identifier (letters a-z, digits and _, not starting with a digit, at most 63): choose another name`,
    );
  }
}

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

export async function openPostgres(url: string, schema: string): Promise<Db> {
  checkSchemaName(schema);
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    options: `-c search_path=${schema}`,
    application_name: poolName(schema),
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
  });
  pool.on('error', () => {
    /* an idle client's error surfaces on the next query that needs a connection */
  });
  const lockKey = `pullgate:${schema}`;

  async function inTransaction<T>(begin: string, fn: (tx: Queryable) => Promise<T>, exclusive = false): Promise<T> {
    const client = await pool.connect();
    // A checked-out client whose backend dies (failover, pg_terminate_backend) emits 'error'; the
    // pool only listens while the client is idle, and an unheard 'error' would end the process.
    // The running query fails with the same error, so the request fails closed; the broken client
    // is destroyed on release instead of going back to the pool.
    let broken: Error | undefined;
    const onError = (err: Error): void => {
      broken = err;
    };
    client.on('error', onError);
    try {
      await client.query(begin);
      if (exclusive) await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [lockKey]);
      const result = await fn(queryable(client));
      await client.query('COMMIT');
      return result;
    } catch (err) {
      if (!broken) await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }

  // Replicas starting together would race on CREATE SCHEMA IF NOT EXISTS: serialise it too.
  try {
    await inTransaction('BEGIN', (tx) => tx.run(`CREATE SCHEMA IF NOT EXISTS ${schema}`), true);
  } catch (err) {
    await pool.end();
    throw new Error(
      `cannot prepare the PostgreSQL store at ${redactUrl(url)} (store.url), schema ${schema}: ${(err as Error).message}; check that the server is up and that the URL's user may create the schema`,
    );
  }
  return {
    dialect: 'postgres',
    ...queryable(pool),
    transaction: (fn, opts = {}) => inTransaction('BEGIN', fn, opts.exclusive),
    snapshot: (fn) => inTransaction('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY', fn),
    async close() {
      await pool.end();
    },
  };
}
