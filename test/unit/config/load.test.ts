import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../../src/config/load.ts';

const dirs: string[] = [];
test.after.always(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function write(yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'pullgate-config-'));
  dirs.push(dir);
  const file = join(dir, 'pullgate.yaml');
  writeFileSync(file, yaml);
  return file;
}

function fails(
  t: import('ava').ExecutionContext,
  yaml: string,
  key: string,
  problem: RegExp,
  env: NodeJS.ProcessEnv = {},
) {
  const err = t.throws(() => loadConfig(write(yaml), env), { instanceOf: ConfigError }) as ConfigError;
  t.is(err.key, key, err.message);
  t.regex(err.message, problem);
}

test('embedded defaults: loopback listener, public registries allowlisted, SQLite state', (t) => {
  const c = loadConfig(undefined, {});
  t.is(c.listen.host, '127.0.0.1');
  t.is(c.listen.port, 5050);
  t.true(
    c.upstreams.some(
      (u) =>
        u.host === 'docker.io' && u.url === 'https://registry-1.docker.io' && u.aliases.includes('index.docker.io'),
    ),
  );
  t.is(c.defaultUpstream, 'docker.io');
  t.is(c.store.kind, 'sqlite');
  t.is(c.manifestMaxBytes, 4 * 1024 * 1024);
  t.is(c.policyFile, undefined);
});

test('a full file is read, paths are relative to the file, secrets come from the environment', (t) => {
  const file = write(`
listen: {host: "::1", port: 0}
upstreams:
  - host: registry.test:5000
    url: http://127.0.0.1:5000
    insecure: true
    usernameEnv: REG_USER
    passwordEnv: REG_PASS
    timeouts: {connectMs: 1000}
policy: {file: policy.yaml}
store: {sqlite: {path: state/db.sqlite}}
`);
  const c = loadConfig(file, { REG_USER: 'u', REG_PASS: 'p' });
  const u = c.upstreams[0]!;
  t.is(u.username, 'u');
  t.is(u.password, 'p');
  t.is(u.timeouts.connectMs, 1000);
  t.is(u.timeouts.headersMs, 30_000);
  t.true(c.policyFile!.endsWith('/policy.yaml') && c.policyFile!.startsWith('/'));
  t.deepEqual(c.store, {
    kind: 'sqlite',
    path: file.replace('pullgate.yaml', 'state/db.sqlite'),
    busyTimeoutMs: 1000,
    probeIntervalMs: 5000,
  });
  t.is(c.defaultUpstream, undefined);
});

test('PostgreSQL store bounds: documented defaults, overridable, the lock timeout kept under the statement timeout', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pullgate-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'pullgate.yaml');
  writeFileSync(file, 'store: {postgres: {url: "postgres://h/db"}}\n');
  t.deepEqual(loadConfig(file, {}).store, {
    kind: 'postgres',
    url: 'postgres://h/db',
    schema: 'pullgate',
    probeIntervalMs: 5000,
    statementTimeoutMs: 5000,
    lockTimeoutMs: 2000,
    connectTimeoutMs: 5000,
    poolSize: 10,
  });
  writeFileSync(
    file,
    'store: {probeIntervalMs: 250, postgres: {url: "postgres://h/db", statementTimeoutMs: 1500, connectTimeoutMs: 800, poolSize: 3}}\n',
  );
  t.like(loadConfig(file, {}).store, {
    probeIntervalMs: 250,
    statementTimeoutMs: 1500,
    lockTimeoutMs: 1500,
    connectTimeoutMs: 800,
    poolSize: 3,
  });
});

test('errors name the key and the problem', (t) => {
  fails(t, 'listen: {port: 99999}', 'listen.port', /between 0 and 65535/);
  fails(t, 'lisen: {}', 'lisen', /unknown key/);
  fails(t, 'upstreams: [{host: a.test, url: "http://a.test"}]', 'upstreams[0].url', /https/);
  fails(
    t,
    'upstreams: [{host: a.test, passwordEnv: NOPE, username: x}]',
    'upstreams[0].passwordEnv',
    /NOPE is not set/,
  );
  fails(t, 'upstreams: [{host: a.test, username: x}]', 'upstreams[0].password', /go together/);
  fails(t, 'upstreams: [{host: a.test}, {host: b.test, aliases: [a.test]}]', 'upstreams[1]', /already/);
  fails(t, 'upstreams: [{host: a.test}]\ndefaultUpstream: b.test', 'defaultUpstream', /not the host/);
  fails(t, 'upstreams: []', 'upstreams', /at least one/);
  fails(t, 'store: {postgres: {schema: x}}', 'store.postgres.url', /PostgreSQL URL/);
  fails(
    t,
    'store: {postgres: {url: "postgres://h/db", statementTimeoutMs: 1000, lockTimeoutMs: 3000}}',
    'store.postgres.lockTimeoutMs',
    /must not exceed statementTimeoutMs \(1000\)/,
  );
  fails(t, 'store: {postgres: {url: "postgres://h/db", poolSize: 0}}', 'store.postgres.poolSize', /between 1 and 1000/);
  fails(t, 'store: {sqlite: {busyTimeoutMs: 60000}}', 'store.sqlite.busyTimeoutMs', /between 0 and 10000/);
  fails(t, 'listen: {tls: {cert: a.pem}}', 'listen.tls.key', /both/);
  fails(t, 'admin: {token: short}', 'admin.token', /16 characters/);
  fails(t, 'log: {level: loud}', 'log.level', /one of/);
  fails(t, 'cache: {blobs: {directWrites: sometimes}}', 'cache.blobs.directWrites', /one of auto, always, never/);
  fails(t, ': : :', '', /YAML/);
});

test('cache.blobs.directWrites: auto unless set', (t) => {
  t.is(loadConfig(undefined, {}).cache.blobs.directWrites, 'auto');
  t.is(loadConfig(write('cache: {blobs: {directWrites: never}}\n'), {}).cache.blobs.directWrites, 'never');
  t.is(loadConfig(write('cache: {blobs: {directWrites: always}}\n'), {}).cache.blobs.directWrites, 'always');
});

test('PULLGATE_LISTEN overrides listen.host and listen.port; a malformed one names the variable', (t) => {
  const file = write('listen: {host: 127.0.0.1, port: 6000}\n');
  const cases: [string, string, number][] = [
    ['0.0.0.0:5050', '0.0.0.0', 5050],
    ['[::]:0', '::', 0],
    ['localhost:8080', 'localhost', 8080],
  ];
  for (const [value, host, port] of cases) {
    const c = loadConfig(file, { PULLGATE_LISTEN: value });
    t.deepEqual([c.listen.host, c.listen.port], [host, port], value);
  }
  t.deepEqual([loadConfig(file, { PULLGATE_LISTEN: '' }).listen.port], [6000], 'empty means unset');
  t.is(
    loadConfig(undefined, { PULLGATE_LISTEN: '127.0.0.1:7070' }).listen.port,
    7070,
    'with the embedded defaults too',
  );
  for (const bad of ['5050', ':5050', '0.0.0.0:', '0.0.0.0:99999', '::1:5050', 'a b:1']) {
    const err = t.throws(() => loadConfig(file, { PULLGATE_LISTEN: bad }), { instanceOf: ConfigError }) as ConfigError;
    t.is(err.key, 'PULLGATE_LISTEN', bad);
    t.regex(err.message, /is not HOST:PORT \(like 0\.0\.0\.0:5050/);
  }
});

test('placeholder secrets: refused with refusePlaceholders (serve), naming the key, the variable and the fix', (t) => {
  const refused = (yaml: string, env: NodeJS.ProcessEnv, key: string, message: RegExp) => {
    const file = write(yaml);
    t.notThrows(() => loadConfig(file, env), 'accepted without the option (check, tests of the shipped files)');
    const err = t.throws(() => loadConfig(file, env, { refusePlaceholders: true }), {
      instanceOf: ConfigError,
    }) as ConfigError;
    t.is(err.key, key, err.message);
    t.regex(err.message, message);
    t.regex(err.message, /openssl rand -hex 32/);
  };
  refused(
    'admin: {token: change-me-change-me-0}',
    {},
    'admin.token',
    /the value is a placeholder \(it contains "changeme"\), not a secret/,
  );
  refused(
    '{}',
    { PULLGATE_ADMIN_TOKEN: 'REPLACE-with-the-output-of-openssl-rand-hex-32' },
    'admin.token',
    /environment variable PULLGATE_ADMIN_TOKEN is a placeholder \(it contains "replace"\).*PULLGATE_ADMIN_TOKEN \(in Kubernetes: the pullgate-secrets Secret\)/,
  );
  refused(
    'admin: {tokenEnv: ADMIN}',
    { ADMIN: 'placeholder-0123456789' },
    'admin.token',
    /environment variable ADMIN is a placeholder/,
  );
  refused(
    'upstreams: [{host: a.test, username: bot, passwordEnv: PW}]',
    { PW: 'changeme-changeme' },
    'upstreams[0].password',
    /PW is a placeholder/,
  );
  refused(
    'store: {postgres: {}}',
    { PULLGATE_POSTGRES_URL: 'REPLACE-postgres://u:p@db:5432/x' },
    'store.postgres.url',
    /PULLGATE_POSTGRES_URL is a placeholder/,
  );
  const real = write('admin: {token: f3b1c9e0a7d2486b9c1e5f0a3d7b2c8e}\n');
  t.is(loadConfig(real, {}, { refusePlaceholders: true }).admin.token, 'f3b1c9e0a7d2486b9c1e5f0a3d7b2c8e');
});

test('tag list and upstream fetch budgets: documented defaults, overrides, out-of-range values named', (t) => {
  t.like(loadConfig(undefined, {}).budgets, {
    tagListMaxTags: 100_000,
    upstreamRequests: 128,
    upstreamBlobRequests: 64,
    upstreamQueue: 512,
  });
  const c = loadConfig(
    write('limits:\n  tagListMaxTags: 10\n  upstreamRequests: 1\n  upstreamBlobRequests: 2\n  upstreamQueue: 0\n'),
    {},
  ).budgets;
  t.like(c, { tagListMaxTags: 10, upstreamRequests: 1, upstreamBlobRequests: 2, upstreamQueue: 0 });
  fails(t, 'limits:\n  tagListMaxTags: 0\n', 'limits.tagListMaxTags', /between 1 and/);
  fails(t, 'limits:\n  upstreamRequests: 0\n', 'limits.upstreamRequests', /between 1 and/);
  fails(t, 'limits:\n  upstreamBlobRequests: -1\n', 'limits.upstreamBlobRequests', /between 1 and/);
  fails(t, 'limits:\n  upstreamQueue: -1\n', 'limits.upstreamQueue', /between 0 and/);
});

test('budgets: documented defaults, overrides in sizes and numbers, unknown and out-of-range keys named', (t) => {
  const d = loadConfig(undefined, {}).budgets;
  t.deepEqual(d.evidence, {
    manifests: 64,
    layers: 128,
    blobBytes: 1024 * 1024,
    referrers: 1024,
    signaturesPerEnvelope: 16,
    bytes: 8 * 1024 * 1024,
    verifyMs: 10_000,
    concurrency: 8,
  });
  t.like(d, { concurrentDecisions: 4, decisionQueue: 64, manifestMaxLayers: 1000, indexMaxManifests: 1000 });
  const c = loadConfig(
    write(
      'limits:\n  concurrentDecisions: 2\n  manifestMaxLayers: 50\n  evidence:\n    bytes: 2MiB\n    signaturesPerEnvelope: 4\n',
    ),
    {},
  ).budgets;
  t.like(c, { concurrentDecisions: 2, manifestMaxLayers: 50 });
  t.like(c.evidence, { bytes: 2 * 1024 * 1024, signaturesPerEnvelope: 4, layers: 128 });
  fails(t, 'limits:\n  evidence:\n    signatures: 4\n', 'limits.evidence.signatures', /unknown key/);
  fails(
    t,
    'limits:\n  evidence:\n    signaturesPerEnvelope: 0\n',
    'limits.evidence.signaturesPerEnvelope',
    /between 1 and 1024/,
  );
});
