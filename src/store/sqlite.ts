// SQLite through node:sqlite: WAL, and synchronous=FULL so that a write the proxy acknowledged
// survives a crash or kill -9. One connection per process; exclusive transactions also lock out
// other processes on the same file.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type SQLInputValue } from 'node:sqlite';
import type { Db, Param, Queryable, Row } from './db.ts';

const BUSY_TIMEOUT_MS = 10_000;

function bind(params: Param[]): SQLInputValue[] {
  return params.map((p) => (Buffer.isBuffer(p) ? new Uint8Array(p.buffer, p.byteOffset, p.length) : p));
}

function queryable(db: DatabaseSync): Queryable {
  return {
    async query(sql, params = []) {
      return db.prepare(sql).all(...bind(params)) as Row[];
    },
    async run(sql, params = []) {
      return Number(db.prepare(sql).run(...bind(params)).changes);
    },
  };
}

function connect(path: string, readOnly: boolean): DatabaseSync {
  try {
    return new DatabaseSync(path, { readOnly, timeout: BUSY_TIMEOUT_MS });
  } catch (err) {
    throw new Error(
      `cannot open the SQLite store at ${path} (store.path): ${(err as Error).message}; check that the directory exists and is writable by this user`,
    );
  }
}

export function openSqlite(path: string): Db {
  const inMemory = path === ':memory:';
  if (!inMemory) mkdirSync(dirname(path), { recursive: true });
  const db = connect(path, false);
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;');
  const q = queryable(db);
  // node:sqlite is synchronous, but a transaction awaits between its statements: everything goes
  // through one queue so no other statement runs inside someone else's open transaction.
  let queue: Promise<unknown> = Promise.resolve();
  const enqueue = <T>(work: () => Promise<T>): Promise<T> => {
    const next = queue.then(work);
    queue = next.catch(() => undefined);
    return next;
  };
  const transaction = <T>(fn: (tx: Queryable) => Promise<T>, opts: { exclusive?: boolean } = {}): Promise<T> =>
    enqueue(async () => {
      db.exec(opts.exclusive ? 'BEGIN IMMEDIATE' : 'BEGIN');
      try {
        const result = await fn(q);
        db.exec('COMMIT');
        return result;
      } catch (err) {
        db.exec('ROLLBACK');
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
      const reader = connect(path, true);
      try {
        reader.exec('BEGIN');
        return await fn(queryable(reader));
      } finally {
        if (reader.isTransaction) reader.exec('COMMIT');
        reader.close();
      }
    },
    async close() {
      await queue;
      db.close();
    },
  };
}
