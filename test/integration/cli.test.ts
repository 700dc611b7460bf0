// The pullgate command line against a real registry and a running proxy.
import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DatabaseSync } from 'node:sqlite';
import { stringify } from 'yaml';
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
import { startTestProxy, type TestProxy } from './proxy-fixture.ts';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const REG = 'registry.example.test';
const TOKEN = 'cli-admin-token-0123456789';
const work = mkdtempSync(join(tmpdir(), 'pullgate-cli-'));
const key = generateKey('ecdsa-p256');
let registry: Registry;
let proxy: TestProxy;
const digests: Record<string, string> = {};

function cli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, ...env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      },
    );
  });
}

test.before(async () => {
  registry = await startRegistry();
  for (const [repo, signed] of [
    ['demo/signed', true],
    ['demo/unsigned', false],
  ] as const) {
    const image = await buildImage(join(work, repo), '1.0', { seed: repo });
    await pushImage(join(work, repo), '1.0', `${registry.host}/${repo}:1.0`);
    if (signed) await signImage(registry, repo, image.digest, key.privateKey);
    digests[repo] = image.digest;
  }
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
  writeFileSync(
    join(work, 'pullgate.yaml'),
    stringify({
      upstreams: [{ host: REG, url: registry.url, insecure: true }],
      policy: { file: 'policy.yaml' },
    }),
  );
  proxy = await startTestProxy({
    policy: `apiVersion: pullgate.dev/v1\nkind: Policy\nattestors: {ci: {keys: [{file: ${join(work, 'ci.pub')}}]}}\ndefaultRule: {evaluationMode: requireAttestation, requireAttestors: [ci]}\n`,
    config: {
      upstreams: [{ host: REG, url: registry.url, insecure: true }],
      admin: { host: '127.0.0.1', port: 0, token: TOKEN },
    },
  });
});

test.after.always(async () => {
  await proxy?.close();
  await registry?.stop();
  rmSync(work, { recursive: true, force: true });
});

test('check --offline: exit 0 and ALLOW for a signed image, exit 1 and the reason for an unsigned one; --json', async (t) => {
  const ok = await cli(['check', `${REG}/demo/signed:1.0`, '--offline', '--config', join(work, 'pullgate.yaml')]);
  t.is(ok.code, 0, ok.stderr);
  t.regex(ok.stdout, new RegExp(`^ALLOW ${REG}/demo/signed@${digests['demo/signed']}`));
  t.regex(ok.stdout, /attestor "ci": \d+ examined, 1 verified/);
  t.regex(ok.stderr, /resolving/);
  t.regex(ok.stderr, /offline check: .*pins, revocations, grants and stale serving are not consulted/);
  const no = await cli([
    'check',
    `${REG}/demo/unsigned:1.0`,
    '--offline',
    '--config',
    join(work, 'pullgate.yaml'),
    '--json',
  ]);
  t.is(no.code, 1);
  const parsed = JSON.parse(no.stdout);
  t.is(parsed.verdict.judgement, 'deny');
  t.regex(parsed.verdict.reasons.join(' '), /attestor "ci"/);
  const notAllowed = await cli([
    'check',
    'evil.example.test/x:1',
    '--offline',
    '--config',
    join(work, 'pullgate.yaml'),
  ]);
  t.is(notAllowed.code, 2);
  t.regex(notAllowed.stderr, /not in this proxy's allowlist/);
});

test('policy lint: exit 0 for a good policy, 1 with the path for a bad one', async (t) => {
  const good = await cli(['policy', 'lint', join(work, 'policy.yaml')]);
  t.is(good.code, 0, good.stdout);
  writeFileSync(
    join(work, 'bad.yaml'),
    'apiVersion: pullgate.dev/v1\nkind: Policy\ndefaultRule: {evaluationMode: requireAttestation, requireAttestors: [nobody]}\n',
  );
  const bad = await cli(['policy', 'lint', join(work, 'bad.yaml')]);
  t.is(bad.code, 1);
  t.regex(bad.stdout, /error: \/defaultRule\/requireAttestors\/0: .*nobody/);
});

test('serve refuses to start on an invalid config, naming the key', async (t) => {
  writeFileSync(join(work, 'broken.yaml'), 'listen: {port: 70000}\n');
  const r = await cli(['serve', '--config', join(work, 'broken.yaml')]);
  t.is(r.code, 2);
  t.regex(r.stderr, /listen\.port: must be between 0 and 65535/);
});

test.serial('admin commands: revoke, pins, audit tail and verify; tampering is reported', async (t) => {
  const env = { PULLGATE_ADMIN_TOKEN: TOKEN };
  const admin = ['--admin-url', proxy.proxy.adminUrl!];
  const pulled = await fetch(`${proxy.url}/v2/${REG}/demo/signed/manifests/1.0`);
  t.is(pulled.status, 200);
  const pins = await cli(['pins', 'ls', ...admin], env);
  t.regex(pins.stdout, new RegExp(`${REG}/demo/signed:1.0\\s+${digests['demo/signed']}`));
  const revoked = await cli(['revoke', digests['demo/signed']!, '--reason', 'test revocation', ...admin], env);
  t.is(revoked.code, 0, revoked.stderr);
  t.is((await fetch(`${proxy.url}/v2/${REG}/demo/signed/manifests/1.0`)).status, 403);
  const tail = await cli(['audit', 'tail', '-n', '3', ...admin, '--json'], env);
  t.true((JSON.parse(tail.stdout) as { kind: string }[]).some((r) => r.kind === 'revoke'));
  t.is((await cli(['audit', 'verify', ...admin], env)).code, 0);
  const db = new DatabaseSync(join(proxy.dir, 'state.db'));
  db.exec("UPDATE audit SET reasons = '[\"nothing to see\"]' WHERE kind = 'revoke'");
  db.close();
  const verify = await cli(['audit', 'verify', ...admin], env);
  t.is(verify.code, 1);
  t.regex(verify.stdout, /TAMPERED.*\n\s+seq \d+: modified/);
  const unauthorized = await cli(['pins', 'ls', ...admin], { PULLGATE_ADMIN_TOKEN: 'wrong-token-wrong-token' });
  t.is(unauthorized.code, 2);
  t.regex(unauthorized.stderr, /refused the token/);
});

test('serve reloads the policy on SIGHUP and when the file changes; an invalid edit keeps the old policy', async (t) => {
  const dir = mkdtempSync(join(work, 'serve-'));
  const port = await freePort();
  const policyFile = join(dir, 'policy.yaml');
  const deny = 'apiVersion: pullgate.dev/v1\nkind: Policy\ndefaultRule: {evaluationMode: alwaysDeny}\n';
  const allow = 'apiVersion: pullgate.dev/v1\nkind: Policy\ndefaultRule: {evaluationMode: alwaysAllow}\n';
  writeFileSync(policyFile, deny);
  writeFileSync(
    join(dir, 'pullgate.yaml'),
    stringify({
      listen: { host: '127.0.0.1', port },
      upstreams: [{ host: REG, url: registry.url, insecure: true }],
      policy: { file: 'policy.yaml' },
      store: { sqlite: { path: 'state.db' } },
      cache: { allowTtlSeconds: 0, denyTtlSeconds: 0 },
    }),
  );
  const child = spawn(process.execPath, [CLI, 'serve', '--config', join(dir, 'pullgate.yaml')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (d: Buffer) => {
    log += d.toString();
  });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const status = async () =>
    (
      await fetch(`http://127.0.0.1:${port}/v2/${REG}/demo/signed/manifests/${digests['demo/signed']}`).catch(
        () => undefined,
      )
    )?.status;
  await waitFor(async () => (await status()) === 403 || undefined, {
    timeoutMs: 15_000,
    intervalMs: 100,
    what: 'the proxy serving with the deny-all policy',
  });

  // SIGHUP: an edit made while watching is off would be picked up by the signal alone
  writeFileSync(policyFile, allow);
  child.kill('SIGHUP');
  await waitFor(async () => (await status()) === 200 || undefined, {
    timeoutMs: 3_000,
    intervalMs: 50,
    what: 'the allow policy after SIGHUP or the file change',
  });

  // an invalid edit is refused and logged; the allow policy stays in force
  writeFileSync(policyFile, 'apiVersion: pullgate.dev/v1\nkind: Policy\ndefaultRule: {evaluationMode: sometimes}\n');
  child.kill('SIGHUP');
  await waitFor(() => log.includes('policy reload failed; keeping the previous policy') || undefined, {
    timeoutMs: 3_000,
    intervalMs: 50,
    what: 'the reload failure in the log',
  });
  t.is(await status(), 200);

  // a file change alone (no signal) is picked up by the watcher
  writeFileSync(policyFile, deny);
  await waitFor(async () => (await status()) === 403 || undefined, {
    timeoutMs: 3_000,
    intervalMs: 50,
    what: 'the deny policy after the file change',
  });
  child.kill('SIGTERM');
  const code = await new Promise((resolve) => child.once('exit', resolve));
  t.is(code, 0, 'SIGTERM drains and exits cleanly');
});

test('cache ls, verify and prune work on the cache directory a config names', async (t) => {
  const dir = join(work, 'cli-cache');
  const configFile = join(work, 'cache-config.yaml');
  writeFileSync(
    configFile,
    stringify({ store: { sqlite: { path: join(dir, 'state.db') } }, cache: { blobs: { maxBytes: '1GiB' } } }),
  );
  const { BlobCache } = await import('../../src/blobs/cache.ts');
  const { createHash, randomBytes } = await import('node:crypto');
  const cache = new BlobCache({ dir: join(dir, 'blobs'), maxBytes: 1024 ** 3 });
  await cache.open();
  const digests: string[] = [];
  for (const size of [1000, 2000, 3000]) {
    const bytes = randomBytes(size);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    const tmp = cache.tmpPath();
    writeFileSync(tmp, bytes);
    t.true(await cache.admit(tmp, digest, size));
    digests.push(digest);
  }
  const ls = await cli(['cache', 'ls', '--config', configFile, '--json']);
  t.is(ls.code, 0, ls.stderr);
  const listed = JSON.parse(ls.stdout) as { entries: { digest: string }[]; bytes: number };
  t.deepEqual(listed.entries.map((e) => e.digest).sort(), [...digests].sort());
  t.is(listed.bytes, 6000);
  writeFileSync(cache.pathOf(digests[1]!), randomBytes(2000));
  const verify = await cli(['cache', 'verify', '--config', configFile]);
  t.is(verify.code, 1, 'a bad entry makes verify exit 1');
  t.regex(verify.stdout, new RegExp(`removed 1 whose content did not match[\\s\\S]*${digests[1]}`));
  const prune = await cli(['cache', 'prune', '--max-bytes', '0', '--config', configFile, '--json']);
  t.is(prune.code, 0, prune.stderr);
  t.is((JSON.parse(prune.stdout) as { entries: number }).entries, 0);
  const usage = await cli(['cache', 'prune', '--config', configFile]);
  t.is(usage.code, 2);
});
