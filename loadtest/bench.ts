// Benchmark: pullgate against the direct upstream and against distribution's own pull-through
// cache (docker-registry with proxy.remoteurl), all three measured in the same run on this machine,
// with curl as the blob client. Prints a Markdown table with every figure and its ratios.
// usage: npm run bench [-- --blob-mib 256 --big-mib 1024 --requests 2000 --concurrency 16 --rounds 5]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool, request } from 'undici';
import { stringify } from 'yaml';
import {
  buildImage,
  cpuIdle,
  freePort,
  generateKey,
  pushImage,
  runCommand,
  signImage,
  startRegistry,
  waitFor,
  type BuiltImage,
  type Registry,
} from '../test/harness/index.ts';
import { shippedRuntime } from '../test/harness/shipped-runtime.ts';

const { values } = parseArgs({
  options: {
    'blob-mib': { type: 'string' },
    'big-mib': { type: 'string' },
    requests: { type: 'string' },
    concurrency: { type: 'string' },
    rounds: { type: 'string' },
  },
});
const BLOB_MIB = Number(values['blob-mib'] ?? 256);
const BIG_MIB = Number(values['big-mib'] ?? 1024);
const REQUESTS = Number(values.requests ?? 2000);
const CONCURRENCY = Number(values.concurrency ?? 16);
const ROUNDS = Number(values.rounds ?? 5);
const FANOUT = 20;
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const UPSTREAM = 'bench.test';

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

/** One blob download by curl: MiB/s as curl measured it, and the bytes it got. */
async function curl(url: string): Promise<{ mibps: number; bytes: number }> {
  const r = await runCommand(
    'curl',
    ['-s', '-o', '/dev/null', '-w', '%{http_code} %{speed_download} %{size_download}', url],
    {
      timeoutMs: 600_000,
    },
  );
  const [code, speed, size] = r.stdout.trim().split(' ');
  if (code !== '200') throw new Error(`curl ${url}: HTTP ${code} ${r.stderr}`);
  return { mibps: Number(speed) / 1048576, bytes: Number(size) };
}

/**
 * `n` requests one after another by one curl over one keep-alive connection; the p50 of curl's own
 * timings. Not undici: its HEAD round trip takes 0.4-0.9 ms longer than its GET of the same
 * manifest, against any server (a bare node:http one too), which curl's does not.
 */
async function curlSerial(url: string, method: 'GET' | 'HEAD', n: number): Promise<number> {
  const config = join(work, 'serial.curl');
  writeFileSync(config, `url = "${url}"\noutput = "/dev/null"\n`.repeat(n));
  const r = await runCommand(
    'curl',
    [
      '-s',
      ...(method === 'HEAD' ? ['-I'] : []),
      '-H',
      `accept: ${MANIFEST}`,
      '-w',
      '%{http_code} %{time_total}\n',
      '-K',
      config,
    ],
    { timeoutMs: 120_000 },
  );
  const times = r.stdout
    .trim()
    .split('\n')
    .map((line) => {
      const [code, seconds] = line.split(' ');
      if (code !== '200') throw new Error(`curl ${method} ${url}: HTTP ${code}`);
      return Number(seconds) * 1000;
    });
  return median(times);
}

/** `n` curls at once; the aggregate MiB/s over the wall time. */
async function curlAll(urls: string[]): Promise<number> {
  const t0 = performance.now();
  const got = await Promise.all(urls.map((u) => curl(u)));
  const bytes = got.reduce((s, g) => s + g.bytes, 0);
  return bytes / 1048576 / ((performance.now() - t0) / 1000);
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

/**
 * Waits until the servers are idle: less than 20 ms of CPU among them in 200 ms (15 s at most).
 * Distribution's proxy stores a cold blob from a second upstream fetch that runs on for a second
 * or two after its client is served; measured in that time, the next side shares the cores with it.
 */
const quiet = (pids: number[]): Promise<void> => cpuIdle(pids, { belowMs: 20, timeoutMs: 15_000 });

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

const work = mkdtempSync(join(tmpdir(), 'pullgate-bench-'));
let upstream: Registry | undefined;
let distribution: Registry | undefined;
let proxyProcess: ReturnType<typeof spawn> | undefined;
const key = generateKey('ecdsa-p256');
const log = (s: string) => process.stderr.write(`${s}\n`);

async function push(repo: string, layerMib: number): Promise<BuiltImage> {
  const dir = join(work, repo.replace(/\//g, '-'));
  const image = await buildImage(dir, '1.0', { seed: repo, layerBytes: layerMib * 1024 * 1024 });
  await pushImage(dir, '1.0', `${upstream!.host}/${repo}:1.0`);
  await signImage(upstream!, repo, image.digest, key.privateKey);
  rmSync(dir, { recursive: true, force: true });
  return image;
}

try {
  upstream = await startRegistry();
  distribution = await startRegistry({ proxyOf: upstream.url });
  log(`building and pushing images: ${BLOB_MIB} MiB layers, ${ROUNDS} cold ones, 4 of ${BIG_MIB} MiB…`);
  const warm = await push('bench/app', BLOB_MIB);
  const cold: BuiltImage[] = [];
  for (let i = 0; i < ROUNDS; i++) cold.push(await push(`bench/cold-${i}`, BLOB_MIB));
  const fanout = await push('bench/fanout', 64);
  const big: BuiltImage[] = [];
  for (let i = 0; i < 4; i++) big.push(await push(`bench/big-${i}`, BIG_MIB));

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
      upstreams: [{ host: UPSTREAM, url: upstream.url, insecure: true }],
      policy: { file: 'policy.yaml' },
      store: { sqlite: { path: 'state/pullgate.db' } },
      cache: { blobs: { maxBytes: '20GiB' } },
      log: { level: 'warn' },
    }),
  );
  // As shipped: package.json's start script's node flags and environment.
  const shipped = shippedRuntime();
  proxyProcess = spawn(
    process.execPath,
    [...shipped.nodeArgs, 'src/cli/main.ts', 'serve', '--config', join(work, 'pullgate.yaml')],
    { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...shipped.env } },
  );
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
  const pid = proxyProcess.pid!;
  const servers = [upstream.pid!, distribution.pid!, pid];
  const at = {
    direct: (repo: string, rest: string) => `${upstream!.url}/v2/${repo}/${rest}`,
    distribution: (repo: string, rest: string) => `${distribution!.url}/v2/${repo}/${rest}`,
    pullgate: (repo: string, rest: string) => `${proxy}/v2/${UPSTREAM}/${repo}/${rest}`,
  };
  const admitted = async (repo: string, image: BuiltImage) => {
    for (const url of [at.pullgate(repo, `manifests/1.0`), at.distribution(repo, 'manifests/1.0')]) {
      const r = await request(url, { headers: { accept: MANIFEST } });
      await r.body.dump();
      if (r.statusCode !== 200) throw new Error(`manifest ${url}: ${r.statusCode}`);
    }
    return image.blobs.at(-1)!;
  };

  // First pull of a signed image: fetch, evidence, verification, store.
  const t0 = performance.now();
  const layer = await admitted('bench/app', warm);
  const firstPullMs = performance.now() - t0;
  const rssRest = rssMiB(pid);

  log('manifests…');
  const digestPath = `manifests/${warm.digest}`;
  const originOf = (u: string) => new URL(u).origin;
  const pathOf = (u: string) => new URL(u).pathname;
  for (const side of Object.values(at))
    await hammer(
      originOf(side('bench/app', digestPath)),
      pathOf(side('bench/app', digestPath)),
      'GET',
      200,
      CONCURRENCY,
    );
  const getByDigest = {
    direct: await hammer(upstream.url, pathOf(at.direct('bench/app', digestPath)), 'GET', REQUESTS, CONCURRENCY),
    distribution: await hammer(
      distribution.url,
      pathOf(at.distribution('bench/app', digestPath)),
      'GET',
      REQUESTS,
      CONCURRENCY,
    ),
    pullgate: await hammer(proxy, pathOf(at.pullgate('bench/app', digestPath)), 'GET', REQUESTS, CONCURRENCY),
  };
  const headByTag = {
    direct: await hammer(upstream.url, pathOf(at.direct('bench/app', 'manifests/1.0')), 'HEAD', REQUESTS, CONCURRENCY),
    distribution: await hammer(
      distribution.url,
      pathOf(at.distribution('bench/app', 'manifests/1.0')),
      'HEAD',
      REQUESTS,
      CONCURRENCY,
    ),
    pullgate: await hammer(proxy, pathOf(at.pullgate('bench/app', 'manifests/1.0')), 'HEAD', REQUESTS, CONCURRENCY),
  };
  const serial = {
    getByDigest: await curlSerial(`${proxy}${pathOf(at.pullgate('bench/app', digestPath))}`, 'GET', 1000),
    headByTag: await curlSerial(`${proxy}${pathOf(at.pullgate('bench/app', 'manifests/1.0'))}`, 'HEAD', 1000),
    headByDigest: await curlSerial(`${proxy}${pathOf(at.pullgate('bench/app', digestPath))}`, 'HEAD', 1000),
  };

  log('cold blobs…');
  const coldMibps = { distribution: [] as number[], pullgate: [] as number[] };
  for (const [i, image] of cold.entries()) {
    const l = await admitted(`bench/cold-${i}`, image);
    // Alternate which side goes first so neither always finds the upstream's page cache warmer.
    const order = i % 2 === 0 ? (['distribution', 'pullgate'] as const) : (['pullgate', 'distribution'] as const);
    for (const side of order) {
      await quiet(servers);
      coldMibps[side].push((await curl(at[side](`bench/cold-${i}`, `blobs/${l}`))).mibps);
    }
  }

  log('warm blobs…');
  for (const side of ['distribution', 'pullgate'] as const) await curl(at[side]('bench/app', `blobs/${layer}`));
  // The first hit after the fill: pullgate wrote the fill past the page cache (blobs/direct-io.ts),
  // so this one reads the disk; distribution wrote through it. Warm figures come after.
  const firstHit = { distribution: 0, pullgate: 0 };
  for (const side of ['distribution', 'pullgate'] as const) {
    await quiet(servers);
    firstHit[side] = (await curl(at[side]('bench/app', `blobs/${layer}`))).mibps;
  }
  const warmMibps = { direct: [] as number[], distribution: [] as number[], pullgate: [] as number[] };
  const concurrentMibps = { direct: [] as number[], distribution: [] as number[], pullgate: [] as number[] };
  for (let i = 0; i < ROUNDS; i++) {
    for (const side of ['direct', 'distribution', 'pullgate'] as const) {
      await quiet(servers);
      warmMibps[side].push((await curl(at[side]('bench/app', `blobs/${layer}`))).mibps);
    }
  }
  for (let i = 0; i < ROUNDS; i++) {
    for (const side of ['direct', 'distribution', 'pullgate'] as const) {
      await quiet(servers);
      concurrentMibps[side].push(
        await curlAll(Array.from({ length: 4 }, () => at[side]('bench/app', `blobs/${layer}`))),
      );
    }
  }

  log(`${FANOUT} concurrent cold GETs of one blob…`);
  const fanLayer = await admitted('bench/fanout', fanout);
  const fetchesBefore = await upstream.requests(new RegExp(`^GET /v2/bench/fanout/blobs/${fanLayer}`));
  await Promise.all(Array.from({ length: FANOUT }, () => curl(at.pullgate('bench/fanout', `blobs/${fanLayer}`))));
  await new Promise((r) => setTimeout(r, 500));
  const fanoutFetches =
    (await upstream.requests(new RegExp(`^GET /v2/bench/fanout/blobs/${fanLayer}`))) - fetchesBefore;

  log(`4 × ${BIG_MIB} MiB at once, cold, then the first hits…`);
  let rssPeak = rssMiB(pid);
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, rssMiB(pid));
  }, 20);
  const bigLayers: string[] = [];
  for (const [i, image] of big.entries()) {
    const r = await request(at.pullgate(`bench/big-${i}`, 'manifests/1.0'), { headers: { accept: MANIFEST } });
    await r.body.dump();
    bigLayers.push(image.blobs.at(-1)!);
  }
  await quiet(servers);
  const rssBeforeBig = rssMiB(pid);
  const bigCold = await curlAll(bigLayers.map((l, i) => at.pullgate(`bench/big-${i}`, `blobs/${l}`)));
  const bigWarm = await curlAll(bigLayers.map((l, i) => at.pullgate(`bench/big-${i}`, `blobs/${l}`)));
  clearInterval(sampler);

  const f = (x: number, d = 1) => x.toFixed(d);
  const ratio = (a: number, b: number) => f(a / b, 2);
  const timing = (t: Timing) => `${f(t.rps, 0)} req/s, p50 ${f(t.p50, 2)} ms`;
  const m = { warm: { d: median(warmMibps.direct), x: median(warmMibps.distribution), p: median(warmMibps.pullgate) } };
  const c4 = {
    d: median(concurrentMibps.direct),
    x: median(concurrentMibps.distribution),
    p: median(concurrentMibps.pullgate),
  };
  const cold2 = { x: median(coldMibps.distribution), p: median(coldMibps.pullgate) };
  process.stdout.write(
    [
      `pullgate benchmark, one run: ${BLOB_MIB} MiB blobs (median of ${ROUNDS}), ${REQUESTS} manifest requests at concurrency ${CONCURRENCY}, node ${process.version}, curl as the blob client`,
      '',
      '| figure | direct upstream | distribution proxy | pullgate | pullgate / direct | pullgate / distribution |',
      '|---|---|---|---|---|---|',
      `| blob GET warm, MiB/s | ${f(m.warm.d)} | ${f(m.warm.x)} | ${f(m.warm.p)} | ${ratio(m.warm.p, m.warm.d)} | ${ratio(m.warm.p, m.warm.x)} |`,
      `| 4 concurrent warm blob GETs, aggregate MiB/s | ${f(c4.d)} | ${f(c4.x)} | ${f(c4.p)} | ${ratio(c4.p, c4.d)} | ${ratio(c4.p, c4.x)} |`,
      `| blob GET cold (first fetch), MiB/s | - | ${f(cold2.x)} | ${f(cold2.p)} | - | ${ratio(cold2.p, cold2.x)} |`,
      `| manifest GET by digest | ${timing(getByDigest.direct)} | ${timing(getByDigest.distribution)} | ${timing(getByDigest.pullgate)} | ${ratio(getByDigest.pullgate.rps, getByDigest.direct.rps)} | ${ratio(getByDigest.pullgate.rps, getByDigest.distribution.rps)} |`,
      `| manifest HEAD by tag | ${timing(headByTag.direct)} | ${timing(headByTag.distribution)} | ${timing(headByTag.pullgate)} | ${ratio(headByTag.pullgate.rps, headByTag.direct.rps)} | ${ratio(headByTag.pullgate.rps, headByTag.distribution.rps)} |`,
      '',
      `- manifest at concurrency 1 through pullgate (curl, 1000 requests on one connection): HEAD by tag p50 ${f(serial.headByTag, 3)} ms, GET by digest p50 ${f(serial.getByDigest, 3)} ms (difference ${f(serial.headByTag - serial.getByDigest, 3)} ms), HEAD by digest p50 ${f(serial.headByDigest, 3)} ms`,
      `- ${FANOUT} concurrent cold GETs of one 64 MiB blob: ${fanoutFetches} upstream blob fetch(es), counted in the upstream's access log`,
      `- 4 × ${BIG_MIB} MiB at once: ${f(bigCold)} MiB/s aggregate cold (4 fills), ${f(bigWarm)} MiB/s on the first hits (read from the disk)`,
      `- first cache hit after a cold fill, MiB/s: distribution ${f(firstHit.distribution, 0)}, pullgate ${f(firstHit.pullgate, 0)} (pullgate's fill was written past the page cache)`,
      `- warm samples, MiB/s: direct ${warmMibps.direct.map((x) => f(x, 0)).join(', ')}; distribution ${warmMibps.distribution.map((x) => f(x, 0)).join(', ')}; pullgate ${warmMibps.pullgate.map((x) => f(x, 0)).join(', ')}`,
      `- proxy RSS: ${f(rssRest)} MiB at rest after the first pull, ${f(rssBeforeBig)} MiB just before, peak ${f(rssPeak)} MiB while streaming 4 × ${BIG_MIB} MiB`,
      `- first pull of a signed image (manifest, evidence, verification, store): ${f(firstPullMs)} ms`,
      `- cold samples, MiB/s: distribution ${coldMibps.distribution.map((x) => f(x, 0)).join(', ')}; pullgate ${coldMibps.pullgate.map((x) => f(x, 0)).join(', ')}`,
      '',
    ].join('\n'),
  );
} finally {
  proxyProcess?.kill('SIGTERM');
  await distribution?.stop();
  await upstream?.stop();
  rmSync(work, { recursive: true, force: true });
}
