// Proves each harness part really works against the real third-party tools, with independent
// checks (skopeo, curl-level HTTP, GNU tar, openssl) rather than the harness's own readers.
import test from 'ava';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  attestImage,
  buildImage,
  generateKey,
  pushImage,
  pushReferrer,
  runCommand,
  signImage,
  skopeoCopy,
  skopeoInspectDigest,
  startContainerd,
  startProcess,
  startRegistry,
  waitFor,
  type BuiltImage,
  type Registry,
} from '../harness/index.ts';

const MIB = 1024 * 1024;
const BIG_LAYER_BYTES = 2 * MIB + 3;
const ALL_MANIFESTS = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

let work: string;
let registry: Registry;
let tokenRegistry: Registry;
let single: BuiltImage;
let multi: BuiltImage;

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'pullgate-harness-selftest-'));
  [registry, tokenRegistry] = await Promise.all([startRegistry(), startRegistry({ auth: 'token' })]);
  single = await buildImage(join(work, 'single'), '1.0', { seed: 'selftest single', layerBytes: BIG_LAYER_BYTES });
  multi = await buildImage(join(work, 'multi'), '1.0', {
    seed: 'selftest multi',
    platforms: ['linux/amd64', 'linux/arm64'],
  });
  await Promise.all([
    pushImage(join(work, 'single'), '1.0', `${registry.host}/demo/single:1.0`),
    pushImage(join(work, 'multi'), '1.0', `${registry.host}/demo/multi:1.0`),
    pushImage(join(work, 'single'), '1.0', `${tokenRegistry.host}/private/app:1.0`, {
      creds: tokenRegistry.credentials!,
    }),
  ]);
});

test.after.always(async () => {
  await Promise.all([registry?.stop(), tokenRegistry?.stop()]);
  if (work) await rm(work, { recursive: true, force: true });
});

const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function getBytes(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers });
  return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
}

/** key="value" pairs of a WWW-Authenticate challenge. */
function challengeParams(header: string): Record<string, string> {
  return Object.fromEntries([...header.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
}

test('the registry answers /v2/ as a distribution registry and stores under dataDir', async (t) => {
  const r = await getBytes(`${registry.url}/v2/`);
  t.is(r.status, 200);
  t.is(r.headers.get('docker-distribution-api-version'), 'registry/2.0');
  t.regex(registry.host, /^127\.0\.0\.1:\d+$/);
  t.true(existsSync(join(registry.dataDir, 'docker', 'registry', 'v2', 'repositories', 'demo', 'single')));
});

test('pushed images are pullable by digest with skopeo, single and multi-arch, digests unchanged', async (t) => {
  for (const [repo, image] of [
    ['demo/single', single],
    ['demo/multi', multi],
  ] as const) {
    const byDigest = `docker://${registry.host}/${repo}@${image.digest}`;
    t.is(await skopeoInspectDigest(byDigest), image.digest);
    const copy = join(work, `pulled-${repo.replace('/', '-')}`);
    await skopeoCopy(byDigest, `oci:${copy}:pulled`, { all: true });
    t.is(await skopeoInspectDigest(`oci:${copy}:pulled`), image.digest);
  }
  t.is(multi.mediaType, 'application/vnd.oci.image.index.v1+json');
  t.deepEqual(
    multi.manifests.map((m) => m.platform),
    ['linux/amd64', 'linux/arm64'],
  );
  const index = JSON.parse(
    (
      await getBytes(`${registry.url}/v2/demo/multi/manifests/${multi.digest}`, { accept: ALL_MANIFESTS })
    ).bytes.toString(),
  );
  t.deepEqual(
    index.manifests.map((m: { digest: string }) => m.digest),
    multi.manifests.map((m) => m.digest),
  );
});

test('buildImage: layers are gzip tars GNU tar reads, the big one of the requested size; the seed fixes the digest', async (t) => {
  t.is(single.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  t.is(single.blobs.length, 3, 'config, small layer, big layer');
  const [, small, big] = single.blobs as [string, string, string];
  for (const digest of [small, big]) {
    const blob = (await getBytes(`${registry.url}/v2/demo/single/blobs/${digest}`)).bytes;
    t.is(sha256(blob), digest, 'the registry serves the blob the layout holds');
  }
  const blobFile = (d: string) => join(work, 'single', 'blobs', 'sha256', d.slice(7));
  const hello = await runCommand('tar', ['-xzOf', blobFile(small), 'hello.txt']);
  t.is(hello.code, 0, hello.stderr);
  t.is(hello.stdout, 'selftest single linux/amd64\n');
  const listing = await runCommand('tar', ['-tvzf', blobFile(big)]);
  t.is(listing.code, 0, listing.stderr);
  t.regex(listing.stdout, new RegExp(`\\s${BIG_LAYER_BYTES}\\s.*big\\.bin`));

  const again = await buildImage(join(work, 'again'), 'x', { seed: 'selftest single', layerBytes: BIG_LAYER_BYTES });
  t.is(again.digest, single.digest);
  const other = await buildImage(join(work, 'again'), 'y', { seed: 'another seed' });
  t.not(other.digest, single.digest);
  t.is(await skopeoInspectDigest(`oci:${join(work, 'again')}:x`), single.digest, 'both tags live in one layout');
});

test('htpasswd registry: Basic challenge without credentials, 200 with them, 401 with a wrong password', async (t) => {
  const reg = await startRegistry({ auth: 'htpasswd' });
  t.teardown(() => reg.stop());
  const { username, password } = reg.credentials!;
  const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
  const anonymous = await getBytes(`${reg.url}/v2/`);
  t.is(anonymous.status, 401);
  t.regex(anonymous.headers.get('www-authenticate') ?? '', /^Basic realm=/);
  t.is((await getBytes(`${reg.url}/v2/`, basic(username, password))).status, 200);
  t.is((await getBytes(`${reg.url}/v2/`, basic(username, `${password}x`))).status, 401);
});

// serial: they count token server requests
test.serial(
  'token registry: anonymous manifest GET gets a Bearer challenge; a token from the realm opens it',
  async (t) => {
    const url = `${tokenRegistry.url}/v2/private/app/manifests/1.0`;
    const refused = await getBytes(url, { accept: ALL_MANIFESTS });
    t.is(refused.status, 401);
    const header = refused.headers.get('www-authenticate') ?? '';
    t.regex(header, /^Bearer /);
    const challenge = challengeParams(header);
    t.is(challenge.realm, tokenRegistry.tokenServer!.url);
    t.is(challenge.scope, 'repository:private/app:pull');

    const before = tokenRegistry.tokenServer!.requests();
    const realm = new URL(challenge.realm!);
    realm.searchParams.set('service', challenge.service!);
    realm.searchParams.set('scope', challenge.scope!);
    const tokenAnswer = await getBytes(realm.href);
    t.is(tokenAnswer.status, 200);
    const body = JSON.parse(tokenAnswer.bytes.toString()) as {
      token: string;
      access_token: string;
      expires_in: number;
    };
    t.is(body.token, body.access_token);
    t.true(body.expires_in > 0);
    t.is(tokenRegistry.tokenServer!.requests(), before + 1);

    const [header64, claims64] = body.token.split('.') as [string, string];
    const jwtHeader = JSON.parse(Buffer.from(header64, 'base64url').toString());
    t.is(jwtHeader.alg, 'ES256');
    t.regex(jwtHeader.kid, /^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
    t.deepEqual(JSON.parse(Buffer.from(claims64, 'base64url').toString()).access, [
      { type: 'repository', name: 'private/app', actions: ['pull'] },
    ]);

    const served = await getBytes(url, { accept: ALL_MANIFESTS, authorization: `Bearer ${body.token}` });
    t.is(served.status, 200);
    t.is(sha256(served.bytes), single.digest);
    t.is(served.headers.get('docker-content-digest'), single.digest);
  },
);

test.serial(
  'token registry: anonymous tokens cannot push, authenticated ones can; wrong credentials get no token',
  async (t) => {
    const server = tokenRegistry.tokenServer!;
    const { username, password } = tokenRegistry.credentials!;
    const tokenFor = async (auth?: string) => {
      const u = new URL(server.url);
      u.searchParams.set('service', 'pullgate-test-registry');
      u.searchParams.set('scope', 'repository:private/new:pull,push');
      return getBytes(u.href, auth ? { authorization: auth } : {});
    };
    const startUpload = async (token: string) => {
      const res = await fetch(`${tokenRegistry.url}/v2/private/new/blobs/uploads/`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
      });
      await res.body?.cancel();
      return res.status;
    };

    const anonymous = JSON.parse((await tokenFor()).bytes.toString()).token as string;
    t.is(await startUpload(anonymous), 401);
    const basic = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    const authed = JSON.parse((await tokenFor(basic)).bytes.toString()).token as string;
    t.is(await startUpload(authed), 202);
    const wrong = await tokenFor(`Basic ${Buffer.from(`${username}:nope`).toString('base64')}`);
    t.is(wrong.status, 401);
  },
);

interface Layer {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** The layers of the manifest at `tag`, with their bytes, read straight from the registry. */
async function layersAt(repo: string, tag: string): Promise<(Layer & { bytes: Buffer })[]> {
  const manifest = await getBytes(`${registry.url}/v2/${repo}/manifests/${tag}`, { accept: ALL_MANIFESTS });
  if (manifest.status !== 200) throw new Error(`${repo}:${tag} answered ${manifest.status}`);
  const layers = (JSON.parse(manifest.bytes.toString()) as { layers: Layer[] }).layers;
  return Promise.all(
    layers.map(async (l) => ({ ...l, bytes: (await getBytes(`${registry.url}/v2/${repo}/blobs/${l.digest}`)).bytes })),
  );
}

/** openssl's verdict on a signature over `data` by the key in `publicPem`. */
async function opensslVerifies(publicPem: string, data: Buffer, signature: Buffer, ed25519 = false): Promise<boolean> {
  const dir = await mkdtemp(join(work, 'openssl-'));
  const [pub, dataFile, sigFile] = [join(dir, 'pub.pem'), join(dir, 'data'), join(dir, 'sig')];
  await Promise.all([writeFile(pub, publicPem), writeFile(dataFile, data), writeFile(sigFile, signature)]);
  const r = ed25519
    ? await runCommand('openssl', [
        'pkeyutl',
        '-verify',
        '-pubin',
        '-inkey',
        pub,
        '-rawin',
        '-in',
        dataFile,
        '-sigfile',
        sigFile,
      ])
    : await runCommand('openssl', ['dgst', '-sha256', '-verify', pub, '-signature', sigFile, dataFile]);
  return r.code === 0;
}

test('signImage: one layer per signature under sha256-<hex>.sig, each verified by openssl with its key only', async (t) => {
  const repo = 'demo/single';
  const keys = (['ecdsa-p256', 'rsa', 'ed25519'] as const).map((alg) => ({ alg, ...generateKey(alg) }));
  for (const k of keys) await signImage(registry, repo, single.digest, k.privateKey);
  const layers = await layersAt(repo, `${single.digest.replace(':', '-')}.sig`);
  t.is(layers.length, keys.length, 'each signImage appended a layer');
  for (const [i, k] of keys.entries()) {
    const layer = layers[i]!;
    t.is(layer.mediaType, 'application/vnd.dev.cosign.simplesigning.v1+json');
    const payload = JSON.parse(layer.bytes.toString());
    t.is(payload.critical.image['docker-manifest-digest'], single.digest);
    t.is(payload.critical.type, 'cosign container image signature');
    const signature = Buffer.from(layer.annotations?.['dev.cosignproject.cosign/signature'] ?? '', 'base64');
    t.true(
      await opensslVerifies(k.publicPem, layer.bytes, signature, k.alg === 'ed25519'),
      `${k.alg} signature verifies`,
    );
    const stranger = generateKey(k.alg);
    t.false(
      await opensslVerifies(stranger.publicPem, layer.bytes, signature, k.alg === 'ed25519'),
      `${k.alg} signature fails with another key`,
    );
  }
});

test('signImage with payloadDigest: a valid signature over a payload naming another image', async (t) => {
  const key = generateKey('ecdsa-p256');
  await signImage(registry, 'demo/multi', multi.digest, key.privateKey, {
    payloadDigest: single.digest,
    identity: 'example.test/forged',
  });
  const [layer] = await layersAt('demo/multi', `${multi.digest.replace(':', '-')}.sig`);
  const payload = JSON.parse(layer!.bytes.toString());
  t.is(payload.critical.image['docker-manifest-digest'], single.digest);
  t.is(payload.critical.identity['docker-reference'], 'example.test/forged');
  t.true(
    await opensslVerifies(
      key.publicPem,
      layer!.bytes,
      Buffer.from(layer!.annotations!['dev.cosignproject.cosign/signature']!, 'base64'),
    ),
  );
});

test('attestImage: a DSSE in-toto layer under sha256-<hex>.att whose PAE signature openssl verifies', async (t) => {
  const key = generateKey('ecdsa-p256');
  const predicate = { runDetails: { builder: { id: 'https://ci.example.test/builders/trusted' } } };
  await attestImage(registry, 'demo/multi', multi.digest, key.privateKey, 'https://slsa.dev/provenance/v1', predicate);
  const [layer] = await layersAt('demo/multi', `${multi.digest.replace(':', '-')}.att`);
  t.is(layer!.mediaType, 'application/vnd.dsse.envelope.v1+json');
  t.is(layer!.annotations?.predicateType, 'https://slsa.dev/provenance/v1');
  const envelope = JSON.parse(layer!.bytes.toString()) as {
    payloadType: string;
    payload: string;
    signatures: { sig: string }[];
  };
  t.is(envelope.payloadType, 'application/vnd.in-toto+json');
  const statement = Buffer.from(envelope.payload, 'base64');
  const parsed = JSON.parse(statement.toString());
  t.is(parsed.predicateType, 'https://slsa.dev/provenance/v1');
  t.deepEqual(parsed.predicate, predicate);
  t.is(`sha256:${parsed.subject[0].digest.sha256}`, multi.digest);
  // the DSSE pre-authentication encoding, spelled out here independently of the harness
  const pae = Buffer.concat([
    Buffer.from(`DSSEv1 ${envelope.payloadType.length} ${envelope.payloadType} ${statement.length} `),
    statement,
  ]);
  t.true(await opensslVerifies(key.publicPem, pae, Buffer.from(envelope.signatures[0]!.sig, 'base64')));
  t.false(
    await opensslVerifies(key.publicPem, statement, Buffer.from(envelope.signatures[0]!.sig, 'base64')),
    'the signature is over the PAE, not the bare statement',
  );
});

test('pushReferrer: distribution 2.8 has no referrers API, so referrers are listed in the sha256-<hex> fallback index', async (t) => {
  const repo = 'demo/single';
  const noApi = await getBytes(`${registry.url}/v2/${repo}/referrers/${single.digest}`);
  t.is(noApi.status, 404, 'distribution 2.8 does not implement GET /v2/<name>/referrers/<digest>');
  const sbom = await pushReferrer(registry, repo, single.digest, {
    artifactType: 'application/spdx+json',
    layerMediaType: 'application/spdx+json',
    layerBytes: Buffer.from('{"spdxVersion":"SPDX-2.3"}'),
    annotations: { 'org.example/kind': 'sbom' },
  });
  const bundle = await pushReferrer(registry, repo, single.digest, {
    artifactType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
    layerMediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
    layerBytes: Buffer.from('{}'),
  });
  const referrer = await getBytes(`${registry.url}/v2/${repo}/manifests/${sbom}`, { accept: ALL_MANIFESTS });
  t.is(referrer.status, 200);
  t.is(sha256(referrer.bytes), sbom);
  const manifest = JSON.parse(referrer.bytes.toString());
  t.is(manifest.artifactType, 'application/spdx+json');
  t.is(manifest.subject.digest, single.digest);
  t.is(manifest.config.mediaType, 'application/vnd.oci.empty.v1+json');
  t.is(manifest.config.size, 2);
  const fallback = await getBytes(`${registry.url}/v2/${repo}/manifests/${single.digest.replace(':', '-')}`, {
    accept: ALL_MANIFESTS,
  });
  t.is(fallback.headers.get('content-type'), 'application/vnd.oci.image.index.v1+json');
  const listed = (
    JSON.parse(fallback.bytes.toString()) as {
      manifests: { digest: string; artifactType: string; annotations?: Record<string, string> }[];
    }
  ).manifests;
  t.deepEqual(
    listed.map((m) => [m.digest, m.artifactType]),
    [
      [sbom, 'application/spdx+json'],
      [bundle, 'application/vnd.dev.sigstore.bundle.v0.3+json'],
    ],
  );
  t.is(listed[0]!.annotations?.['org.example/kind'], 'sbom');
});

test('containerd pulls an index straight from the registry and records the pushed digest', async (t) => {
  const containerd = await startContainerd();
  t.teardown(() => containerd.stop());
  const ref = `${registry.host}/demo/multi:1.0`;
  const r = await containerd.pull(ref, { registry: registry.host, server: registry.url }, { timeoutMs: 30_000 });
  t.is(r.code, 0, r.stderr);
  t.is(await containerd.imageDigest(ref), multi.digest);
  const missing = await containerd.pull(
    `${registry.host}/demo/absent:1.0`,
    { registry: registry.host, server: registry.url },
    { timeoutMs: 30_000 },
  );
  t.not(missing.code, 0);
  t.regex(missing.stderr, /not found/);
});

/** Processes of a process group that are still running (zombies left to a non-reaping init don't count). */
async function liveGroupMembers(pgid: number): Promise<number[]> {
  const live: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(join('/proc', entry, 'stat'), 'utf8').catch(() => '');
    // fields after "pid (comm) ": state ppid pgrp …
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(pgrp) === pgid && state !== 'Z') live.push(Number(entry));
  }
  return live;
}

test('startProcess: a process that never gets ready is stopped, and the error quotes its log', async (t) => {
  const dir = await mkdtemp(join(work, 'proc-'));
  const pidFile = join(dir, 'pid');
  const err = await t.throwsAsync(
    startProcess({
      cmd: 'sh',
      args: ['-c', `echo $$ > ${pidFile}; echo marker-from-the-log; exec sleep 30`],
      logFile: join(dir, 'log'),
      ready: async () => false,
      readyTimeoutMs: 700,
    }),
  );
  t.regex(err!.message, /did not become ready/);
  t.regex(err!.message, /marker-from-the-log/);
  const pid = Number((await runCommand('cat', [pidFile])).stdout);
  t.true(pid > 0);
  t.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, 'the process is gone');
});

test('startProcess: early exit is reported with its code; stop() escalates to SIGKILL when SIGTERM is ignored', async (t) => {
  const dir = await mkdtemp(join(work, 'proc-'));
  const early = await t.throwsAsync(
    startProcess({
      cmd: 'sh',
      args: ['-c', 'echo boom; exit 3'],
      logFile: join(dir, 'early.log'),
      ready: async () => false,
      readyTimeoutMs: 5_000,
    }),
  );
  t.regex(early!.message, /exited with code 3/);
  t.regex(early!.message, /boom/);

  const readyFile = join(dir, 'ready');
  const stubborn = await startProcess({
    cmd: 'sh',
    args: ['-c', `trap '' TERM; touch ${readyFile}; while :; do sleep 0.1; done`],
    logFile: join(dir, 'stubborn.log'),
    ready: async () => existsSync(readyFile),
    stopTimeoutMs: 300,
  });
  const started = Date.now();
  await stubborn.stop();
  t.true(Date.now() - started < 3_000);
  t.deepEqual(await liveGroupMembers(stubborn.pid), [], 'the whole process group is gone');
});

test('waitFor: resolves with the first truthy value; on timeout names what it waited for and the last error', async (t) => {
  let calls = 0;
  t.is(await waitFor(() => (++calls >= 3 ? 'done' : undefined), { what: 'three calls', intervalMs: 10 }), 'done');
  t.is(calls, 3);
  const err = await t.throwsAsync(
    waitFor(
      () => {
        throw new Error('still broken');
      },
      { what: 'the widget', timeoutMs: 200, intervalMs: 20 },
    ),
  );
  t.regex(err!.message, /timed out after 200 ms waiting for the widget \(last error: still broken\)/);
});
