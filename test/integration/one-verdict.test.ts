// Issue 10: one verdict everywhere. `pullgate check` answers what the running proxy serves
// (revocations, grants, pins, dry runs), the audit trail records every decision that changes it
// (with the policy version and who asked), drift resolves itself, admin identities are named,
// and a key file replaced on disk reloads the policy.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { stringify } from 'yaml';
import {
  buildImage,
  generateKey,
  pushImage,
  putManifest,
  signImage,
  startRegistry,
  waitFor,
  type BuiltImage,
  type Registry,
} from '../harness/index.ts';
import { startTestProxy, type TestProxy } from './proxy-fixture.ts';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const REG = 'registry.example.test';
const OPS = 'ops-token-0123456789abcdef';
const AUDITOR = 'auditor-token-0123456789abcdef';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const work = mkdtempSync(join(tmpdir(), 'pullgate-verdict-'));
const key = generateKey('ecdsa-p256');
const other = generateKey('ecdsa-p256');
let registry: Registry;
let proxy: TestProxy;
let version = 0;

function policy(dryrunMatch?: string): string {
  return stringify({
    apiVersion: 'pullgate.dev/v1',
    kind: 'Policy',
    attestors: {
      ci: { keys: [{ file: join(work, 'keys', 'ci.pub') }] },
      rk: { keys: [{ file: join(work, 'keys', 'rk.pub') }] },
    },
    defaultRule: { evaluationMode: 'requireAttestation', requireAttestors: ['ci'] },
    rules: [
      { match: `${REG}/follow/**`, evaluationMode: 'requireAttestation', requireAttestors: ['ci'], tagMode: 'follow' },
      { match: `${REG}/rekey/**`, evaluationMode: 'requireAttestation', requireAttestors: ['rk'] },
      { match: `${REG}/denytag/**`, evaluationMode: 'requireAttestation', requireAttestors: ['ci'], tagMode: 'deny' },
      ...(dryrunMatch
        ? [
            {
              match: dryrunMatch,
              evaluationMode: 'requireAttestation',
              requireAttestors: ['ci'],
              enforcementMode: 'dryrun',
            },
          ]
        : []),
    ],
  });
}

test.before(async () => {
  registry = await startRegistry();
  mkdirSync(join(work, 'keys'), { recursive: true });
  writeFileSync(join(work, 'keys', 'ci.pub'), key.publicPem);
  writeFileSync(join(work, 'keys', 'rk.pub'), key.publicPem);
  proxy = await startTestProxy({
    policy: policy(`${REG}/dry/**`),
    config: {
      upstreams: [{ host: REG, url: registry.url, insecure: true }],
      admin: {
        host: '127.0.0.1',
        port: 0,
        tokens: [
          { name: 'ops', token: OPS },
          { name: 'auditor', token: AUDITOR, readOnly: true },
        ],
      },
      tagRecheckSeconds: 0,
    },
  });
});

test.after.always(async () => {
  await proxy?.close();
  await registry?.stop();
  rmSync(work, { recursive: true, force: true });
});

async function pushNew(repo: string, tag: string, signed: boolean, platforms?: string[]): Promise<BuiltImage> {
  const dir = join(work, `img-${++version}`);
  const image = await buildImage(dir, tag, { seed: `${repo}:${tag}:${version}`, ...(platforms ? { platforms } : {}) });
  await pushImage(dir, tag, `${registry.host}/${repo}:${tag}`);
  if (signed) await signImage(registry, repo, image.digest, key.privateKey);
  return image;
}

async function pull(repo: string, ref: string, headers: Record<string, string> = {}) {
  const res = await request(`${proxy.url}/v2/${REG}/${repo}/manifests/${ref}`, {
    headers: { accept: MANIFEST, ...headers },
  });
  const text = await res.body.text();
  return { status: res.statusCode, digest: res.headers['docker-content-digest'] as string | undefined, text };
}

async function admin(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, token = OPS) {
  const res = await request(`${proxy.proxy.adminUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

function check(image: string, ...flags: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, 'check', image, '--admin-url', proxy.proxy.adminUrl!, '--token', AUDITOR, ...flags],
      { timeout: 60_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

test('check says REFUSED for a revoked digest, as the proxy does', async (t) => {
  const image = await pushNew('verdict/revoked', '1', true);
  t.is((await pull('verdict/revoked', '1')).status, 200);
  t.is((await check(`${REG}/verdict/revoked:1`)).code, 0);
  t.is((await admin('POST', '/api/v1/revocations', { digest: image.digest, reason: 'CVE-2026-9' })).status, 200);
  t.is((await pull('verdict/revoked', '1')).status, 403);
  const r = await check(`${REG}/verdict/revoked:1`);
  t.is(r.code, 1);
  t.regex(r.stdout, /^REFUSED .*revoked by admin:ops .*CVE-2026-9/s);
});

test('check says SERVED for a digest a break-glass grant lets through, as the proxy does', async (t) => {
  const image = await pushNew('verdict/granted', '1', false);
  t.is((await pull('verdict/granted', image.digest)).status, 403);
  t.is((await check(`${REG}/verdict/granted@${image.digest}`)).code, 1);
  t.is(
    (await admin('POST', '/api/v1/grants', { digest: image.digest, expiresIn: '1h', reason: 'incident 7' })).status,
    200,
  );
  t.is((await pull('verdict/granted', image.digest)).status, 200);
  const r = await check(`${REG}/verdict/granted@${image.digest}`, '--explain');
  t.is(r.code, 0, r.stdout + r.stderr);
  t.regex(r.stdout, /grant: break-glass grant .* by admin:ops .*incident 7/);
});

test('after a tag is overwritten upstream, check judges the pinned digest the proxy serves', async (t) => {
  const first = await pushNew('verdict/moved', '1', true);
  t.is((await pull('verdict/moved', '1')).digest, first.digest);
  const second = await pushNew('verdict/moved', '1', false);
  t.is((await pull('verdict/moved', '1')).digest, first.digest);
  const r = await check(`${REG}/verdict/moved:1`, '--explain', '--json');
  t.is(r.code, 0, r.stderr);
  const e = JSON.parse(r.stdout) as { digest: string; steps: { step: string; outcome: string }[] };
  t.is(e.digest, first.digest);
  t.not(e.digest, second.digest);
  t.regex(e.steps.find((s) => s.step === 'pin')?.outcome ?? '', new RegExp(`pinned to ${first.digest}`));
});

test('check on a dry run says it is served and would be denied', async (t) => {
  await pushNew('dry/app', '1', false);
  const r = await check(`${REG}/dry/app:1`, '--explain');
  t.is(r.code, 0);
  t.regex(r.stdout, /policy: rule rule:registry\.example\.test\/dry\/\*\* \(dry run\) would deny/);
});

test('check writes nothing: the pull after it still makes, logs and audits its own decision', async (t) => {
  const image = await pushNew('verdict/asked-first', '1', true);
  const decisions = () => proxy.lines('decision').filter((l) => l.digest === image.digest).length;
  const r = await check(`${REG}/verdict/asked-first:1`);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.is(decisions(), 0, 'a check is not a decision');
  t.is((await pull('verdict/asked-first', '1')).status, 200);
  t.is(decisions(), 1);
  const allows = (await admin('GET', `/api/v1/audit?kind=allow&digest=${image.digest}`)).body.records as unknown[];
  t.is(allows.length, 1, 'the pull after a check is audited');
});

test('deny tag mode: check asks the upstream and says REFUSED for a tag that moved, as a pull does', async (t) => {
  const first = await pushNew('denytag/app', '1', true);
  t.is((await pull('denytag/app', '1')).digest, first.digest);
  const second = await pushNew('denytag/app', '1', true);
  // Not pulled since it moved: only the upstream knows.
  const r = await check(`${REG}/denytag/app:1`, '--explain');
  t.is(r.code, 1, r.stdout + r.stderr);
  t.regex(r.stdout, new RegExp(`^REFUSED .*moved upstream from ${first.digest} to ${second.digest}`, 's'));
  t.regex(r.stdout, /pullgate pins approve/);
  const pulled = await pull('denytag/app', '1');
  t.is(pulled.status, 403);
  t.regex(pulled.text, /moved upstream/);
});

test('follow tag mode: check says where a pull moves the pin, and that it keeps the pin for a refused digest', async (t) => {
  const a = await pushNew('follow/asked', '1', true);
  t.is((await pull('follow/asked', '1')).digest, a.digest);
  const unsigned = await pushNew('follow/asked', '1', false);
  const kept = JSON.parse((await check(`${REG}/follow/asked:1`, '--explain', '--json')).stdout) as {
    digest: string;
    served: boolean;
    steps: { step: string; outcome: string }[];
  };
  t.true(kept.served);
  t.is(kept.digest, a.digest);
  t.true(kept.steps.some((s) => s.outcome.includes(`moved to ${unsigned.digest}, which is refused`)));
  const b = await pushNew('follow/asked', '1', true);
  const r = await check(`${REG}/follow/asked:1`, '--explain', '--json');
  t.is(r.code, 0, r.stderr);
  const moved = JSON.parse(r.stdout) as { digest: string; message: string };
  t.is(moved.digest, b.digest, 'check reports the digest a pull moves to');
  t.regex(moved.message, new RegExp(`a pull moves the pin from ${a.digest}`));
  const pins = (await admin('GET', '/api/v1/pins')).body.pins as { repository: string; digest: string }[];
  t.is(pins.find((p) => p.repository === 'follow/asked')?.digest, a.digest, 'check moved no pin');
  t.is((await pull('follow/asked', '1')).digest, b.digest, 'and the pull does');
});

test('a platform manifest of a signed index, pulled by digest first, is refused with what to do', async (t) => {
  const index = await pushNew('verdict/multi', '1', true, ['linux/amd64', 'linux/arm64']);
  const child = index.manifests[0]!.digest;
  const refused = await pull('verdict/multi', child);
  t.is(refused.status, 403);
  t.regex(refused.text, /pull the image by its tag or index digest through the proxy first/);
  t.is((await pull('verdict/multi', '1', { accept: 'application/vnd.oci.image.index.v1+json' })).status, 200);
  t.is((await pull('verdict/multi', child)).status, 200, 'judged through the index once the proxy knows it');
});

test('decisions record the policy version and who asked; refused pulls of revoked digests are audited, rate-limited', async (t) => {
  const image = await pushNew('verdict/audited', '1', true);
  t.is((await pull('verdict/audited', '1', { 'user-agent': 'containerd/1.7.0-test' })).status, 200);
  const allow = (
    (await admin('GET', `/api/v1/audit?kind=allow&digest=${image.digest}`)).body.records as {
      detail: { policy: string; client: { userAgent: string; address: string } };
    }[]
  )[0];
  t.regex(allow?.detail.policy ?? '', /^[0-9a-f]{64}$/, 'the version of the policy that decided');
  t.is(allow?.detail.client.userAgent, 'containerd/1.7.0-test');
  t.regex(allow?.detail.client.address ?? '', /127\.0\.0\.1/);
  await admin('POST', '/api/v1/revocations', { digest: image.digest, reason: 'bad build' });
  for (let i = 0; i < 3; i++) t.is((await pull('verdict/audited', '1')).status, 403);
  const refusals = (await admin('GET', `/api/v1/audit?kind=revoked-pull&digest=${image.digest}`)).body
    .records as unknown[];
  t.is(refusals.length, 1, 'three refusals within a minute: one record');
});

test('named admin identities: a read-only one may read but not change; changes name who made them', async (t) => {
  t.is((await admin('GET', '/api/v1/pins', undefined, AUDITOR)).status, 200);
  const refused = await admin(
    'POST',
    '/api/v1/revocations',
    { digest: `sha256:${'e'.repeat(64)}`, reason: 'x' },
    AUDITOR,
  );
  t.is(refused.status, 403);
  t.regex(JSON.stringify(refused.body), /read-only/);
  t.is((await admin('POST', '/api/v1/revocations', { digest: `sha256:${'e'.repeat(64)}`, reason: 'x' })).status, 200);
  const record = (
    (await admin('GET', `/api/v1/audit?kind=revoke&digest=sha256:${'e'.repeat(64)}`)).body.records as {
      actor: string;
    }[]
  )[0];
  t.is(record?.actor, 'admin:ops');
  t.true(
    proxy.lines('audit record').some((l) => l.kind === 'revoke'),
    'the admin record is anchored in the log',
  );
});

test('drift resolves itself when the upstream tag moves back, and when a follow re-pin reaches it', async (t) => {
  const first = await pushNew('verdict/flap', '1', true);
  t.is((await pull('verdict/flap', '1')).digest, first.digest);
  await pushNew('verdict/flap', '1', true);
  await pull('verdict/flap', '1');
  const open = () =>
    admin('GET', '/api/v1/drift').then((r) =>
      (r.body.drift as { repository: string }[]).filter((d) => d.repository === 'verdict/flap'),
    );
  await waitFor(async () => ((await open()).length === 1 ? true : undefined), {
    timeoutMs: 5_000,
    what: 'drift recorded',
  });
  // Back to the pinned digest upstream (the same image pushed again).
  const bytes = Buffer.from(
    await (
      await request(`${registry.url}/v2/verdict/flap/manifests/${first.digest}`, { headers: { accept: MANIFEST } })
    ).body.arrayBuffer(),
  );
  await putManifest(registry, 'verdict/flap', '1', bytes, MANIFEST);
  await pull('verdict/flap', '1');
  await waitFor(async () => ((await open()).length === 0 ? true : undefined), {
    timeoutMs: 5_000,
    what: 'drift resolved',
  });

  const a = await pushNew('follow/app', '1', true);
  t.is((await pull('follow/app', '1')).digest, a.digest);
  const unsigned = await pushNew('follow/app', '1', false);
  t.is((await pull('follow/app', '1')).digest, a.digest, 'a follow refuses an unsigned digest');
  const followOpen = () =>
    admin('GET', '/api/v1/drift').then((r) =>
      (r.body.drift as { repository: string }[]).filter((d) => d.repository === 'follow/app'),
    );
  t.is((await followOpen()).length, 1);
  const b = await pushNew('follow/app', '1', true);
  t.is((await pull('follow/app', '1')).digest, b.digest, 'and follows a signed one');
  t.not(b.digest, unsigned.digest);
  t.is((await followOpen()).length, 0, 'the re-pin resolved the drift');
});

test('a key file replaced on disk reloads the policy, and the reload is audited with its trigger', async (t) => {
  const image = await pushNew('rekey/app', '1', true);
  t.is((await pull('rekey/app', '1')).status, 200);
  const before = proxy.proxy.policy.current.version;
  proxy.proxy.policy.watch();
  // Replaced, as a ConfigMap or an editor does: a new file renamed over the old one.
  writeFileSync(join(work, 'keys', 'rk.pub.new'), other.publicPem);
  renameSync(join(work, 'keys', 'rk.pub.new'), join(work, 'keys', 'rk.pub'));
  await waitFor(() => (proxy.proxy.policy.current.version !== before ? true : undefined), {
    timeoutMs: 5_000,
    what: 'the policy reload',
  });
  t.is((await pull('rekey/app', image.digest)).status, 403, 'the old signing key is no longer trusted');
  const reload = (
    (await admin('GET', '/api/v1/audit?kind=policy-reload')).body.records as {
      detail: { trigger: string; from: string; to: string };
    }[]
  )[0];
  t.is(reload?.detail.trigger, 'file');
  t.is(reload?.detail.from, before);
  t.is(reload?.detail.to, proxy.proxy.policy.current.version);
});

/** Removes an image's cosign signature from the registry, as a retracted signing would. */
async function deleteSignature(repo: string, digest: string): Promise<void> {
  const tag = `${digest.replace(':', '-')}.sig`;
  const head = await request(`${registry.url}/v2/${repo}/manifests/${tag}`, {
    method: 'HEAD',
    headers: { accept: MANIFEST },
  });
  await head.body.dump();
  const sigDigest = head.headers['docker-content-digest'] as string;
  const del = await request(`${registry.url}/v2/${repo}/manifests/${sigDigest}`, { method: 'DELETE' });
  await del.body.dump();
  if (del.statusCode !== 202) throw new Error(`deleting ${repo}:${tag}: ${del.statusCode}`);
}

test('re-validation reports a served image whose signature was removed; with enforce it is withdrawn', async (t) => {
  const image = await pushNew('verdict/retracted', '1', true);
  t.is((await pull('verdict/retracted', '1')).status, 200);
  await deleteSignature('verdict/retracted', image.digest);
  const run = await admin('POST', '/api/v1/revalidation');
  const report = run.body.report as {
    denied: { digest: string; reasons: string[]; withdrawn: boolean }[];
    judged: number;
  };
  const finding = report.denied.find((d) => d.digest === image.digest);
  t.truthy(finding, JSON.stringify(report));
  t.false(finding!.withdrawn);
  t.regex(finding!.reasons.join(' '), /no signatures or attestations found/);
  t.is((await admin('GET', '/api/v1/revalidation', undefined, AUDITOR)).status, 200);
  const records = (await admin('GET', `/api/v1/audit?kind=revalidate-deny&digest=${image.digest}`)).body
    .records as unknown[];
  t.is(records.length, 1);
  t.is((await pull('verdict/retracted', '1')).status, 403, 'the fresh verdict is what the proxy now serves by');

  const enforcing = await startTestProxy({
    policy: policy(),
    config: {
      upstreams: [{ host: REG, url: registry.url, insecure: true }],
      admin: { host: '127.0.0.1', port: 0, tokens: [{ name: 'ops', token: OPS }] },
      revalidate: { intervalSeconds: 0, enforce: true },
    },
  });
  try {
    const other = await pushNew('verdict/retracted-2', '1', true);
    const get = (p: TestProxy) =>
      request(`${p.url}/v2/${REG}/verdict/retracted-2/manifests/1`, { headers: { accept: MANIFEST } }).then(
        async (r) => (await r.body.dump(), r.statusCode),
      );
    t.is(await get(enforcing), 200);
    await deleteSignature('verdict/retracted-2', other.digest);
    const res = await request(`${enforcing.proxy.adminUrl}/api/v1/revalidation`, {
      method: 'POST',
      headers: { authorization: `Bearer ${OPS}` },
    });
    const body = (await res.body.json()) as { report: { denied: { digest: string; withdrawn: boolean }[] } };
    t.true(body.report.denied.some((d) => d.digest === other.digest && d.withdrawn));
    const revocation = await enforcing.proxy.store.getRevocation(other.digest);
    t.is(revocation?.actor, 'revalidation');
    t.regex(
      revocation?.reason ?? '',
      /^re-validation of registry\.example\.test\/verdict\/retracted-2 \(rule default\): /,
    );
  } finally {
    await enforcing.close();
  }
});

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 120_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

test('policy test --replay judges a candidate policy against the images pulled lately', async (t) => {
  const kept = await pushNew('replay/kept', '1', true);
  const dropped = await pushNew('replay/dropped', '1', true);
  const unsigned = await pushNew('replay/unsigned', '1', false);
  t.is((await pull('replay/kept', '1')).status, 200);
  t.is((await pull('replay/dropped', '1')).status, 200);
  t.is((await pull('replay/unsigned', '1')).status, 403);
  const configFile = join(work, 'replay-config.yaml');
  writeFileSync(
    configFile,
    stringify({
      upstreams: [{ host: REG, url: registry.url, insecure: true }],
      store: { sqlite: { path: join(proxy.dir, 'state.db') } },
      policy: { file: join(proxy.dir, 'policy.yaml') },
    }),
  );
  const candidate = join(work, 'candidate.yaml');
  writeFileSync(
    candidate,
    stringify({
      apiVersion: 'pullgate.dev/v1',
      kind: 'Policy',
      attestors: { ci: { keys: [{ file: join(work, 'keys', 'ci.pub') }] } },
      allowlist: [`${REG}/replay/unsigned:*`],
      defaultRule: { evaluationMode: 'requireAttestation', requireAttestors: ['ci'] },
      rules: [{ match: `${REG}/replay/dropped`, evaluationMode: 'alwaysDeny' }],
    }),
  );
  const r = await cli(['policy', 'test', candidate, '--replay', '1h', '--config', configFile, '--json']);
  t.is(r.code, 1, r.stderr);
  const result = JSON.parse(r.stdout) as { newlyDenied: { image: string }[]; newlyAllowed: { image: string }[] };
  t.true(result.newlyDenied.some((c) => c.image.includes(dropped.digest)));
  t.false(result.newlyDenied.some((c) => c.image.includes(kept.digest)));
  t.true(result.newlyAllowed.some((c) => c.image.includes(unsigned.digest)));
});

test('drift resolve and revalidate report from the command line', async (t) => {
  const first = await pushNew('verdict/cli-drift', '1', true);
  t.is((await pull('verdict/cli-drift', '1')).digest, first.digest);
  const moved = await pushNew('verdict/cli-drift', '1', true);
  const pulledAt = Date.now();
  await pull('verdict/cli-drift', '1');
  const open = await waitFor(
    async () => {
      const d = ((await admin('GET', '/api/v1/drift')).body.drift as { id: number; repository: string }[]).find(
        (x) => x.repository === 'verdict/cli-drift',
      );
      return d;
    },
    { timeoutMs: 5_000, what: 'drift recorded' },
  );
  const admin_ = ['--admin-url', proxy.proxy.adminUrl!, '--token', OPS];
  const ls = await cli(['drift', 'ls', ...admin_]);
  t.is(ls.code, 0, ls.stderr);
  t.regex(ls.stdout, /UPSTREAM LAST SEEN .*LAST SEEN AT/);
  const row = ls.stdout.split('\n').find((l) => l.includes('verdict/cli-drift:1'));
  t.truthy(row, ls.stdout);
  t.true(row!.includes(first.digest) && row!.includes(moved.digest), 'the pin and the upstream digest last seen');
  const seenAt = Date.parse(/\d{4}-\d\d-\d\dT[\d:.]+Z/.exec(row!)?.[0] ?? '');
  t.true(Math.abs(seenAt - pulledAt) < 60_000, `when it was last seen: ${row}`);
  const resolved = await cli(['drift', 'resolve', String(open.id), '--reason', 'checked with the team', ...admin_]);
  t.is(resolved.code, 0, resolved.stderr);
  const records = (await admin('GET', '/api/v1/audit?kind=drift&image=registry.example.test/verdict/cli-drift')).body
    .records as { reasons?: string[]; actor: string }[];
  t.true(records.some((r) => r.actor === 'admin:ops' && r.reasons?.includes('checked with the team')));
  const report = await cli(['revalidate', 'report', ...admin_]);
  t.true(report.code === 0 || report.code === 1, report.stderr);
  t.regex(report.stdout, /re-validation|no re-validation has run yet/);
});
