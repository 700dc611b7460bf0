// SQLite through node:sqlite: WAL, and synchronous=FULL so that a write the proxy acknowledged
// survives a crash or kill -9. One connection per process; exclusive transactions also lock out
// other processes on the same file.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type SQLInputValue } from 'node:sqlite';
import type { Db, Param, Queryable, Row } from './db.ts';

function bind(params: Param[]): SQLInputValue[] {
  return params.map((p) => (Buffer.isBuffer(p) ? new Uint8Array(p.buffer, p.byteOffset, p.length) : p));
}

export function openSqlite(path: string): Db {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new DatabaseSync(path);
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;');
  const q: Queryable = {
    async query(sql, params = []) {
      return db.prepare(sql).all(...bind(params)) as Row[];
    },
    async run(sql, params = []) {
      return Number(db.prepare(sql).run(...bind(params)).changes);
    },
  };
  // node:sqlite is synchronous, but a transaction awaits between its statements: everything goes
  // through one queue so no other statement runs inside someone else's open transaction.
  let queue: Promise<unknown> = Promise.resolve();
  const enqueue = <T>(work: () => Promise<T>): Promise<T> => {
    const next = queue.then(work);
    queue = next.catch(() => undefined);
    return next;
  };
  return {
    dialect: 'sqlite',
    query: (sql, params) => enqueue(() => q.query(sql, params)),
    run: (sql, params) => enqueue(() => q.run(sql, params)),
    transaction<T>(fn: (tx: Queryable) => Promise<T>, opts: { exclusive?: boolean } = {}): Promise<T> {
      return enqueue(async () => {
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
    },
    async close() {
      await queue;
      db.close();
    },
  };
}
