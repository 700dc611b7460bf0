// The store on the real PostgreSQL (127.0.0.1:5432, database test), one random schema per store.
// PostgreSQL missing is a failure, never a skip.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openStore } from '../../src/store/open.ts';
import type { Store, StoreEvent } from '../../src/store/types.ts';
import { conformance } from './conformance.ts';

export const PG_URL = process.env.PULLGATE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schemas: string[] = [];
const schemaOf = new WeakMap<Store, string>();

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: PG_URL });
  try {
    await c.connect();
  } catch (err) {
    throw new Error(`PostgreSQL is required for these tests at ${PG_URL} (start it: pg_ctlcluster <version> main start): ${(err as Error).message}`);
  }
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

function newSchema(): string {
  const s = `pgtest_${randomBytes(6).toString('hex')}`;
  schemas.push(s);
  return s;
}

test.before('PostgreSQL is reachable', async () => {
  await admin((c) => c.query('SELECT 1'));
});

test.after.always(async () => {
  await admin(async (c) => { for (const s of schemas) await c.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`); });
});

conformance(test, {
  async open() {
    const schema = newSchema();
    const s = await openStore({ kind: 'postgres', url: PG_URL, schema });
    schemaOf.set(s, schema);
    return s;
  },
  async tamper(s, sql) {
    await admin(async (c) => {
      await c.query(`SET search_path = ${schemaOf.get(s)}`);
      await c.query(sql);
    });
  },
});

test('two replicas racing to pin one tag: exactly one digest wins and both see it', async (t) => {
  const schema = newSchema();
  const [a, b] = await Promise.all([openStore({ kind: 'postgres', url: PG_URL, schema }), openStore({ kind: 'postgres', url: PG_URL, schema })]);
  t.teardown(async () => { await a.close(); await b.close(); });
  for (let round = 0; round < 20; round++) {
    const tag = `t${round}`;
    const results = await Promise.all([
      a.createPin({ upstream: 'r', repository: 'app', tag, digest: `sha256:${'a'.repeat(64)}`, rule: 'default', attestors: [] }),
      b.createPin({ upstream: 'r', repository: 'app', tag, digest: `sha256:${'b'.repeat(64)}`, rule: 'default', attestors: [] }),
    ]);
    t.is(results.filter((r) => r.created).length, 1, `round ${round}: one creator`);
    t.is(results[0].pin.digest, results[1].pin.digest, `round ${round}: one digest`);
    t.is((await a.getPin('r', 'app', tag))?.digest, (await b.getPin('r', 'app', tag))?.digest);
  }
});

test('a revocation on one replica reaches the other within one second', async (t) => {
  const schema = newSchema();
  const a = await openStore({ kind: 'postgres', url: PG_URL, schema });
  const b = await openStore({ kind: 'postgres', url: PG_URL, schema });
  t.teardown(async () => { await a.close(); await b.close(); });
  const digest = `sha256:${'c'.repeat(64)}`;
  const seen = new Promise<StoreEvent>((resolve) => b.subscribe((e) => { if (e.type === 'revoked') resolve(e); }));
  const started = Date.now();
  await a.revoke(digest, 'compromised', 'admin');
  const event = await Promise.race([seen, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no event within 1 s')), 1000))]);
  t.is(event.digest, digest);
  t.true(Date.now() - started < 1000);
  t.is((await b.getRevocation(digest))?.reason, 'compromised');
});

test('interleaved audit appends from two replicas keep one valid chain', async (t) => {
  const schema = newSchema();
  const a = await openStore({ kind: 'postgres', url: PG_URL, schema });
  const b = await openStore({ kind: 'postgres', url: PG_URL, schema });
  t.teardown(async () => { await a.close(); await b.close(); });
  await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).appendAudit({ kind: 'allow', actor: i % 2 ? 'a' : 'b', detail: { i } })));
  const v = await a.verifyAudit();
  t.true(v.ok, JSON.stringify(v.problems));
  t.is(v.records, 40);
});

test('concurrent first starts of two replicas both migrate cleanly', async (t) => {
  const schema = newSchema();
  const stores = await Promise.all([1, 2, 3].map(() => openStore({ kind: 'postgres', url: PG_URL, schema })));
  t.teardown(async () => { for (const s of stores) await s.close(); });
  const versions = await admin(async (c) => (await c.query(`SELECT version FROM ${schema}.schema_migrations`)).rows);
  t.deepEqual(versions.map((r) => Number(r.version)), [1]);
});
