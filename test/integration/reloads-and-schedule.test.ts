// Issue 10: reloads are audited whatever triggers them, and re-validation runs on its own.
// - SIGHUP to a real `pullgate serve` reloads a policy change the file watcher cannot see (the
//   policy is a symlink whose target changed elsewhere) and audits it with trigger "signal";
// - a CRL or a Notation trust-store certificate replaced on disk reloads the policy (trigger "file");
// - with a short revalidate.intervalSeconds a run happens without anyone asking for it.
import test from 'ava';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { stringify } from 'yaml';
import { makeNotationPki } from '../harness/notation.ts';
import {
  buildImage,
  freePort,
  generateKey,
  pushImage,
  signImage,
  startRegistry,
  waitFor,
  type Registry,
} from '../harness/index.ts';
import { startTestProxy } from './proxy-fixture.ts';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const REG = 'registry.example.test';
const OPS = 'ops-token-0123456789abcdef';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const work = mkdtempSync(join(tmpdir(), 'pullgate-reloads-'));
test.after.always(() => rmSync(work, { recursive: true, force: true }));

interface ReloadRecord {
  actor: string;
  detail: { trigger: string; from: string; to: string; ok: boolean };
}

async function reloads(adminUrl: string): Promise<ReloadRecord[]> {
  const res = await request(`${adminUrl}/api/v1/audit?kind=policy-reload`, {
    headers: { authorization: `Bearer ${OPS}` },
  });
  if (res.statusCode !== 200) {
    await res.body.dump();
    return [];
  }
  return ((await res.body.json()) as { records: ReloadRecord[] }).records;
}

test('SIGHUP reloads a change the watcher cannot see, audited with trigger "signal"', async (t) => {
  const dir = join(work, 'sighup');
  mkdirSync(join(dir, 'real'), { recursive: true });
  const target = join(dir, 'real', 'policy.yaml');
  writeFileSync(target, 'apiVersion: pullgate.dev/v1\nkind: Policy\ndefaultRule: {evaluationMode: alwaysDeny}\n');
  // The watcher sees the link's directory; the edit lands in another one.
  symlinkSync(target, join(dir, 'policy.yaml'));
  const adminPort = await freePort();
  writeFileSync(
    join(dir, 'pullgate.yaml'),
    stringify({
      listen: { host: '127.0.0.1', port: await freePort() },
      admin: { host: '127.0.0.1', port: adminPort, tokens: [{ name: 'ops', token: OPS }] },
      upstreams: [{ host: REG, url: 'https://127.0.0.1:9' }],
      policy: { file: 'policy.yaml' },
      store: { sqlite: { path: 'state.db' } },
    }),
  );
  const child = spawn(process.execPath, [CLI, 'serve', '--config', join(dir, 'pullgate.yaml')], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  await waitFor(
    async () => {
      try {
        const r = await request(`${adminUrl}/api/v1/pins`, { headers: { authorization: `Bearer ${OPS}` } });
        await r.body.dump();
        return r.statusCode === 200 ? true : undefined;
      } catch {
        return undefined;
      }
    },
    { timeoutMs: 30_000, intervalMs: 200, what: 'the admin API of pullgate serve' },
  );
  writeFileSync(target, 'apiVersion: pullgate.dev/v1\nkind: Policy\ndefaultRule: {evaluationMode: alwaysAllow}\n');
  // Give a watcher that could see the edit the time to act: it must not.
  await new Promise((r) => setTimeout(r, 500));
  t.deepEqual(await reloads(adminUrl), [], 'nothing reloaded before the signal');
  child.kill('SIGHUP');
  const [record] = await waitFor(async () => ((await reloads(adminUrl)).length > 0 ? reloads(adminUrl) : undefined), {
    timeoutMs: 10_000,
    intervalMs: 100,
    what: 'the audited reload',
  });
  t.is(record?.detail.trigger, 'signal');
  t.is(record?.actor, 'proxy');
  t.true(record?.detail.ok);
  t.regex(record?.detail.from ?? '', /^[0-9a-f]{64}$/);
  t.not(record?.detail.from, record?.detail.to);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  t.is(await exited, 0);
});

test('a CRL or a Notation trust-store certificate replaced on disk reloads the policy, audited with trigger "file"', async (t) => {
  const pki = await makeNotationPki(mkdtempSync(join(work, 'pki-')));
  const files = join(work, 'notation');
  mkdirSync(files, { recursive: true });
  copyFileSync(pki.root.certFile, join(files, 'root.crt'));
  copyFileSync(pki.crlFile, join(files, 'intermediate.crl'));
  const proxy = await startTestProxy({
    policy: stringify({
      apiVersion: 'pullgate.dev/v1',
      kind: 'Policy',
      attestors: {
        acme: {
          notation: {
            trustStoreFiles: { ca: { acme: [join(files, 'root.crt')] } },
            level: 'strict',
            trustStores: ['ca:acme'],
            trustedIdentities: ['*'],
            crls: [join(files, 'intermediate.crl')],
          },
        },
      },
      defaultRule: { evaluationMode: 'requireAttestation', requireAttestors: ['acme'] },
    }),
    config: {
      upstreams: [{ host: REG, url: 'https://127.0.0.1:9' }],
      admin: { host: '127.0.0.1', port: 0, tokens: [{ name: 'ops', token: OPS }] },
    },
  });
  t.teardown(() => proxy.close());
  proxy.proxy.policy.watch();
  const replace = async (name: string, from: string, what: string) => {
    const before = proxy.proxy.policy.current.version;
    // As a ConfigMap or an editor does: a new file renamed over the old one.
    copyFileSync(from, join(files, `${name}.new`));
    renameSync(join(files, `${name}.new`), join(files, name));
    await waitFor(() => (proxy.proxy.policy.current.version !== before ? true : undefined), {
      timeoutMs: 5_000,
      what,
    });
    const record = (await reloads(proxy.proxy.adminUrl!)).find((r) => r.detail.from === before);
    t.is(record?.detail.trigger, 'file', what);
    t.is(record?.detail.to, proxy.proxy.policy.current.version, what);
  };
  await replace('intermediate.crl', pki.staleCrlFile, 'the reload after the CRL was replaced');
  await replace('root.crt', pki.tsaRoot.certFile, 'the reload after the trust-store certificate was replaced');
});

test('with a short revalidate.intervalSeconds, re-validation runs on its own and finds a removed signature', async (t) => {
  const registry: Registry = await startRegistry();
  t.teardown(() => registry.stop());
  const key = generateKey('ecdsa-p256');
  const proxy = await startTestProxy({
    policy: stringify({
      apiVersion: 'pullgate.dev/v1',
      kind: 'Policy',
      attestors: { ci: { keys: [{ pem: key.publicPem }] } },
      defaultRule: { evaluationMode: 'requireAttestation', requireAttestors: ['ci'] },
    }),
    config: {
      upstreams: [{ host: REG, url: registry.url, insecure: true }],
      admin: { host: '127.0.0.1', port: 0, tokens: [{ name: 'ops', token: OPS }] },
      revalidate: { intervalSeconds: 1 },
    },
  });
  t.teardown(() => proxy.close());
  const dir = join(work, 'scheduled');
  const image = await buildImage(dir, '1', { seed: 'scheduled-revalidation' });
  await pushImage(dir, '1', `${registry.host}/sched/app:1`);
  await signImage(registry, 'sched/app', image.digest, key.privateKey);
  const pulled = await request(`${proxy.url}/v2/${REG}/sched/app/manifests/1`, { headers: { accept: MANIFEST } });
  await pulled.body.dump();
  t.is(pulled.statusCode, 200);
  // The signature is retracted upstream; nobody asks for a run.
  const tag = `${image.digest.replace(':', '-')}.sig`;
  const head = await request(`${registry.url}/v2/sched/app/manifests/${tag}`, {
    method: 'HEAD',
    headers: { accept: MANIFEST },
  });
  await head.body.dump();
  const del = await request(`${registry.url}/v2/sched/app/manifests/${head.headers['docker-content-digest']}`, {
    method: 'DELETE',
  });
  await del.body.dump();
  t.is(del.statusCode, 202);
  const finding = await waitFor(
    async () => {
      const res = await request(`${proxy.proxy.adminUrl}/api/v1/revalidation`, {
        headers: { authorization: `Bearer ${OPS}` },
      });
      const body = (await res.body.json()) as { report: { denied: { digest: string; reasons: string[] }[] } | null };
      return body.report?.denied.find((d) => d.digest === image.digest);
    },
    { timeoutMs: 15_000, intervalMs: 250, what: 'a scheduled re-validation run that finds the retracted signature' },
  );
  t.regex(finding.reasons.join(' '), /no signatures or attestations found/);
  t.true(proxy.lines('revalidation run').length >= 1);
});
