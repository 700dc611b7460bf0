// PostgreSQL through pg: a pool for queries with every table in one schema (created if missing),
// exclusive transactions serialised with a transaction-scoped advisory lock per schema.
//
// Faults are bounded and fail closed: every statement runs under a server-side statement and lock
// timeout and a client-side read timeout (a cut network never answers), getting a connection is
// bounded, and every driver error leaves as a StoreError (503 UNAVAILABLE) after being reported to
// the health monitor. A connection that broke is destroyed, never returned to the pool; the pool
// opens new ones as requests need them, which is how the store reconnects.
import pg from 'pg';
import type { Db, Param, Queryable, Row, TransactionOptions } from './db.ts';
import { StoreError, classifyPg } from './faults.ts';
import { poolName } from './pg-events.ts';

/** Unquoted, lowercase SQL identifiers only: the schema is spliced into DDL and the search path. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export interface PostgresLimits {
  /** Longest a statement may run (server side, statement_timeout). */
  statementTimeoutMs: number;
  /** Longest a statement may wait for a lock (server side, lock_timeout); below the statement timeout. */
  lockTimeoutMs: number;
  /** Longest to wait for a connection: a new one, or a pooled one to be free. */
  connectTimeoutMs: number;
  /** Connections per replica. */
  poolSize: number;
}

export const POSTGRES_DEFAULTS: PostgresLimits = {
  statementTimeoutMs: 5_000,
  lockTimeoutMs: 2_000,
  connectTimeoutMs: 5_000,
  poolSize: 10,
};

/** The client's own bound beyond the server's statement timeout, for a server or network that went silent. */
const READ_TIMEOUT_MARGIN_MS = 2_000;
/** A transaction left open (a stalled replica) is ended by the server after this long. */
const IDLE_IN_TRANSACTION_MS = 30_000;
/** Migrations and schema creation may legitimately take long on a large database. */
const MAINTENANCE_TIMEOUT_MS = 10 * 60_000;
const KEEPALIVE_MS = 10_000;

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

/** An error the server sent (it has a SQLSTATE) leaves the connection usable; any other may not. */
function fromServer(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
}

export interface PostgresOptions extends Partial<PostgresLimits> {
  /** Told of every failed operation before it is thrown. */
  onFault?: (err: StoreError) => void;
}

export interface PostgresDb extends Db {
  /** Resolves when the server answers and accepts writes. */
  probe(): Promise<void>;
}

export async function openPostgres(url: string, schema: string, opts: PostgresOptions = {}): Promise<PostgresDb> {
  checkSchemaName(schema);
  const limits: PostgresLimits = { ...POSTGRES_DEFAULTS, ...opts };
  const where = `PostgreSQL store ${redactUrl(url)} schema ${schema}`;
  const readTimeoutMs = limits.statementTimeoutMs + READ_TIMEOUT_MARGIN_MS;
  const pool = new pg.Pool({
    connectionString: url,
    max: limits.poolSize,
    options: [
      `-c search_path=${schema}`,
      `-c statement_timeout=${limits.statementTimeoutMs}`,
      `-c lock_timeout=${limits.lockTimeoutMs}`,
      `-c idle_in_transaction_session_timeout=${Math.max(IDLE_IN_TRANSACTION_MS, limits.statementTimeoutMs * 2)}`,
    ].join(' '),
    application_name: poolName(schema),
    connectionTimeoutMillis: limits.connectTimeoutMs,
    query_timeout: readTimeoutMs,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_MS,
  });
  pool.on('error', () => {
    /* an idle client's error surfaces on the next query that needs a connection */
  });
  // Every client hears its own 'error' for its whole life. pg emits one when a backend dies while the
  // client has no query in flight, and the pool's and our own listeners each cover only part of a
  // client's life (idle, inside a transaction): a backend killed in a gap between them ended the
  // process (seen under pg_terminate_backend bursts). pg marks such a client unqueryable before
  // emitting, so the pool still drops it on release; the affected query fails on its own.
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
  });
  const lockKey = `pullgate:${schema}`;

  const fail = (err: unknown): StoreError => {
    if (err instanceof StoreError) return err;
    const e = new StoreError('PostgreSQL', classifyPg(err), where, err);
    opts.onFault?.(e);
    return e;
  };

  function queryable(client: pg.Pool | pg.PoolClient, timeoutMs = readTimeoutMs): Queryable {
    const send = async (sql: string, params: Param[]): Promise<pg.QueryResult> => {
      // query_timeout per query is honoured by pg's client but missing from its type.
      const config: pg.QueryConfig<Param[]> & { query_timeout: number } = {
        text: numbered(sql),
        values: params,
        query_timeout: timeoutMs,
      };
      try {
        return await client.query(config);
      } catch (err) {
        throw fail(err);
      }
    };
    return {
      async query(sql: string, params: Param[] = []) {
        return (await send(sql, params)).rows as Row[];
      },
      async run(sql: string, params: Param[] = []) {
        return (await send(sql, params)).rowCount ?? 0;
      },
    };
  }

  async function inTransaction<T>(
    begin: string,
    fn: (tx: Queryable) => Promise<T>,
    opts: TransactionOptions = {},
  ): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      throw fail(err);
    }
    // A checked-out client whose backend dies (failover, pg_terminate_backend) emits 'error'; the
    // pool only listens while the client is idle, and an unheard 'error' would end the process.
    // The running query fails with the same error, so the request fails closed; the broken client
    // is destroyed on release instead of going back to the pool.
    let broken: Error | undefined;
    const onError = (err: Error): void => {
      broken = err;
    };
    client.on('error', onError);
    const tx = queryable(client, opts.maintenance ? MAINTENANCE_TIMEOUT_MS : readTimeoutMs);
    try {
      await tx.run(begin);
      if (opts.maintenance) {
        await tx.run(`SET LOCAL statement_timeout = ${MAINTENANCE_TIMEOUT_MS}`);
        await tx.run(`SET LOCAL lock_timeout = ${MAINTENANCE_TIMEOUT_MS}`);
      }
      if (opts.exclusive) {
        // The advisory lock is this store's own queue of exclusive transactions (audit appends), not
        // a foreign lock: waiting in it is bounded by the statement timeout, not the lock timeout.
        if (!opts.maintenance) await tx.run(`SET LOCAL lock_timeout = ${limits.statementTimeoutMs}`);
        await tx.query('SELECT pg_advisory_xact_lock(hashtext(?))', [lockKey]);
        if (!opts.maintenance) await tx.run(`SET LOCAL lock_timeout = ${limits.lockTimeoutMs}`);
      }
      const result = await fn(tx);
      await tx.run('COMMIT');
      return result;
    } catch (err) {
      // A client-side read timeout or a socket error leaves the connection in an unknown state.
      const raw = err instanceof StoreError ? err.cause : err;
      if (!broken && err instanceof StoreError && !fromServer(raw)) broken = raw as Error;
      if (!broken) await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }

  // Replicas starting together would race on CREATE SCHEMA IF NOT EXISTS: serialise it too.
  try {
    await inTransaction('BEGIN', (tx) => tx.run(`CREATE SCHEMA IF NOT EXISTS ${schema}`), {
      exclusive: true,
      maintenance: true,
    });
  } catch (err) {
    await pool.end();
    const cause = err instanceof StoreError ? (err.cause as Error).message : (err as Error).message;
    throw new Error(
      `cannot prepare the PostgreSQL store at ${redactUrl(url)} (store.url), schema ${schema}: ${cause}; check that the server is up and that the URL's user may create the schema`,
    );
  }
  const q = queryable(pool);
  return {
    dialect: 'postgres',
    ...q,
    transaction: (fn, o) => inTransaction('BEGIN', fn, o),
    snapshot: (fn) => inTransaction('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY', fn),
    async probe() {
      const [row] = await q.query('SELECT pg_is_in_recovery() AS standby');
      if (row?.standby === true)
        throw fail(
          Object.assign(new Error('the server is a standby (pg_is_in_recovery() is true)'), { code: '25006' }),
        );
    },
    async close() {
      await pool.end();
    },
  };
}
