// The little SQL the store needs from a database: queries with `?` placeholders, transactions and
// consistent read snapshots.

export type Row = Record<string, unknown>;
export type Param = string | number | bigint | Buffer | null;

export interface Queryable {
  query(sql: string, params?: Param[]): Promise<Row[]>;
  /** Rows changed by an INSERT/UPDATE/DELETE. */
  run(sql: string, params?: Param[]): Promise<number>;
}

export interface TransactionOptions {
  /** Serialises it against every other exclusive transaction of the database, across processes (audit chain appends, migrations). */
  exclusive?: boolean;
  /** Schema work (migrations): runs under long timeouts instead of the per-statement bounds of requests. */
  maintenance?: boolean;
}

export interface Db extends Queryable {
  readonly dialect: 'sqlite' | 'postgres';
  /**
   * Runs `fn` in a transaction. Every failure of the database itself is thrown as a StoreError
   * (faults.ts); what `fn` throws passes through unchanged.
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>, opts?: TransactionOptions): Promise<T>;
  /** Runs read-only `fn` on one consistent view of the database without holding up writers. */
  snapshot<T>(fn: (q: Queryable) => Promise<T>): Promise<T>;
  /** Resolves when the database answers (and, for PostgreSQL, accepts writes); rejects with a StoreError otherwise. */
  probe(): Promise<void>;
  close(): Promise<void>;
}
