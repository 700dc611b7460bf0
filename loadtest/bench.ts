// Benchmark: the proxy against the direct upstream, in the same run, on this machine.
// usage: npm run bench [-- --blob-mib 256 --requests 3000 --concurrency 16]
// Prints a Markdown table; every figure is a ratio to the direct registry measured moments before.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool, request } from 'undici';
import { stringify } from 'yaml';
import {
  buildImage,
  freePort,
  generateKey,
  pushImage,
  signImage,
  startRegistry,
  waitFor,
} from '../test/harness/index.ts';

const { values } = parseArgs({
  options: { 'blob-mib': { type: 'string' }, requests: { type: 'string' }, concurrency: { type: 'string' } },
});
const BLOB_MIB = Number(values['blob-mib'] ?? 256);
const REQUESTS = Number(values.requests ?? 3000);
const CONCURRENCY = Number(values.concurrency ?? 16);
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

interface Timing {
  rps: number;
  p50: number;
  p99: number;
}

async function hammer(
  origin: string,
  path: string,
  method: 'GET' | 'HEAD',
  n: number,
  concurrency: number,
): Promise<Timing> {
  const pool = new Pool(origin, { connections: concurrency });
  const times: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++;
        const t0 = performance.now();
        const res = await pool.request({ path, method, headers: { accept: MANIFEST } });
        await res.body.dump();
        if (res.statusCode !== 200) throw new Error(`${method} ${origin}${path}: ${res.statusCode}`);
        times.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await pool.close();
  times.sort((a, b) => a - b);
  return {
    rps: n / seconds,
    p50: times[Math.floor(times.length * 0.5)] ?? 0,
    p99: times[Math.floor(times.length * 0.99)] ?? 0,
  };
}

async function download(url: string, range = false): Promise<number> {
  const t0 = performance.now();
  const res = await request(url, range ? { headers: { range: 'bytes=0-' } } : {});
  let bytes = 0;
  for await (const chunk of res.body) bytes += (chunk as Buffer).length;
  if (res.statusCode !== (range ? 206 : 200)) throw new Error(`GET ${url}: ${res.statusCode}`);
  return bytes / 1024 / 1024 / ((performance.now() - t0) / 1000);
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

const work = mkdtempSync(join(tmpdir(), 'pullgate-bench-'));
const registry = await startRegistry();
let proxyProcess: ReturnType<typeof spawn> | undefined;
try {
  process.stderr.write(`building and pushing an image with a ${BLOB_MIB} MiB layer…\n`);
  const image = await buildImage(join(work, 'img'), '1.0', { seed: 'bench', layerBytes: BLOB_MIB * 1024 * 1024 });
  await pushImage(join(work, 'img'), '1.0', `${registry.host}/bench/app:1.0`);
  const key = generateKey('ecdsa-p256');
  await signImage(registry, 'bench/app', image.digest, key.privateKey);
  writeFileSync(join(work, 'ci.pub'), key.publicPem);
  writeFileSync(
    join(work, 'policy.yaml'),
    stringify({
      apiVersion: 'pullgate.dev/v1',
      kind: 'Policy',
      attestors: { ci: { keys: [{ file: 'ci.pub' }] } },
      defaultRule: { evaluationMode: 'requireAttestation', requireAttestors: ['ci'] },
    }),
  );
  const port = await freePort();
  writeFileSync(
    join(work, 'pullgate.yaml'),
    stringify({
      listen: { host: '127.0.0.1', port },
      upstreams: [{ host: 'bench.test', url: registry.url, insecure: true }],
      policy: { file: 'policy.yaml' },
      store: { sqlite: { path: 'state.db' } },
      log: { level: 'warn' },
    }),
  );
  proxyProcess = spawn(process.execPath, ['src/cli/main.ts', 'serve', '--config', join(work, 'pullgate.yaml')], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const proxy = `http://127.0.0.1:${port}`;
  await waitFor(
    async () =>
      (await request(`${proxy}/readyz`)
        .then(async (r) => {
          await r.body.dump();
          return r.statusCode === 200;
        })
        .catch(() => false)) || undefined,
    { timeoutMs: 20_000, intervalMs: 100, what: 'proxy readiness' },
  );

  const directManifest = `/v2/bench/app/manifests/${image.digest}`;
  const proxyManifest = `/v2/bench.test/bench/app/manifests/${image.digest}`;
  const t0 = performance.now();
  const first = await request(`${proxy}${proxyManifest}`, { headers: { accept: MANIFEST } });
  await first.body.dump();
  const coldMs = performance.now() - t0;
  if (first.statusCode !== 200) throw new Error(`first pull through the proxy: ${first.statusCode}`);

  // warm both paths, then measure alternately so both see the same machine state
  await hammer(registry.url, directManifest, 'GET', 200, CONCURRENCY);
  await hammer(proxy, proxyManifest, 'GET', 200, CONCURRENCY);
  const directGet = await hammer(registry.url, directManifest, 'GET', REQUESTS, CONCURRENCY);
  const proxyGet = await hammer(proxy, proxyManifest, 'GET', REQUESTS, CONCURRENCY);
  const directHead = await hammer(registry.url, '/v2/bench/app/manifests/1.0', 'HEAD', REQUESTS, CONCURRENCY);
  const proxyHead = await hammer(proxy, '/v2/bench.test/bench/app/manifests/1.0', 'HEAD', REQUESTS, CONCURRENCY);

  const layer = image.blobs.at(-1)!;
  const rssBefore = rssMiB(proxyProcess.pid!);
  let rssPeak = rssBefore;
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, rssMiB(proxyProcess!.pid!));
  }, 20);
  const directMbps: number[] = [];
  const proxyMbps: number[] = [];
  const rangeMbps: number[] = [];
  for (let i = 0; i < 3; i++) {
    directMbps.push(await download(`${registry.url}/v2/bench/app/blobs/${layer}`));
    proxyMbps.push(await download(`${proxy}/v2/bench.test/bench/app/blobs/${layer}`));
    // a Range request is passed through unhashed: the difference is the cost of hashing in flight
    rangeMbps.push(await download(`${proxy}/v2/bench.test/bench/app/blobs/${layer}`, true));
  }
  clearInterval(sampler);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[1] ?? 0;

  const f = (x: number, d = 1) => x.toFixed(d);
  const row = (name: string, d: Timing, p: Timing) =>
    `| ${name} | ${f(d.rps, 0)} req/s, p50 ${f(d.p50, 2)} ms, p99 ${f(d.p99, 2)} ms | ${f(p.rps, 0)} req/s, p50 ${f(p.p50, 2)} ms, p99 ${f(p.p99, 2)} ms | ${f(p.rps / d.rps, 2)} |`;
  process.stdout.write(
    [
      `pullgate benchmark: ${REQUESTS} requests at concurrency ${CONCURRENCY}, ${BLOB_MIB} MiB blob, node ${process.version}`,
      '',
      '| path | direct upstream | through pullgate (signature policy) | throughput ratio |',
      '|---|---|---|---|',
      row('manifest GET by digest (cached verdict)', directGet, proxyGet),
      row('manifest HEAD by tag (pin + upstream HEAD)', directHead, proxyHead),
      `| blob GET ${BLOB_MIB} MiB, hashed in flight (median of 3) | ${f(median(directMbps))} MiB/s | ${f(median(proxyMbps))} MiB/s | ${f(median(proxyMbps) / median(directMbps), 2)} |`,
      `| blob GET ${BLOB_MIB} MiB with Range: bytes=0- (not hashed) | ${f(median(directMbps))} MiB/s | ${f(median(rangeMbps))} MiB/s | ${f(median(rangeMbps) / median(directMbps), 2)} |`,
      '',
      `first pull through the proxy (fetch, evidence, verification, store): ${f(coldMs)} ms`,
      `proxy RSS: ${f(rssBefore)} MiB before the blob downloads, peak ${f(rssPeak)} MiB while streaming ${BLOB_MIB} MiB six times`,
      '',
    ].join('\n'),
  );
} finally {
  proxyProcess?.kill('SIGTERM');
  await registry.stop();
  rmSync(work, { recursive: true, force: true });
}
