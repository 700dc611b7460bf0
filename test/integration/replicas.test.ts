// Two proxy processes on one PostgreSQL: they agree on pins even when racing on a tag that moves
// upstream, and a revocation on one is enforced by the other within a second.
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { request } from 'undici';
import { stringify } from 'yaml';
import {
  buildImage,
  freePort,
  generateKey,
  pushImage,
  putManifest,
  signImage,
  startRegistry,
  waitFor,
  type Registry,
} from '../harness/index.ts';

const PG_URL = process.env.PULLGATE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const REG = 'registry.example.test';
const TOKEN = 'replica-admin-token-0123456789';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const schema = `replicas_${randomBytes(6).toString('hex')}`;
const work = mkdtempSync(join(tmpdir(), 'pullgate-replicas-'));
const key = generateKey('ecdsa-p256');
const children: ChildProcess[] = [];
let registry: Registry;
const replicas: { url: string; admin: string }[] = [];

async function startReplica(name: string): Promise<{ url: string; admin: string }> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const config = join(work, `${name}.yaml`);
  writeFileSync(
    config,
    stringify({
      listen: { host: '127.0.0.1', port },
      admin: { host: '127.0.0.1', port: adminPort, token: TOKEN },
      upstreams: [{ host: REG, url: registry.url, insecure: true }],
      policy: { file: 'policy.yaml' },
      store: { postgres: { url: PG_URL, schema } },
      log: { level: 'warn' },
    }),
  );
  const child = spawn(process.execPath, [CLI, 'serve', '--config', config], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(child);
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    async () =>
      request(`${url}/readyz`).then(
        async (r) => {
          await r.body.dump();
          return r.statusCode === 200 || undefined;
        },
        () => undefined,
      ),
    { timeoutMs: 20_000, intervalMs: 100, what: `replica ${name} ready` },
  );
  return { url, admin: `http://127.0.0.1:${adminPort}` };
}

async function head(url: string, ref: string): Promise<{ status: number; digest?: string }> {
  const res = await request(`${url}/v2/${REG}/race/app/manifests/${ref}`, {
    method: 'HEAD',
    headers: { accept: MANIFEST },
  });
  await res.body.dump();
  return { status: res.statusCode, digest: res.headers['docker-content-digest'] as string | undefined };
}

test.before(async () => {
  registry = await startRegistry();
  writeFileSync(join(work, 'ci.pub'), key.publicPem);
  writeFileSync(
    join(work, 'policy.yaml'),
    stringify({
      apiVersion: 'pullgate.dev/v1',
      kind: 'Policy',
      attestors: { ci: { keys: [{ file: 'ci.pub' }] } },
      defaultRule: { evaluationMode: 'requireAttestation', requireAttestors: ['ci'], tagMode: 'pin' },
    }),
  );
  replicas.push(await startReplica('a'), await startReplica('b'));
});

test.after.always(async () => {
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
  await registry?.stop();
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await c.end();
  rmSync(work, { recursive: true, force: true });
});

test.serial('racing first pulls while the tag flips upstream: both replicas pin and serve one digest', async (t) => {
  const images = [];
  for (const seed of ['x', 'y']) {
    const dir = join(work, seed);
    const image = await buildImage(dir, seed, { seed });
    await pushImage(dir, seed, `${registry.host}/race/app:${seed}`);
    await signImage(registry, 'race/app', image.digest, key.privateKey);
    const bytes = Buffer.from(
      await (
        await request(`${registry.url}/v2/race/app/manifests/${image.digest}`, { headers: { accept: MANIFEST } })
      ).body.arrayBuffer(),
    );
    images.push({ digest: image.digest, bytes });
  }
  for (let round = 0; round < 5; round++) {
    const tag = `r${round}`;
    await putManifest(registry, 'race/app', tag, images[0]!.bytes, MANIFEST);
    let flipping = true;
    const flipper = (async () => {
      for (let i = 0; flipping && i < 200; i++)
        await putManifest(registry, 'race/app', tag, images[i % 2]!.bytes, MANIFEST);
    })();
    const answers = await Promise.all([
      head(replicas[0]!.url, tag),
      head(replicas[1]!.url, tag),
      head(replicas[0]!.url, tag),
      head(replicas[1]!.url, tag),
    ]);
    flipping = false;
    await flipper;
    // distribution itself answers 500 now and then while a tag is rewritten under it: the proxy
    // passes that on as 502, and must never answer another digest than the pin
    t.true(
      answers.every((a) => a.status === 200 || a.status === 502),
      JSON.stringify(answers),
    );
    const [afterA, afterB] = [await head(replicas[0]!.url, tag), await head(replicas[1]!.url, tag)];
    t.is(afterA.status, 200);
    t.is(afterA.digest, afterB.digest, `round ${round}: the replicas agree on the pin`);
    t.true(
      answers.every((a) => a.status !== 200 || a.digest === afterA.digest),
      `round ${round}: every admitted answer was the pinned digest: ${JSON.stringify(answers)}`,
    );
  }
});

test.serial('a revocation on replica A is enforced by replica B within one second', async (t) => {
  const dir = join(work, 'rev');
  const image = await buildImage(dir, 'rev', { seed: 'revoked' });
  await pushImage(dir, 'rev', `${registry.host}/race/app:rev`);
  await signImage(registry, 'race/app', image.digest, key.privateKey);
  t.is((await head(replicas[1]!.url, 'rev')).status, 200, 'B admits and caches the verdict');
  const res = await request(`${replicas[0]!.admin}/api/v1/revocations`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ digest: image.digest, reason: 'leaked key' }),
  });
  await res.body.dump();
  t.is(res.statusCode, 200);
  const started = Date.now();
  await waitFor(async () => ((await head(replicas[1]!.url, 'rev')).status === 403 ? true : undefined), {
    timeoutMs: 1000,
    intervalMs: 25,
    what: 'replica B denies the revoked digest',
  });
  t.true(Date.now() - started <= 1000);
});
