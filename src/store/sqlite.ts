// SQLite through node:sqlite: WAL, and synchronous=FULL so that a write the proxy acknowledged
// survives a crash or kill -9. One connection per process; exclusive transactions also lock out
// other processes on the same file.
//
// Every failure leaves as a StoreError carrying SQLite's own cause (disk full, read-only, busy,
// corrupt) with the file and the fix. SQLite rolls a transaction back by itself on some errors
// (a COMMIT on a full disk): a ROLLBACK then is skipped, so its "no transaction is active" never
// hides the real cause.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import type { Db, Param, Queryable, Row, TransactionOptions } from './db.ts';
import { StoreError, classifySqlite } from './faults.ts';

/** Prepared statements kept per connection; the store's SQL is a fixed set far below it. */
const MAX_STATEMENTS = 256;

export interface SqliteOptions {
  /**
   * How long a write waits for another process's write lock. node:sqlite is synchronous: the wait
   * blocks the event loop, so it is kept short (only a second pullgate on the same file, a
   * misconfiguration, ever holds that lock).
   */
  busyTimeoutMs?: number;
  /** Told of every failed operation before it is thrown. */
  onFault?: (err: StoreError) => void;
}

export const SQLITE_DEFAULTS = { busyTimeoutMs: 1_000 } as const;

function bind(params: Param[]): SQLInputValue[] {
  return params.map((p) => (Buffer.isBuffer(p) ? new Uint8Array(p.buffer, p.byteOffset, p.length) : p));
}

function connect(path: string, readOnly: boolean, busyTimeoutMs: number): DatabaseSync {
  try {
    return new DatabaseSync(path, { readOnly, timeout: busyTimeoutMs });
  } catch (err) {
    const fault = classifySqlite(err, path);
    throw new Error(`cannot open the SQLite store at ${path} (store.sqlite.path): ${fault.cause}: ${fault.fix}`, {
      cause: err,
    });
  }
}

export function openSqlite(path: string, opts: SqliteOptions = {}): Db {
  const inMemory = path === ':memory:';
  const busyTimeoutMs = opts.busyTimeoutMs ?? SQLITE_DEFAULTS.busyTimeoutMs;
  const where = `SQLite store ${path}`;
  const fail = (err: unknown): StoreError => {
    if (err instanceof StoreError) return err;
    const e = new StoreError('SQLite', classifySqlite(err, path), where, err);
    opts.onFault?.(e);
    return e;
  };
  /** Runs one call into SQLite, its failure as a StoreError. */
  const guard = <T>(work: () => T): T => {
    try {
      return work();
    } catch (err) {
      throw fail(err);
    }
  };
  const queryable = (db: DatabaseSync): Queryable => {
    // Statements are prepared once per connection: the store's SQL is a fixed set of strings, and
    // preparing (parsing and planning) on every call was most of what a manifest request spent in it.
    const statements = new Map<string, StatementSync>();
    const prepared = (sql: string): StatementSync => {
      let st = statements.get(sql);
      if (!st) {
        st = db.prepare(sql);
        if (statements.size < MAX_STATEMENTS) statements.set(sql, st);
      }
      return st;
    };
    return {
      async query(sql, params = []) {
        return guard(() => prepared(sql).all(...bind(params)) as Row[]);
      },
      async run(sql, params = []) {
        return guard(() => Number(prepared(sql).run(...bind(params)).changes));
      },
    };
  };

  if (!inMemory) mkdirSync(dirname(path), { recursive: true });
  const db = connect(path, false, busyTimeoutMs);
  try {
    db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;');
  } catch (err) {
    db.close();
    const fault = classifySqlite(err, path);
    throw new Error(`cannot open the SQLite store at ${path} (store.sqlite.path): ${fault.cause}: ${fault.fix}`, {
      cause: err,
    });
  }
  const q = queryable(db);
  // node:sqlite is synchronous, but a transaction awaits between its statements: everything goes
  // through one queue so no other statement runs inside someone else's open transaction.
  let queue: Promise<unknown> = Promise.resolve();
  const enqueue = <T>(work: () => Promise<T>): Promise<T> => {
    const next = queue.then(work);
    queue = next.catch(() => undefined);
    return next;
  };
  const transaction = <T>(fn: (tx: Queryable) => Promise<T>, o: TransactionOptions = {}): Promise<T> =>
    enqueue(async () => {
      guard(() => db.exec(o.exclusive ? 'BEGIN IMMEDIATE' : 'BEGIN'));
      try {
        const result = await fn(q);
        guard(() => db.exec('COMMIT'));
        return result;
      } catch (err) {
        if (db.isTransaction) {
          try {
            db.exec('ROLLBACK');
          } catch {
            /* the original error says what went wrong */
          }
        }
        throw err;
      }
    });
  return {
    dialect: 'sqlite',
    query: (sql, params) => enqueue(() => q.query(sql, params)),
    run: (sql, params) => enqueue(() => q.run(sql, params)),
    transaction,
    async snapshot(fn) {
      // A second, read-only connection: in WAL mode its read transaction sees one snapshot while the
      // main connection keeps writing. An in-memory database has no second connection to open.
      if (inMemory) return transaction(fn);
      const reader = guard(() => new DatabaseSync(path, { readOnly: true, timeout: busyTimeoutMs }));
      try {
        guard(() => reader.exec('BEGIN'));
        return await fn(queryable(reader));
      } finally {
        if (reader.isTransaction) reader.exec('COMMIT');
        reader.close();
      }
    },
    async probe() {
      await enqueue(() => q.query('SELECT count(*) AS n FROM schema_migrations'));
    },
    async close() {
      await queue;
      db.close();
    },
  };
}
