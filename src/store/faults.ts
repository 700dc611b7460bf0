// What went wrong with the database, in words an operator can act on, and the one error type every
// store failure reaches a client as: `unavailable` (503 UNAVAILABLE), failed closed. The classifiers are pure
// functions over the drivers' error fields (pg's SQLSTATE and node:sqlite's result codes).
import { RegistryError } from '../oci/errors.ts';

/**
 * - unreachable: no connection, or it was lost (server down, failover, backend terminated, network cut)
 * - timeout: a statement, lock wait or connection acquisition took longer than its configured bound
 * - readonly: the database refuses writes (a PostgreSQL standby, a read-only SQLite file or directory)
 * - full: no space left for the database
 * - busy: another process holds the SQLite write lock past the busy timeout
 * - corrupt: the database file is damaged or not a database
 * - error: anything else (a defect, a refused privilege); it does not say the store is down
 */
export type FaultKind = 'unreachable' | 'timeout' | 'readonly' | 'full' | 'busy' | 'corrupt' | 'error';

export interface Fault {
  kind: FaultKind;
  /** The driver's own words (and code), kept as the cause. */
  cause: string;
  /** What the operator should do about it. */
  fix: string;
}

/** Kinds that mean the store cannot serve requests right now: they make the replica unready. */
export const UNUSABLE: ReadonlySet<FaultKind> = new Set([
  'unreachable',
  'timeout',
  'readonly',
  'full',
  'busy',
  'corrupt',
]);

const WORDS: Record<FaultKind, string> = {
  unreachable: 'the database cannot be reached',
  timeout: 'the database did not answer in time',
  readonly: 'the database refuses writes',
  full: 'the database is out of space',
  busy: 'the database is locked by another process',
  corrupt: 'the database is damaged',
  error: 'the database refused an operation',
};

/**
 * The error a client gets. The message names the store and its state but not its address or the
 * driver's text (clients are not operators); `operator` has both, for the log.
 */
export class StoreError extends RegistryError {
  readonly kind: FaultKind;
  readonly operator: string;

  constructor(store: string, fault: Fault, where: string, cause: unknown) {
    super(
      'unavailable',
      'UNAVAILABLE',
      `the proxy's ${store} store is unavailable (${WORDS[fault.kind]}); the request failed closed: nothing was served. Retry later; the operator finds the cause in the proxy log`,
      { cause, retryAfter: '5' },
    );
    this.name = 'StoreError';
    this.kind = fault.kind;
    this.operator = `${where}: ${fault.cause}: ${fault.fix}`;
  }
}

interface PgErrorFields {
  code?: unknown;
  message?: unknown;
}

/** SQLSTATE classes and codes (PostgreSQL appendix A) and pg's and Node's own connection errors. */
export function classifyPg(err: unknown): Fault {
  const e = (err ?? {}) as PgErrorFields;
  const code = typeof e.code === 'string' ? e.code : '';
  const message = typeof e.message === 'string' ? e.message : String(err);
  const cause = code ? `${message} (${code})` : message;
  const check = 'check that the PostgreSQL server is up and reachable from this replica';
  if (code === '57014')
    return {
      kind: 'timeout',
      cause,
      fix: 'a statement ran past store.postgres.statementTimeoutMs: look for long transactions or locks in pg_stat_activity, or raise the timeout',
    };
  if (code === '55P03')
    return {
      kind: 'timeout',
      cause,
      fix: 'a lock was held past store.postgres.lockTimeoutMs: find the holder in pg_locks / pg_stat_activity (a manual LOCK TABLE, a long migration)',
    };
  if (code === '25P03')
    return { kind: 'timeout', cause, fix: 'a transaction sat idle too long and was ended by the server' };
  if (code === '25006')
    return {
      kind: 'readonly',
      cause,
      fix: 'store.url points at a read-only server (a standby after failover?): point it at the primary',
    };
  if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300')
    return { kind: 'unreachable', cause, fix: `${check}; the pool reconnects by itself` };
  if (code === '53100') return { kind: 'full', cause, fix: "free disk space on the PostgreSQL server's data volume" };
  if (code.startsWith('XX0') || code === '58030')
    return { kind: 'corrupt', cause, fix: 'the server reports damaged data or an I/O failure: check its log' };
  if (code.length !== 5) {
    // Not from the server: the driver or the socket.
    if (/timeout exceeded when trying to connect/i.test(message))
      return {
        kind: 'timeout',
        cause,
        fix: `no connection could be had within store.postgres.connectTimeoutMs: every pooled connection was busy (raise store.postgres.poolSize) or ${check}`,
      };
    if (/query read timeout/i.test(message))
      return {
        kind: 'timeout',
        cause,
        fix: `the server did not answer within the statement timeout: ${check} (a network partition?)`,
      };
    return { kind: 'unreachable', cause, fix: `${check}; the pool reconnects by itself` };
  }
  return { kind: 'error', cause, fix: 'an unexpected database error: report it with this log line' };
}

interface SqliteErrorFields {
  errcode?: unknown;
  errstr?: unknown;
  message?: unknown;
}

// Primary result codes (https://sqlite.org/rescode.html); extended codes keep them in the low byte.
const SQLITE_PERM = 3;
const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;
const SQLITE_READONLY = 8;
const SQLITE_IOERR = 10;
const SQLITE_CORRUPT = 11;
const SQLITE_FULL = 13;
const SQLITE_CANTOPEN = 14;
const SQLITE_NOTADB = 26;

/** node:sqlite errors carry the result code in `errcode`; `path` is the database file. */
export function classifySqlite(err: unknown, path: string): Fault {
  const e = (err ?? {}) as SqliteErrorFields;
  const message = typeof e.message === 'string' ? e.message : String(err);
  const code = typeof e.errcode === 'number' ? e.errcode : undefined;
  const cause = code === undefined ? message : `${message} (SQLite code ${code})`;
  switch (code === undefined ? undefined : code & 0xff) {
    case SQLITE_FULL:
      return {
        kind: 'full',
        cause,
        fix: `free space on the volume holding ${path} (its -wal file grows too), or move store.sqlite.path to a larger one`,
      };
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return {
        kind: 'readonly',
        cause,
        fix: `make ${path}, its -wal and -shm files and their directory writable by this user (the directory must be writable for the -wal file)`,
      };
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return {
        kind: 'busy',
        cause,
        fix: `another process holds the write lock on ${path}: only one pullgate may use a SQLite file; stop the other one or give it its own store.sqlite.path`,
      };
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return {
        kind: 'corrupt',
        cause,
        fix: `${path} is damaged or not a pullgate database: restore it from a backup (sqlite3 ${path} .recover can salvage rows)`,
      };
    case SQLITE_CANTOPEN:
      return {
        kind: 'readonly',
        cause,
        fix: `${path} or its -wal and -shm files cannot be opened: check that the directory exists and is writable by this user`,
      };
    case SQLITE_IOERR:
      return {
        kind: 'unreachable',
        cause,
        fix: `the file system failed under ${path}: check the volume (dmesg, mount state, permissions)`,
      };
    default:
      return { kind: 'error', cause, fix: 'an unexpected database error: report it with this log line' };
  }
}
