// The little SQL the store needs from a database: queries with `?` placeholders, transactions and
// consistent read snapshots.

export type Row = Record<string, unknown>;
export type Param = string | number | bigint | Buffer | null;

export interface Queryable {
  query(sql: string, params?: Param[]): Promise<Row[]>;
  /** Rows changed by an INSERT/UPDATE/DELETE. */
  run(sql: string, params?: Param[]): Promise<number>;
}

export interface Db extends Queryable {
  readonly dialect: 'sqlite' | 'postgres';
  /**
   * Runs `fn` in a transaction. `exclusive` serialises it against every other exclusive
   * transaction of the database, across processes (audit chain appends, migrations).
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>, opts?: { exclusive?: boolean }): Promise<T>;
  /** Runs read-only `fn` on one consistent view of the database without holding up writers. */
  snapshot<T>(fn: (q: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
