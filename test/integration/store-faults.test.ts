// Issue 9: a real `pullgate serve` on the real PostgreSQL, reached through a TCP relay on loopback
// that the test cuts, stalls and restores (the machine's PostgreSQL is shared and never stopped),
// in front of a real docker-registry. Backends killed during a burst of first pulls, the database
// gone, a network partition and a held table lock: the process lives on, every affected pull fails
// closed with an OCI error, /readyz follows the store, and everything recovers by itself.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { request } from 'undici';
import { stringify } from 'yaml';
import { listenerName, poolName } from '../../src/store/pg-events.ts';
import {
  buildImage,
  freePort,
  pushImage,
  putManifest,
  startProcess,
  startRegistry,
  waitFor,
  type Registry,
  type RunningProcess,
} from '../harness/index.ts';
import { startTcpRelay, type TcpRelay } from '../harness/tcp-relay.ts';
import { ALLOW_ALL } from './proxy-fixture.ts';

const PG_HOST = '127.0.0.1';
const PG_PORT = 5432;
const PG_URL = process.env.PULLGATE_TEST_POSTGRES_URL ?? `postgres://postgres@${PG_HOST}:${PG_PORT}/test`;
const REG = 'registry.example.test';
const TOKEN = 'store-faults-admin-token-0123456789';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const PROBE_INTERVAL_MS = 500;
// The shipped defaults (src/store/postgres.ts): the figures reported are those of a default install.
const STATEMENT_TIMEOUT_MS = 5_000;
const LOCK_TIMEOUT_MS = 2_000;
const READ_TIMEOUT_MARGIN_MS = 2_000;

const schema = `faults_${randomBytes(6).toString('hex')}`;
const work = mkdtempSync(join(tmpdir(), 'pullgate-store-faults-'));
let registry: Registry;
let relay: TcpRelay;
let proxy: RunningProcess;
let url: string;
let adminUrl: string;
let manifestBytes: Buffer;
let digest: string;
let tagCounter = 0;

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** A tag the proxy has never seen, pointing at the test image upstream. */
async function freshTag(): Promise<string> {
  const tag = `t${++tagCounter}`;
  await putManifest(registry, 'faults/app', tag, manifestBytes, MANIFEST);
  return tag;
}

interface Pull {
  status: number;
  digest?: string;
  body: string;
  ms: number;
}

async function pull(tag: string): Promise<Pull> {
  const started = performance.now();
  const res = await request(`${url}/v2/${REG}/faults/app/manifests/${tag}`, {
    headers: { accept: MANIFEST },
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  });
  const body = await res.body.text();
  return {
    status: res.statusCode,
    digest: res.headers['docker-content-digest'] as string | undefined,
    body,
    ms: performance.now() - started,
  };
}

async function status(path: string, base = url): Promise<number> {
  const res = await request(`${base}${path}`, { headersTimeout: 5_000, bodyTimeout: 5_000 });
  await res.body.dump();
  return res.statusCode;
}

async function metric(name: string): Promise<string> {
  const res = await request(`${url}/metrics`);
  const text = await res.body.text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(name))
    .join('\n');
}

/** A pull refused because of the store: 503 with an OCI error naming the store and saying it failed closed. */
function failedClosed(p: Pull): boolean {
  if (p.status !== 503) return false;
  const body = JSON.parse(p.body) as { errors?: { code?: string; message?: string }[] };
  const e = body.errors?.[0];
  return (
    e?.code === 'UNAVAILABLE' &&
    /PostgreSQL store is unavailable/.test(e.message ?? '') &&
    /failed closed/.test(e.message ?? '')
  );
}

function alive(): boolean {
  try {
    process.kill(proxy.pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits for /readyz to answer `want`, returning how long it took. */
async function readyzBecomes(want: number, timeoutMs: number): Promise<number> {
  const started = performance.now();
  await waitFor(async () => ((await status('/readyz')) === want ? true : undefined), {
    timeoutMs,
    intervalMs: 50,
    what: `/readyz to answer ${want}`,
  });
  return performance.now() - started;
}

test.before(async () => {
  await admin((c) => c.query('SELECT 1')).catch((err: Error) => {
    throw new Error(`PostgreSQL is required for these tests at ${PG_URL}: ${err.message}`);
  });
  registry = await startRegistry();
  const image = await buildImage(join(work, 'img'), '1.0', { seed: 'store-faults' });
  await pushImage(join(work, 'img'), '1.0', `${registry.host}/faults/app:1.0`);
  digest = image.digest;
  const res = await request(`${registry.url}/v2/faults/app/manifests/${digest}`, { headers: { accept: MANIFEST } });
  manifestBytes = Buffer.from(await res.body.arrayBuffer());
  relay = await startTcpRelay({ host: PG_HOST, port: PG_PORT });
  const relayed = new URL(PG_URL);
  relayed.hostname = '127.0.0.1';
  relayed.port = String(relay.port);
  const [port, adminPort] = [await freePort(), await freePort()];
  writeFileSync(join(work, 'policy.yaml'), ALLOW_ALL);
  const config = join(work, 'pullgate.yaml');
  writeFileSync(
    config,
    stringify({
      listen: { host: '127.0.0.1', port },
      admin: { host: '127.0.0.1', port: adminPort, token: TOKEN },
      upstreams: [{ host: REG, url: registry.url, insecure: true }],
      policy: { file: 'policy.yaml' },
      store: { postgres: { url: relayed.toString(), schema }, probeIntervalMs: PROBE_INTERVAL_MS },
      log: { level: 'info' },
    }),
  );
  url = `http://127.0.0.1:${port}`;
  adminUrl = `http://127.0.0.1:${adminPort}`;
  proxy = await startProcess({
    cmd: process.execPath,
    args: [CLI, 'serve', '--config', config],
    logFile: join(work, 'proxy.log'),
    ready: async () => (await status('/readyz')) === 200,
  });
});

test.after.always(async () => {
  await proxy?.stop();
  await relay?.close();
  await registry?.stop();
  await admin((c) => c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)).catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
});

test.afterEach.always(() => {
  relay?.restore();
});

test.serial(
  'backends terminated during bursts of first pulls: the process lives, affected pulls fail closed, the store recovers',
  async (t) => {
    const BURST = 40;
    const ROUNDS = 5;
    let failed = 0;
    let served = 0;
    let lastKill = 0;
    for (let round = 0; round < ROUNDS && failed === 0; round++) {
      const tags = await Promise.all(Array.from({ length: BURST }, () => freshTag()));
      const pulls = Promise.all(tags.map((tag) => pull(tag)));
      for (let k = 0; k < 5; k++) {
        await new Promise((r) => setTimeout(r, 20));
        await admin((c) =>
          c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ANY($1)', [
            [poolName(schema), listenerName(schema)],
          ]),
        );
        lastKill = performance.now();
      }
      const results = await pulls;
      const odd = results.filter((p) => !(p.status === 200 && p.digest === digest) && !failedClosed(p));
      t.deepEqual(
        odd.map((p) => `${p.status} ${p.body}`),
        [],
        'every pull is either served with the right digest or refused by the store with a 503 OCI error',
      );
      failed += results.filter((p) => p.status === 503).length;
      served += results.filter((p) => p.status === 200).length;
      t.true(alive(), 'the proxy process is still running');
    }
    t.true(failed > 0, `the kills hit requests in flight (${failed} of them failed closed, ${served} were served)`);
    // Recovery: the first pull of a new tag that is served again, and /readyz back at 200.
    const tag = await freshTag();
    const settled = performance.now();
    let attempts = 0;
    const recovered = await waitFor(
      async () => (++attempts && (await pull(tag)).status === 200 ? performance.now() : undefined),
      { timeoutMs: 15_000, intervalMs: 20, what: 'a first pull served again after the kills' },
    );
    await readyzBecomes(200, 15_000);
    const ready = performance.now();
    t.is(await status('/healthz'), 200);
    t.log(
      `backend kills: ${failed} pulls failed closed, ${served} served; the burst settled ${Math.round(settled - lastKill)} ms after the last kill; then a first pull was served at attempt ${attempts} (${Math.round(recovered - settled)} ms) and /readyz answered 200 ${Math.round(ready - lastKill)} ms after the last kill`,
    );
    // Every tag of the bursts is pinned and served now.
    const again = await pull('t1');
    t.is(again.status, 200);
    t.is(again.digest, digest);
  },
);

test.serial(
  'the database gone: pulls and admin calls fail closed at once, /readyz 503 and pullgate_store_up 0, then back to 200 when it returns',
  async (t) => {
    t.regex(await metric('pullgate_store_up'), /pullgate_store_up 1/);
    const pinned = await freshTag();
    t.is((await pull(pinned)).status, 200);
    relay.cut();
    const cutAt = performance.now();
    const first = await pull(await freshTag());
    t.true(failedClosed(first), `${first.status} ${first.body}`);
    const again = await pull(pinned);
    t.true(failedClosed(again), `a pinned tag is not served without the store either: ${again.status} ${again.body}`);
    const adminRes = await request(`${adminUrl}/api/v1/pins`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const adminBody = (await adminRes.body.json()) as { errors: { code: string; message: string }[] };
    t.is(adminRes.statusCode, 503);
    t.is(adminBody.errors[0]?.code, 'UNAVAILABLE');
    await readyzBecomes(503, 5_000);
    const unready = performance.now() - cutAt;
    t.regex(await metric('pullgate_store_up'), /pullgate_store_up 0/);
    t.is(await status('/healthz'), 200, 'liveness is not readiness: the process is fine');
    t.true(alive());
    relay.restore();
    const restoredAt = performance.now();
    const back = await readyzBecomes(200, 10_000);
    t.regex(await metric('pullgate_store_up'), /pullgate_store_up 1/);
    t.regex(await metric('pullgate_store_errors_total'), /kind="unreachable"\} [1-9]/);
    const after = await pull(await freshTag());
    t.is(after.status, 200);
    t.log(
      `database cut: first pull refused in ${Math.round(first.ms)} ms, /readyz 503 ${Math.round(unready)} ms after the cut (probe every ${PROBE_INTERVAL_MS} ms); /readyz 200 ${Math.round(back)} ms and a first pull served ${Math.round(performance.now() - restoredAt)} ms after it came back`,
    );
    const log = readFileSync(proxy.logFile, 'utf8');
    t.regex(log, /store unusable: not ready/);
    t.regex(log, /store usable again: ready/);
    t.notRegex(log, /postgres:\/\/[^"]*:[^"@*]+@/, 'no password in the log');
  },
);

test.serial(
  'a network partition (no byte crosses, sockets stay open): pulls fail within the timeouts instead of hanging',
  async (t) => {
    t.is((await pull(await freshTag())).status, 200);
    relay.stall();
    const p = await pull(await freshTag());
    t.true(failedClosed(p), `${p.status} ${p.body}`);
    const bound = STATEMENT_TIMEOUT_MS + READ_TIMEOUT_MARGIN_MS + 1_500;
    t.true(p.ms < bound, `refused in ${Math.round(p.ms)} ms, within ${bound}`);
    await readyzBecomes(503, 5_000);
    t.true(alive());
    relay.restore();
    const back = await readyzBecomes(200, 15_000);
    t.is((await pull(await freshTag())).status, 200);
    t.log(
      `partition: pull refused after ${Math.round(p.ms)} ms; /readyz 200 ${Math.round(back)} ms after the network healed`,
    );
  },
);

test.serial(
  'a table lock held by another session: pulls fail within the lock timeout, not after it is released',
  async (t) => {
    t.is((await pull(await freshTag())).status, 200);
    const holder = new pg.Client({ connectionString: PG_URL });
    await holder.connect();
    t.teardown(() => holder.end().catch(() => undefined));
    await holder.query('BEGIN');
    await holder.query(`LOCK TABLE ${schema}.pins IN ACCESS EXCLUSIVE MODE`);
    const lockedAt = performance.now();
    const [fresh, pinned] = await Promise.all([pull(await freshTag()), pull('t1')]);
    for (const p of [fresh, pinned]) {
      t.true(failedClosed(p), `${p.status} ${p.body}`);
      t.true(p.ms < LOCK_TIMEOUT_MS + 1_500, `refused in ${Math.round(p.ms)} ms (lock timeout ${LOCK_TIMEOUT_MS} ms)`);
    }
    t.true(performance.now() - lockedAt < STATEMENT_TIMEOUT_MS, 'answered while the lock is still held');
    await holder.query('ROLLBACK');
    const after = await pull(await freshTag());
    t.is(after.status, 200);
    await readyzBecomes(200, 10_000);
    const log = readFileSync(proxy.logFile, 'utf8');
    t.regex(log, /lock timeout \(55P03\)/, 'the log names the cause');
    t.log(
      `table lock: a first pull refused in ${Math.round(fresh.ms)} ms, a pinned tag in ${Math.round(pinned.ms)} ms (lock timeout ${LOCK_TIMEOUT_MS} ms); served again ${Math.round(after.ms)} ms after the release`,
    );
  },
);

test.serial('an admin body over the limit gets 413 with an OCI error', async (t) => {
  const res = await request(`${adminUrl}/api/v1/revocations`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ digest: `sha256:${'a'.repeat(64)}`, reason: 'x'.repeat(100_000) }),
  });
  const body = (await res.body.json()) as { errors: { code: string; message: string }[] };
  t.is(res.statusCode, 413);
  t.is(body.errors[0]?.code, 'SIZE_INVALID');
  t.regex(body.errors[0]?.message ?? '', /larger than the admin API accepts \(64kb\)/);
  t.true(alive());
});
