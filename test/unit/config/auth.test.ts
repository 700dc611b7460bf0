import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ConfigError, loadConfig } from '../../../src/config/load.ts';

const dir = mkdtempSync(join(tmpdir(), 'pullgate-authconfig-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function write(yaml: string): string {
  const file = join(dir, `c${n++}.yaml`);
  writeFileSync(file, yaml);
  return file;
}
const UP = 'upstreams: [{host: ghcr.io}]\n';

test('auth is off by default, and /metrics on the registry listener', (t) => {
  const c = loadConfig(undefined, {});
  t.is(c.auth, undefined);
  t.deepEqual(c.metrics, { listener: 'registry' });
});

test('a full auth section: paths relative to the file, defaults for service and token lifetime', (t) => {
  const c = loadConfig(
    write(`${UP}
metrics: {listener: admin}
auth:
  enabled: true
  realm: https://pullgate.internal:5050/token
  token: {keyFile: keys/token.pem}
  htpasswd: {file: htpasswd}
  groups: {nodes: [node-a, node-b]}
  kubernetes: {issuer: https://kubernetes.default.svc.cluster.local, audiences: [pullgate], jwksFile: jwks.json}
  rules:
    - identities: [group:nodes, namespace:team-a, "serviceaccount:ci/*", alice]
      repositories: ["ghcr.io/acme/**"]
`),
    {},
  );
  t.deepEqual(c.auth, {
    service: 'pullgate',
    realm: 'https://pullgate.internal:5050/token',
    token: { keyFile: join(dir, 'keys/token.pem'), ttlSeconds: 300 },
    htpasswd: { file: join(dir, 'htpasswd') },
    groups: { nodes: ['node-a', 'node-b'] },
    kubernetes: {
      issuer: 'https://kubernetes.default.svc.cluster.local',
      audiences: ['pullgate'],
      jwksFile: join(dir, 'jwks.json'),
    },
    rules: [
      {
        identities: ['group:nodes', 'namespace:team-a', 'serviceaccount:ci/*', 'alice'],
        repositories: ['ghcr.io/acme/**'],
      },
    ],
  });
  t.is(c.metrics.listener, 'admin');
});

test('auth mistakes stop the proxy at start, naming the key', (t) => {
  const table: [string, string, RegExp][] = [
    ['auth: {htpasswd: {file: h}}', 'auth.enabled', /auth is off: set enabled: true/],
    ['auth: {enabled: true}', 'auth.enabled', /no client can authenticate/],
    [
      'auth: {enabled: true, htpasswd: {file: h}, rules: [{identities: ["group:"], repositories: ["a/b"]}]}',
      'auth.rules[0].identities[0]',
      /nothing after/,
    ],
    [
      'auth: {enabled: true, htpasswd: {file: h}, rules: [{identities: [alice], repositories: ["ghcr.io/a:1"]}]}',
      'auth.rules[0].repositories[0]',
      /tag part/,
    ],
    [
      'auth: {enabled: true, htpasswd: {file: h}, rules: [{identities: [], repositories: ["a/b"]}]}',
      'auth.rules[0].identities',
      /at least one/,
    ],
    [
      'auth: {enabled: true, htpasswd: {file: h}, rules: [{identities: [a], repositories: ["a/b"], push: true}]}',
      'auth.rules[0].push',
      /unknown key/,
    ],
    [
      'auth: {enabled: true, htpasswd: {file: h}, token: {ttlSeconds: 5}}',
      'auth.token.ttlSeconds',
      /between 60 and 3600/,
    ],
    ['auth: {enabled: true, htpasswd: {file: h}, realm: "ftp://x/token"}', 'auth.realm', /absolute http/],
    [
      'auth: {enabled: true, kubernetes: {issuer: x, audiences: [], jwksFile: j}}',
      'auth.kubernetes.audiences',
      /at least one audience/,
    ],
    ['auth: {enabled: true, kubernetes: {audiences: [p], jwksFile: j}}', 'auth.kubernetes.issuer', /required/],
    [
      'auth: {enabled: true, htpasswd: {file: h}}\nstore: {postgres: {url: "postgres://x@y/z"}}',
      'auth.token',
      /keyFile is required with the PostgreSQL store/,
    ],
    [
      'upstreams: [{host: ghcr.io, passThrough: {}}]',
      'upstreams',
      /passThrough on ghcr.io needs client authentication/,
    ],
    [
      'upstreams: [{host: ghcr.io, passThrough: {cacheSeconds: 9999}}]\nauth: {enabled: true}',
      'upstreams[0].passThrough.cacheSeconds',
      /between 0 and 600/,
    ],
    ['metrics: {listener: both}', 'metrics.listener', /one of registry, admin/],
  ];
  for (const [yaml, key, problem] of table) {
    const err = t.throws(() => loadConfig(write(`${yaml.startsWith('upstreams') ? '' : UP}${yaml}\n`), {}), {
      instanceOf: ConfigError,
    }) as ConfigError;
    t.is(err.key, key, `${yaml}: ${err.message}`);
    t.regex(err.message, problem, yaml);
  }
});

test('pass-through alone is a way to authenticate', (t) => {
  const c = loadConfig(write('upstreams: [{host: ghcr.io, passThrough: {}}]\nauth: {enabled: true}\n'), {});
  t.deepEqual(c.upstreams[0]?.passThrough, { cacheSeconds: 30 });
  t.truthy(c.auth);
});

test('config/pullgate.example.yaml: the documented auth, metrics and passThrough keys are the real ones', (t) => {
  const example = new URL('../../../config/pullgate.example.yaml', import.meta.url).pathname;
  const text = readFileSync(example, 'utf8');
  t.is(loadConfig(example, {}).auth, undefined, 'off as documented');
  // uncomment the auth block and the passThrough lines, as a reader would
  const start = text.indexOf('\nauth:\n');
  const end = text.indexOf('\nadmin:', start);
  const authBlock = text
    .slice(start, end)
    .replace('enabled: false', 'enabled: true')
    .replace(/^ {2}# ?/gm, '  ');
  const uncommented = (text.slice(0, start) + authBlock + text.slice(end)).replace(
    /^ {4}# (passThrough:|  cacheSeconds:)/gm,
    '    $1',
  );
  const file = write(
    uncommented.replace('file: policy.example.yaml', `file: ${join(dirname(example), 'policy.example.yaml')}`),
  );
  const c = loadConfig(file, {});
  t.truthy(c.auth?.kubernetes);
  t.is(c.auth?.rules.length, 2);
  t.deepEqual(c.auth?.groups, { nodes: ['node'], ci: ['ci'] });
  t.deepEqual(c.upstreams[0]?.passThrough, { cacheSeconds: 30 });
  t.is(c.metrics.listener, 'registry');
});

test('config/pullgate.example.yaml: the documented admin.tokens keys are the real ones', (t) => {
  const example = new URL('../../../config/pullgate.example.yaml', import.meta.url).pathname;
  const text = readFileSync(example, 'utf8');
  const start = text.indexOf('  # tokens:');
  const end = text.indexOf('\nmetrics:', start);
  t.true(start > 0 && end > start);
  const block = text.slice(start, end).replace(/^ {2}# /gm, '  ');
  const file = write(
    (text.slice(0, start) + block + text.slice(end)).replace(
      'file: policy.example.yaml',
      `file: ${join(dirname(example), 'policy.example.yaml')}`,
    ),
  );
  const c = loadConfig(file, { OPS_TOKEN: 'ops-token-0123456789abcd', AUDITOR_TOKEN: 'auditor-token-0123456789' });
  t.deepEqual(c.admin.identities, [
    { name: 'ops', token: 'ops-token-0123456789abcd', readOnly: false },
    { name: 'auditor', token: 'auditor-token-0123456789', readOnly: true },
  ]);
});
