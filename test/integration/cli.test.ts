// The pullgate command line against a real registry and a running proxy.
import test from 'ava';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
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
    ['demo/other', true],
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
      defaultUpstream: REG,
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
  t.regex(notAllowed.stderr, /not an allowlisted upstream of this proxy/);
});

test('check --offline on a dry-run rule: exit 0, as the proxy serves it, and says it would deny', async (t) => {
  writeFileSync(
    join(work, 'dryrun.yaml'),
    stringify({
      apiVersion: 'pullgate.dev/v1',
      kind: 'Policy',
      attestors: { ci: { keys: [{ file: 'ci.pub' }] } },
      defaultRule: { evaluationMode: 'requireAttestation', requireAttestors: ['ci'], enforcementMode: 'dryrun' },
    }),
  );
  const config = ['--config', join(work, 'pullgate.yaml'), '--policy', join(work, 'dryrun.yaml')];
  const r = await cli(['check', `${REG}/demo/unsigned:1.0`, ...config]);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.regex(r.stdout, new RegExp(`^SERVED \\(dry run would deny\\) ${REG}/demo/unsigned@`));
  t.regex(r.stdout, /reason: dry-run: would deny: attestor "ci"/);
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
  // Starting a process takes seconds on a loaded 2-core machine; the reload checks below stay tight.
  await waitFor(async () => (await status()) === 403 || undefined, {
    timeoutMs: 60_000,
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
  t.regex(usage.stderr, /^pullgate cache prune: give --max-bytes, --older-than or both\n\nusage: pullgate cache prune/);
});

test.serial(
  '--help on commands and subcommands: usage on stdout, exit 0; usage errors: one line and the usage on stderr, exit 2',
  async (t) => {
    for (const args of [
      ['--help'],
      ['revoke', '--help'],
      ['grant', 'revoke', '--help'],
      ['audit', '--help'],
      ['help', 'why'],
    ]) {
      const r = await cli(args);
      t.is(r.code, 0, args.join(' '));
      t.regex(r.stdout, /^usage: pullgate /, args.join(' '));
      t.is(r.stderr, '', args.join(' '));
    }
    t.regex((await cli(['revoke', '--help'])).stdout, /--reason TEXT +why; it goes into the audit trail \(required\)/);
    const bad = await cli(['revoke', '--bogus']);
    t.is(bad.code, 2);
    t.is(bad.stdout, '');
    t.regex(bad.stderr, /^pullgate revoke: unknown option --bogus\n\nusage: pullgate revoke DIGEST --reason TEXT/);
    const none = await cli([]);
    t.is(none.code, 2);
    t.regex(none.stderr, /^pullgate: no command given\n\nusage: pullgate <command>/);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    t.deepEqual(await cli(['--version']), { code: 0, stdout: `pullgate ${pkg.version}\n`, stderr: '' });
  },
);

test.serial(
  'why, audit query by image with a tag and by age, names without a registry (defaultUpstream)',
  async (t) => {
    const env = { PULLGATE_ADMIN_TOKEN: TOKEN, PULLGATE_ADMIN_URL: proxy.proxy.adminUrl! };
    t.is((await fetch(`${proxy.url}/v2/${REG}/demo/other/manifests/1.0`)).status, 200);
    t.is((await fetch(`${proxy.url}/v2/${REG}/demo/unsigned/manifests/1.0`)).status, 403);

    const denied = await cli(['why', 'demo/unsigned:1.0'], env);
    t.is(denied.code, 1, denied.stderr);
    t.regex(denied.stdout, new RegExp(`^DENIED ${REG}/demo/unsigned:1\\.0@${digests['demo/unsigned']}\\n`));
    t.regex(denied.stdout, /\n {2}at \S+ \(audit seq \d+\), rule default \(enforce\)\n {2}reason: attestor "ci": /);
    t.regex(denied.stdout, new RegExp(`pullgate check demo/unsigned:1\\.0\\n$`));
    const allowed = await cli(['why', `${REG}/demo/other:1.0`], env);
    t.is(allowed.code, 0, allowed.stderr);
    t.regex(allowed.stdout, new RegExp(`^ALLOWED ${REG}/demo/other:1\\.0@${digests['demo/other']}\\n`));
    t.regex(allowed.stdout, new RegExp(`tag pinned to ${digests['demo/other']}`));
    const unknown = await cli(['why', 'demo/never:1.0'], env);
    t.is(unknown.code, 1);
    t.regex(unknown.stdout, new RegExp(`^no decision recorded for ${REG}/demo/never:1\\.0`));
    const json = JSON.parse((await cli(['why', `${REG}/demo/unsigned:1.0`, '--json'], env)).stdout);
    t.like(json, {
      image: { upstream: REG, repository: 'demo/unsigned', tag: '1.0' },
      decision: { kind: 'deny', rule: 'default' },
    });
    const notAllowed = await cli(['why', 'evil.example.test/x:1'], env);
    t.is(notAllowed.code, 2);
    t.regex(notAllowed.stderr, /registry "evil\.example\.test" is not an allowlisted upstream/);

    const query = async (...args: string[]) => {
      const r = await cli(['audit', 'query', ...args, '--json'], env);
      t.is(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as { kind: string; repository: string; tag?: string; at: string }[];
    };
    for (const image of [`${REG}/demo/unsigned:1.0`, 'demo/unsigned:1.0']) {
      const records = await query('--image', image);
      t.true(
        records.some((r) => r.kind === 'deny'),
        image,
      );
      t.true(
        records.every((r) => r.repository === 'demo/unsigned' && r.tag === '1.0'),
        image,
      );
    }
    t.deepEqual(await query('--image', `${REG}/demo/unsigned:2.0`), [], 'another tag: nothing');
    t.true(
      (await query('--image', `${REG}/demo`)).some((r) => r.repository === 'demo/other'),
      'a prefix without a tag',
    );
    const recent = await query('--image', 'demo/unsigned:1.0', '--kind', 'deny,allow', '--since', '1h');
    t.true(recent.length > 0 && recent.every((r) => ['deny', 'allow'].includes(r.kind)));
    t.deepEqual(await query('--image', 'demo/unsigned:1.0', '--until', '1h'), [], 'nothing older than an hour');
    t.true((await query('--since', new Date(Date.now() - 3_600_000).toISOString())).length > 0, 'RFC 3339 works too');
    const badSince = await cli(['audit', 'query', '--since', 'last tuesday'], env);
    t.is(badSince.code, 2);
    t.regex(
      badSince.stderr,
      /^pullgate audit query: --since: "last tuesday" is neither an age like 30m, 1h, 7d or 1d12h nor an RFC 3339 time[^\n]*\n\nusage: /,
    );

    // pins approve with a name that names no registry, as for pulls
    const approve = await cli(['pins', 'approve', 'demo/other:1.0', digests['demo/other']!], env);
    t.is(approve.code, 0, approve.stderr);
    t.regex((await cli(['pins', 'ls'], env)).stdout, new RegExp(`${REG}/demo/other:1\\.0\\s+${digests['demo/other']}`));
  },
);

test.serial('revocations ls, why on a revoked image; grant revoke ID cancels a break-glass grant', async (t) => {
  const env = { PULLGATE_ADMIN_TOKEN: TOKEN, PULLGATE_ADMIN_URL: proxy.proxy.adminUrl! };
  const other = digests['demo/other']!;
  t.is((await cli(['revoke', other, '--reason', 'CVE-2099-0001'], env)).code, 0);
  const list = await cli(['revocations', 'ls'], env);
  t.is(list.code, 0, list.stderr);
  t.regex(list.stdout, new RegExp(`^DIGEST +AT +BY +REASON\\n(.*\\n)*${other} +\\S+ +admin(:\\S+)? +CVE-2099-0001\\n`));
  t.true(
    (JSON.parse((await cli(['revocations', 'ls', '--json'], env)).stdout) as { digest: string }[]).some(
      (r) => r.digest === other,
    ),
  );
  const why = await cli(['why', `${REG}/demo/other:1.0`], env);
  t.is(why.code, 1);
  t.regex(
    why.stdout,
    new RegExp(`^REVOKED ${REG}/demo/other:1\\.0@${other}\\n {2}revoked by admin\\S* at \\S+: CVE-2099-0001\\n`),
  );
  t.is((await cli(['unrevoke', other], env)).code, 0);

  const unsigned = `${proxy.url}/v2/${REG}/demo/unsigned/manifests/1.0`;
  const issued = await cli(
    ['grant', '--repository', 'demo/unsigned', '--expires-in', '1h', '--reason', 'incident 42', '--json'],
    env,
  );
  t.is(issued.code, 0, issued.stderr);
  const id = (JSON.parse(issued.stdout) as { grant: { id: string } }).grant.id;
  t.is((await fetch(unsigned)).status, 200, 'the grant admits the denied image');
  const served = await cli(['why', 'demo/unsigned:1.0'], env);
  t.is(served.code, 0);
  t.regex(served.stdout, /^DENIED BY POLICY, SERVED UNDER A BREAK-GLASS GRANT .*\n(.*\n)* {2}grant \S+: incident 42\n/);
  const cancelled = await cli(['grant', 'revoke', id], env);
  t.is(cancelled.code, 0, cancelled.stderr);
  t.regex(cancelled.stdout, new RegExp(`^grant ${id} cancelled`));
  t.is((await fetch(unsigned)).status, 403, 'denied again on the next pull');
  const again = await cli(['grant', 'revoke', id], env);
  t.is(again.code, 1);
  t.regex(again.stdout, /no active grant/);
  t.false((await cli(['grants'], env)).stdout.includes(id));
});

/** Starts a command in its own process group and returns it with a way to stop the whole group. */
function startGroup(
  command: string,
  args: string[],
  env: Record<string, string>,
): { child: ChildProcess; output: () => string } {
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  return { child, output: () => output };
}

function stopGroup(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.kill(-child.pid!, 'SIGTERM');
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 10_000);
  return exited.finally(() => clearTimeout(timer));
}

async function answers(port: number, what: string): Promise<void> {
  await waitFor(
    async () =>
      (await fetch(`http://127.0.0.1:${port}/v2/`).catch(() => undefined))?.status === 200 ? true : undefined,
    { timeoutMs: 30_000, intervalMs: 100, what },
  );
}

test.serial('npm start -- --port N, and PULLGATE_LISTEN, choose where the proxy listens', async (t) => {
  const dir = mkdtempSync(join(work, 'listen-'));
  const configPort = await freePort();
  writeFileSync(
    join(dir, 'pullgate.yaml'),
    stringify({ listen: { host: '127.0.0.1', port: configPort }, store: { sqlite: { path: 'state.db' } } }),
  );
  const flagPort = await freePort();
  const npmStart = startGroup(
    'npm',
    ['start', '--', '--config', join(dir, 'pullgate.yaml'), '--port', String(flagPort)],
    {},
  );
  t.teardown(() => stopGroup(npmStart.child));
  await answers(flagPort, `npm start on --port ${flagPort}`);
  t.is(
    await fetch(`http://127.0.0.1:${configPort}/v2/`).then(
      () => 'answered',
      () => 'refused',
    ),
    'refused',
    'not on listen.port',
  );
  await stopGroup(npmStart.child);

  const envPort = await freePort();
  const byEnv = startGroup(process.execPath, [CLI, 'serve', '--config', join(dir, 'pullgate.yaml')], {
    PULLGATE_LISTEN: `127.0.0.1:${envPort}`,
  });
  t.teardown(() => stopGroup(byEnv.child));
  await answers(envPort, `serve on PULLGATE_LISTEN=127.0.0.1:${envPort}`);
  await stopGroup(byEnv.child);

  const malformed = await cli(['serve', '--config', join(dir, 'pullgate.yaml')], { PULLGATE_LISTEN: '5050' });
  t.is(malformed.code, 2);
  t.regex(malformed.stderr, /^pullgate serve: environment: PULLGATE_LISTEN: "5050" is not HOST:PORT/);
});

test.serial('serve refuses to start with a placeholder admin token, naming the key and the fix', async (t) => {
  const dir = mkdtempSync(join(work, 'placeholder-'));
  writeFileSync(
    join(dir, 'pullgate.yaml'),
    stringify({ listen: { host: '127.0.0.1', port: 0 }, store: { sqlite: { path: 'state.db' } } }),
  );
  for (const token of [
    'REPLACE-with-the-output-of-openssl-rand-hex-32',
    'change-me-change-me',
    'placeholder-admin-token',
  ]) {
    const r = await cli(['serve', '--config', join(dir, 'pullgate.yaml')], { PULLGATE_ADMIN_TOKEN: token });
    t.is(r.code, 2, token);
    t.regex(
      r.stderr,
      /^pullgate serve: \S+pullgate\.yaml: admin\.token: the value of environment variable PULLGATE_ADMIN_TOKEN is a placeholder \(it contains "[a-z]+"\), not a secret: .*openssl rand -hex 32\n$/,
      token,
    );
  }
});
