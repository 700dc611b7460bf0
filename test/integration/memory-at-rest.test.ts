// Issue 9: memory at rest. A real `pullgate serve`, run as shipped (test/harness/pullgate-process.ts),
// pulls signed images with 32 MiB layers from a real registry cold and warm, then idles; RSS is
// read from /proc.
import test from 'ava';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { stringify } from 'yaml';
import {
  buildImage,
  generateKey,
  pushImage,
  runCommand,
  signImage,
  startRegistry,
  waitFor,
  type Registry,
} from '../harness/index.ts';
import { startPullgate, type PullgateProcess } from '../harness/pullgate-process.ts';

// Measured at rest on this machine: see docs/decisions.md, "Memory at rest" (the node binary
// ~50 MiB, V8's heap of the modules' code ~27 MiB, glibc's heap after the pulls). The issue asks
// for 150 MiB. The fill thread, with its heap, is stopped when the proxy goes quiet, so it is not
// part of what is kept at rest (113 MiB seen).
const LIMIT_MIB = 150;
const REG = 'rest.example.test';
const WARM = fileURLToPath(new URL('../../scripts/warm-compile-cache.ts', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'pullgate-rest-'));
let registry: Registry | undefined;
let proxy: PullgateProcess | undefined;

test.after.always(async () => {
  await proxy?.stop();
  await registry?.stop();
  rmSync(work, { recursive: true, force: true });
});

/** Whether the process has a worker thread (the fill thread is its only one): thread names from /proc. */
function fillThreadUp(pid: number): boolean {
  return readdirSync(`/proc/${pid}/task`).some((tid) => {
    try {
      return readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim() === 'WorkerThread';
    } catch {
      return false; // the thread ended meanwhile
    }
  });
}

test('RSS at rest stays bounded after cold and warm pulls of 32 MiB layers', async (t) => {
  // As npm start (prestart) and the image do: the proxy starts on a filled compile cache.
  const warm = await runCommand(process.execPath, [WARM], { timeoutMs: 90_000 });
  t.is(warm.code, 0, warm.stderr);
  registry = await startRegistry();
  const key = generateKey('ecdsa-p256');
  const images = [];
  for (const name of ['rest/a', 'rest/b', 'rest/c']) {
    const dir = join(work, name.replace('/', '-'));
    const image = await buildImage(dir, 'v1', { seed: name, layerBytes: 32 * 1024 * 1024 });
    await pushImage(dir, 'v1', `${registry.host}/${name}:v1`);
    await signImage(registry, name, image.digest, key.privateKey);
    rmSync(dir, { recursive: true, force: true });
    images.push({ name, layer: image.blobs.at(-1)! });
  }
  const keyFile = join(work, 'ci.pub');
  writeFileSync(keyFile, key.publicPem);
  proxy = await startPullgate(
    { upstreams: [{ host: REG, url: registry.url, insecure: true }], log: { level: 'debug' } },
    stringify({
      apiVersion: 'pullgate.dev/v1',
      kind: 'Policy',
      attestors: { ci: { keys: [{ file: keyFile }] } },
      defaultRule: { evaluationMode: 'requireAttestation', requireAttestors: ['ci'] },
    }),
  );
  const { url } = proxy;
  const pid = proxy.pid;
  const logFile = proxy.logFile;
  const logged = (msg: string) => readFileSync(logFile, 'utf8').includes(msg);
  const STARTED = 'fill thread started: an admitted image lists blobs to fetch';
  t.false(fillThreadUp(pid), 'no fill thread before any pull');
  for (const round of ['cold', 'warm']) {
    for (const [i, { name, layer }] of images.entries()) {
      const m = await request(`${url}/v2/${REG}/${name}/manifests/v1`, {
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      await m.body.dump();
      t.is(m.statusCode, 200, `${round} manifest of ${name}`);
      if (round === 'cold' && i === 0) {
        // The manifest of an image whose layers are not cached starts the fill thread before any blob is asked for.
        t.true(fillThreadUp(pid), 'the fill thread runs once the first cold manifest is served');
        // The log is written asynchronously: the line may land a moment later.
        await waitFor(async () => logged(STARTED) || undefined, { timeoutMs: 5_000, intervalMs: 50, what: STARTED });
      }
      const b = await request(`${url}/v2/${REG}/${name}/blobs/${layer}`);
      let bytes = 0;
      for await (const chunk of b.body) bytes += (chunk as Buffer).length;
      t.is(b.statusCode, 200);
      t.true(bytes >= 32 * 1024 * 1024, `${round} layer of ${name}: ${bytes} bytes`);
    }
  }
  const busy = proxy.rss();
  // Once quiet for 5 s the proxy returns what the burst left behind, and logs its heap then.
  const collected = await waitFor(
    async () =>
      readFileSync(logFile, 'utf8')
        .split('\n')
        .find((l) => l.includes('idle garbage collection')),
    { timeoutMs: 20_000, intervalMs: 250, what: 'the idle collection' },
  );
  await new Promise((r) => setTimeout(r, 500));
  const rest = proxy.rss().nowMiB;
  t.log(
    `RSS: peak ${busy.peakMiB.toFixed(0)} MiB while pulling, ${busy.nowMiB.toFixed(0)} MiB just after, ${rest.toFixed(0)} MiB at rest; ${collected}`,
  );
  t.true(rest < LIMIT_MIB, `RSS at rest ${rest.toFixed(0)} MiB, limit ${LIMIT_MIB} MiB`);
  t.false(fillThreadUp(pid), 'the fill thread is stopped at rest');
  t.is(readFileSync(logFile, 'utf8').split(STARTED).length - 1, 1, 'warm pulls start no fill thread');
});
