// The store on the real PostgreSQL (127.0.0.1:5432, database test), one random schema per store.
// PostgreSQL missing is a failure, never a skip.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createServer, type AddressInfo } from 'node:net';
import type { Logger } from '../../src/ops/log.ts';
import { migrations } from '../../src/store/migrations.ts';
import { openStore } from '../../src/store/open.ts';
import { channelFor, listenerName, poolName } from '../../src/store/pg-events.ts';
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
    throw new Error(
      `PostgreSQL is required for these tests at ${PG_URL} (start it: pg_ctlcluster <version> main start): ${(err as Error).message}`,
    );
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
  await admin(async (c) => {
    for (const s of schemas) await c.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  });
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
  async reopen(s) {
    const schema = schemaOf.get(s)!;
    const again = await openStore({ kind: 'postgres', url: PG_URL, schema });
    schemaOf.set(again, schema);
    return again;
  },
});

test('two replicas racing to pin one tag: exactly one digest wins and both see it', async (t) => {
  const schema = newSchema();
  const [a, b] = await Promise.all([
    openStore({ kind: 'postgres', url: PG_URL, schema }),
    openStore({ kind: 'postgres', url: PG_URL, schema }),
  ]);
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  for (let round = 0; round < 20; round++) {
    const tag = `t${round}`;
    const results = await Promise.all([
      a.createPin({
        upstream: 'r',
        repository: 'app',
        tag,
        digest: `sha256:${'a'.repeat(64)}`,
        rule: 'default',
        attestors: [],
      }),
      b.createPin({
        upstream: 'r',
        repository: 'app',
        tag,
        digest: `sha256:${'b'.repeat(64)}`,
        rule: 'default',
        attestors: [],
      }),
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
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  const digest = `sha256:${'c'.repeat(64)}`;
  const seen = new Promise<StoreEvent>((resolve) =>
    b.subscribe((e) => {
      if (e.type === 'revoked') resolve(e);
    }),
  );
  const started = Date.now();
  await a.revoke(digest, 'compromised', 'admin');
  const event = await Promise.race([
    seen,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no event within 1 s')), 1000)),
  ]);
  t.is(event.digest, digest);
  t.true(Date.now() - started < 1000);
  t.is((await b.getRevocation(digest))?.reason, 'compromised');
});

test('interleaved audit appends from two replicas keep one valid chain', async (t) => {
  const schema = newSchema();
  const a = await openStore({ kind: 'postgres', url: PG_URL, schema });
  const b = await openStore({ kind: 'postgres', url: PG_URL, schema });
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  await Promise.all(
    Array.from({ length: 40 }, (_, i) =>
      (i % 2 ? a : b).appendAudit({ kind: 'allow', actor: i % 2 ? 'a' : 'b', detail: { i } }),
    ),
  );
  const v = await a.verifyAudit();
  t.true(v.ok, JSON.stringify(v.problems));
  t.is(v.records, 40);
});

test('concurrent first starts of several replicas all migrate cleanly, once', async (t) => {
  const schema = newSchema();
  const stores = await Promise.all([1, 2, 3].map(() => openStore({ kind: 'postgres', url: PG_URL, schema })));
  t.teardown(async () => {
    for (const s of stores) await s.close();
  });
  const versions = await admin(
    async (c) => (await c.query(`SELECT version FROM ${schema}.schema_migrations ORDER BY version`)).rows,
  );
  t.deepEqual(
    versions.map((r) => Number(r.version)),
    migrations('postgres').map((_, i) => i + 1),
  );
  const again = await openStore({ kind: 'postgres', url: PG_URL, schema });
  await again.close();
  t.is(
    await admin(async (c) =>
      Number((await c.query(`SELECT count(*) AS n FROM ${schema}.schema_migrations`)).rows[0].n),
    ),
    migrations('postgres').length,
    'a restart applies nothing twice',
  );
});

test('a replica hears its own changes once, and the others hear them too', async (t) => {
  const schema = newSchema();
  const a = await openStore({ kind: 'postgres', url: PG_URL, schema });
  const b = await openStore({ kind: 'postgres', url: PG_URL, schema });
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  const heardByA: StoreEvent[] = [];
  const heardByB: StoreEvent[] = [];
  a.subscribe((e) => heardByA.push(e));
  b.subscribe((e) => heardByB.push(e));
  await a.createPin({
    upstream: 'r',
    repository: 'app',
    tag: '1',
    digest: `sha256:${'a'.repeat(64)}`,
    rule: 'default',
    attestors: [],
  });
  t.is(heardByA.length, 1, 'delivered to its own subscribers before the call returned');
  await a.createGrant({
    scope: { digest: `sha256:${'d'.repeat(64)}` },
    reason: 'incident',
    actor: 'bob',
    expiresAt: new Date(Date.now() + 60_000),
  });
  await waitFor(() => heardByB.length >= 2, 'B to hear both changes');
  t.deepEqual(
    heardByB.map((e) => e.type),
    ['pin-changed', 'grant-changed'],
  );
  t.is(heardByB[1]?.digest, `sha256:${'d'.repeat(64)}`);
  await new Promise((r) => setTimeout(r, 300));
  t.is(heardByA.length, 2, 'its own notifications are not delivered a second time');
});

test('the listening connection comes back after the server drops it; subscribers are told anything may have changed', async (t) => {
  const schema = newSchema();
  const logs: { level: string; msg: string }[] = [];
  const logger = captureLogger(logs);
  const a = await openStore({ kind: 'postgres', url: PG_URL, schema });
  const b = await openStore({ kind: 'postgres', url: PG_URL, schema }, { logger });
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  const heard: StoreEvent[] = [];
  b.subscribe((e) => heard.push(e));
  const killed = await admin(
    async (c) =>
      (
        await c.query('SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1', [
          listenerName(schema),
        ])
      ).rows,
  );
  t.is(killed.length, 2, "both replicas' listening connections were dropped");
  await waitFor(() => heard.length >= 5, 'the resync events after reconnecting', 5000);
  t.deepEqual(heard.map((e) => e.type).sort(), [
    'grant-changed',
    'pin-changed',
    'policy-changed',
    'revoked',
    'unrevoked',
  ]);
  t.true(
    heard.every((e) => e.digest === undefined && e.upstream === undefined),
    'subject-less: anything of the type may have changed',
  );
  t.true(
    logs.some((l) => l.level === 'warn' && /connection lost/.test(l.msg)),
    JSON.stringify(logs),
  );
  heard.length = 0;
  const digest = `sha256:${'e'.repeat(64)}`;
  await a.revoke(digest, 'compromised', 'admin');
  await waitFor(
    () => heard.some((e) => e.type === 'revoked' && e.digest === digest),
    'a revocation after the reconnect',
  );
  t.pass();
});

test('a bad schema name or an unreachable server fails at open with a message saying what to fix', async (t) => {
  await t.throwsAsync(openStore({ kind: 'postgres', url: PG_URL, schema: 'Bad-Name; DROP' }), {
    message: /store\.schema "Bad-Name; DROP" is not a lowercase SQL identifier/,
  });
  const port = await closedPort();
  const started = Date.now();
  await t.throwsAsync(
    openStore({ kind: 'postgres', url: `postgres://postgres:secret@127.0.0.1:${port}/test`, schema: 'x' }),
    {
      message: new RegExp(
        `cannot prepare the PostgreSQL store at postgres://postgres:\\*\\*\\*@127\\.0\\.0\\.1:${port}/test \\(store\\.url\\)`,
      ),
    },
  );
  t.true(Date.now() - started < 15_000);
});

test('a channel name fits PostgreSQL identifiers whatever the schema length', (t) => {
  t.is(channelFor('pullgate'), 'pullgate_pullgate');
  const long = 'a'.repeat(63);
  t.true(channelFor(long).length <= 63);
  t.not(channelFor(long), channelFor(`${'a'.repeat(62)}b`));
});

async function waitFor(cond: () => boolean, what: string, timeoutMs = 2000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A pino-shaped logger that keeps what it is told. */
function captureLogger(into: { level: string; msg: string }[]): Logger {
  const at = (level: string) => (obj: unknown, msg?: string) => {
    into.push({ level, msg: msg ?? String(obj) });
  };
  return {
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    fatal: at('fatal'),
  } as unknown as Logger;
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test('backends terminated during a burst of writes fail those writes, never the process, and the store recovers', async (t) => {
  const schema = newSchema();
  const store = await openStore({ kind: 'postgres', url: PG_URL, schema });
  const crashes: unknown[] = [];
  const onCrash = (err: unknown): void => void crashes.push(err);
  process.on('uncaughtException', onCrash);
  try {
    let ok = 0;
    let failed = 0;
    const burst = Array.from({ length: 200 }, (_, i) =>
      store
        .createPin({
          upstream: 'u',
          repository: 'r',
          tag: `t${i}`,
          digest: `sha256:${'0'.repeat(64)}`,
          rule: 'x',
          attestors: [],
        })
        .then(
          () => ok++,
          () => failed++,
        ),
    );
    for (let k = 0; k < 5; k++) {
      await new Promise((r) => setTimeout(r, 15));
      await admin((c) =>
        c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [
          poolName(schema),
        ]),
      );
    }
    await Promise.all(burst);
    await new Promise((r) => setTimeout(r, 100));
    t.deepEqual(crashes, [], 'no uncaught error');
    t.is(ok + failed, 200);
    const after = await store.createPin({
      upstream: 'u',
      repository: 'r',
      tag: 'after',
      digest: `sha256:${'1'.repeat(64)}`,
      rule: 'x',
      attestors: [],
    });
    t.true(after.created, 'a write after the kills succeeds');
  } finally {
    process.off('uncaughtException', onCrash);
    await store.close();
  }
});
