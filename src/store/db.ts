// The little SQL the store needs from a database: queries with `?` placeholders, and transactions.

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
   * transaction of the database, across processes (audit chain appends).
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>, opts?: { exclusive?: boolean }): Promise<T>;
  close(): Promise<void>;
}
