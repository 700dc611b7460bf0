// Client authentication with the real clients: skopeo, podman (4.3, root, vfs) and containerd
// (ctr --user, path-prefix and hosts.toml forms) log in through the token flow, pull what the rules
// allow and get DENIED naming the identity and the repository for the rest; Kubernetes
// service-account tokens work as passwords; decision records name the identity.
import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startContainerd, startRegistry, type Containerd, type Registry } from '../harness/index.ts';
import type { BuiltImage } from '../harness/index.ts';
import type { TestProxy } from './proxy-fixture.ts';
import { authSetup, podman, seedImages, skopeoInspect, startAuthProxy, USERS, type AuthSetup } from './auth-fixture.ts';

const work = mkdtempSync(join(tmpdir(), 'pullgate-clientauth-'));
let registry: Registry;
let setup: AuthSetup;
let proxy: TestProxy;
let image: BuiltImage;
let containerd: Containerd;

test.before(async () => {
  registry = await startRegistry();
  image = await seedImages(work, registry, ['app/one', 'app/team-a/api', 'secret/x'], 'client-auth');
  setup = authSetup();
  proxy = await startAuthProxy(registry, setup.auth);
  containerd = await startContainerd();
});
test.after.always(async () => {
  await containerd?.stop();
  await proxy?.close();
  await registry?.stop();
  setup?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

const digestOf = (raw: string) => `sha256:${createHash('sha256').update(raw).digest('hex')}`;

test.serial(
  'every /v2 endpoint answers 401 with the Bearer challenge naming /token, the service and the scope as addressed',
  async (t) => {
    const base = await request(`${proxy.url}/v2/`);
    await base.body.dump();
    t.is(base.statusCode, 401);
    t.is(base.headers['www-authenticate'], `Bearer realm="${proxy.url}/token",service="pullgate"`);
    for (const [path, scope] of [
      ['/v2/registry.test/app/one/manifests/1', 'repository:registry.test/app/one:pull'],
      [`/v2/registry.test/app/one/blobs/${image.blobs[0]}`, 'repository:registry.test/app/one:pull'],
      ['/v2/registry.test/app/one/tags/list', 'repository:registry.test/app/one:pull'],
      [`/v2/app/one/referrers/${image.digest}?ns=registry.test`, 'repository:app/one:pull'],
    ] as const) {
      const res = await request(`${proxy.url}${path}`);
      const body = (await res.body.json()) as { errors: { code: string }[] };
      t.is(res.statusCode, 401, path);
      t.is(body.errors[0]?.code, 'UNAUTHORIZED');
      const realm = path.includes('ns=') ? `${proxy.url}/token?ns=registry.test` : `${proxy.url}/token`;
      t.is(res.headers['www-authenticate'], `Bearer realm="${realm}",service="pullgate",scope="${scope}"`, path);
    }
    // health and readiness stay open for probes
    t.is((await request(`${proxy.url}/readyz`)).statusCode, 200);
  },
);

test.serial(
  'skopeo: allowed pull, DENIED naming identity and repository, wrong password and no credentials refused',
  async (t) => {
    const ok = await skopeoInspect(`${proxy.host}/registry.test/app/one:1`, `alice:${USERS.alice}`);
    t.is(ok.code, 0, ok.stderr);
    t.is(digestOf(ok.stdout), image.digest);
    const denied = await skopeoInspect(`${proxy.host}/registry.test/secret/x:1`, `alice:${USERS.alice}`);
    t.not(denied.code, 0);
    t.regex(denied.stderr, /denied: identity \\?"alice\\?" may not pull registry\.test\/secret\/x/);
    const wrong = await skopeoInspect(`${proxy.host}/registry.test/app/one:1`, 'alice:not-her-password');
    t.not(wrong.code, 0);
    t.regex(wrong.stderr, /authentication failed/);
    const none = await skopeoInspect(`${proxy.host}/registry.test/app/one:1`);
    t.not(none.code, 0);
    t.regex(none.stderr, /401|unauthorized|authentication required/i);
    // the node identity may pull everything
    t.is((await skopeoInspect(`${proxy.host}/registry.test/secret/x:1`, `node:${USERS.node}`)).code, 0);
    // the decision record of the first pull names the identity
    const records = await proxy.proxy.store.queryAudit({ image: 'registry.test/app/one', kind: 'allow' });
    t.true(
      records.some((r) => (r.detail as { client?: { identity?: string } } | undefined)?.client?.identity === 'alice'),
      JSON.stringify(records.map((r) => r.detail)),
    );
    t.true(proxy.lines('request').some((l) => l.identity === 'alice' && l.route === 'manifest'));
  },
);

test.serial('podman 4.3 (root, vfs): login, pull with the auth file, DENIED for a refused repository', async (t) => {
  const dir = join(work, 'podman');
  const authfile = join(dir, 'auth.json');
  const login = await podman(dir, [
    'login',
    '--tls-verify=false',
    '--authfile',
    authfile,
    '-u',
    'alice',
    '-p',
    USERS.alice,
    proxy.host,
  ]);
  t.is(login.code, 0, login.stderr);
  t.regex(login.stdout, /Login Succeeded/);
  const bad = await podman(dir, [
    'login',
    '--tls-verify=false',
    '--authfile',
    join(dir, 'bad.json'),
    '-u',
    'alice',
    '-p',
    'wrong',
    proxy.host,
  ]);
  t.not(bad.code, 0);
  const pull = await podman(dir, [
    'pull',
    '--tls-verify=false',
    '--authfile',
    authfile,
    `${proxy.host}/registry.test/app/one:1`,
  ]);
  t.is(pull.code, 0, pull.stderr);
  const inspect = await podman(dir, [
    'image',
    'inspect',
    '--format',
    '{{.Digest}}',
    `${proxy.host}/registry.test/app/one:1`,
  ]);
  t.is(inspect.stdout.trim(), image.digest);
  const denied = await podman(dir, [
    'pull',
    '--tls-verify=false',
    '--authfile',
    authfile,
    `${proxy.host}/registry.test/secret/x:1`,
  ]);
  t.not(denied.code, 0);
  t.regex(denied.stderr, /denied: identity \\?"alice\\?" may not pull registry\.test\/secret\/x/);
});

test.serial(
  'containerd (ctr --user, OAuth2 POST): path-prefix and hosts.toml mirror forms; a deny says why in the status line',
  async (t) => {
    const hosts = { registry: proxy.host, server: proxy.url };
    const pulled = await containerd.pull(`${proxy.host}/registry.test/app/one:1`, hosts, {
      user: `alice:${USERS.alice}`,
    });
    t.is(pulled.code, 0, pulled.stderr);
    t.is(await containerd.imageDigest(`${proxy.host}/registry.test/app/one:1`), image.digest);
    const posts = proxy.lines('request').filter((l) => l.route === 'token' && l.method === 'POST' && l.status === 200);
    t.true(posts.length > 0, 'containerd asked for its token with the OAuth2 password grant');
    // the mirror form: image named registry.test/..., ?ns=registry.test on every request and in the realm
    const mirrored = await containerd.pull(
      'registry.test/app/team-a/api:1',
      { registry: 'registry.test', server: proxy.url, mirrors: [proxy.url] },
      { user: `alice:${USERS.alice}` },
    );
    t.is(mirrored.code, 0, mirrored.stderr);
    const denied = await containerd.pull(`${proxy.host}/registry.test/secret/x:1`, hosts, {
      user: `alice:${USERS.alice}`,
    });
    t.not(denied.code, 0);
    t.regex(denied.stderr, /403 Forbidden by pullgate: identity "alice" may not pull registry\.test\/secret\/x/);
    const wrong = await containerd.pull(`${proxy.host}/registry.test/app/one:1`, hosts, { user: 'alice:wrong' });
    t.not(wrong.code, 0);
  },
);

test.serial(
  'Kubernetes service-account tokens as passwords (the kubelet credential provider): verified against the JWKS',
  async (t) => {
    const token = setup.cluster.token({ namespace: 'team-a', serviceAccount: 'builder' });
    const ok = await skopeoInspect(`${proxy.host}/registry.test/app/team-a/api:1`, `serviceaccount:${token}`);
    t.is(ok.code, 0, ok.stderr);
    const other = await skopeoInspect(`${proxy.host}/registry.test/app/one:1`, `serviceaccount:${token}`);
    t.regex(
      other.stderr,
      /identity \\?"system:serviceaccount:team-a:builder\\?" may not pull registry\.test\/app\/one/,
    );
    const es = setup.cluster.token({ namespace: 'team-a', serviceAccount: 'builder', alg: 'ES256' });
    const ctr = await containerd.pull(
      `${proxy.host}/registry.test/app/team-a/api:1`,
      { registry: proxy.host, server: proxy.url },
      { user: `kubelet:${es}` },
    );
    t.is(ctr.code, 0, ctr.stderr);
    for (const [why, bad] of [
      ['expired', setup.cluster.token({ namespace: 'team-a', serviceAccount: 'builder', expiresIn: -120 })],
      [
        'wrong audience',
        setup.cluster.token({
          namespace: 'team-a',
          serviceAccount: 'builder',
          audience: 'https://kubernetes.default.svc',
        }),
      ],
      [
        'not signed by the cluster',
        setup.cluster.token({ namespace: 'team-a', serviceAccount: 'builder', foreignKey: true }),
      ],
    ]) {
      const r = await skopeoInspect(`${proxy.host}/registry.test/app/team-a/api:1`, `serviceaccount:${bad}`);
      t.not(r.code, 0, why);
      t.regex(r.stderr, /authentication failed/, why);
    }
    const refusals = proxy.lines('token refused').map((l) => String(l.why));
    t.true(refusals.some((w) => /expired/.test(w)));
    t.true(refusals.some((w) => /audience/.test(w)));
    t.false(JSON.stringify(proxy.logs).includes(token), 'tokens never reach the log');
    t.false(JSON.stringify(proxy.logs).includes(USERS.alice), 'passwords never reach the log');
  },
);

test.serial('the token endpoint: GET and the OAuth2 POST form; bad grants, services and scopes refused', async (t) => {
  const basic = `Basic ${Buffer.from(`alice:${USERS.alice}`).toString('base64')}`;
  const get = await request(`${proxy.url}/token?service=pullgate&scope=repository:registry.test/app/one:pull`, {
    headers: { authorization: basic },
  });
  const got = (await get.body.json()) as { token: string; expires_in: number };
  t.is(get.statusCode, 200);
  t.is(got.expires_in, 300);
  const form = (fields: Record<string, string>) =>
    request(`${proxy.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    });
  const post = await form({
    grant_type: 'password',
    username: 'alice',
    password: USERS.alice,
    service: 'pullgate',
    scope: 'repository:registry.test/app/one:pull',
    client_id: 'docker',
  });
  const posted = (await post.body.json()) as { access_token: string; token_type: string };
  t.is(post.statusCode, 200);
  t.is(posted.token_type, 'Bearer');
  const use = await request(`${proxy.url}/v2/registry.test/app/one/manifests/1`, {
    headers: { authorization: `Bearer ${posted.access_token}`, accept: image.mediaType },
  });
  t.is(use.statusCode, 200);
  t.is(use.headers['docker-content-digest'], image.digest);
  await use.body.dump();
  const table: [Record<string, string>, number, RegExp][] = [
    [{ grant_type: 'refresh_token', refresh_token: 'x' }, 400, /grant_type/],
    [{ grant_type: 'password', username: 'alice', password: 'wrong' }, 401, /authentication failed/],
    [
      { grant_type: 'password', username: 'alice', password: USERS.alice, service: 'other' },
      400,
      /service must be \\?\"pullgate\\?\"/,
    ],
    [{ grant_type: 'password', username: 'alice', password: USERS.alice, scope: 'nonsense' }, 400, /TYPE:NAME:ACTIONS/],
  ];
  for (const [fields, status, message] of table) {
    const r = await form(fields);
    t.is(r.statusCode, status, JSON.stringify(fields));
    t.regex(await r.body.text(), message);
  }
  const huge = await request(`${proxy.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'x='.padEnd(40_000, 'a'),
  });
  t.is(huge.statusCode, 413);
  await huge.body.dump();
  const none = await request(`${proxy.url}/token?service=pullgate`);
  t.is(none.statusCode, 401);
  t.is(none.headers['www-authenticate'], 'Basic realm="pullgate"');
  await none.body.dump();
});

test.serial(
  'a client without access never gets bytes: cold or cached, manifests, blobs, HEAD and GET, any token trick',
  async (t) => {
    // warm every cache: node pulls secret/x (manifest stored, blobs in the blob cache)
    const warm = await skopeoInspect(`${proxy.host}/registry.test/secret/x:1`, `node:${USERS.node}`);
    t.is(warm.code, 0);
    const nodeToken = await tokenFor('node', USERS.node, 'repository:registry.test/secret/x:pull');
    for (const blob of image.blobs) {
      const r = await request(`${proxy.url}/v2/registry.test/secret/x/blobs/${blob}`, {
        headers: { authorization: `Bearer ${nodeToken}` },
      });
      t.is(r.statusCode, 200);
      await r.body.dump();
    }
    const bobToken = await tokenFor('bob', USERS.bob, 'repository:registry.test/secret/x:pull');
    const aliceOther = await tokenFor('alice', USERS.alice, 'repository:registry.test/app/one:pull');
    const paths = [
      '/v2/registry.test/secret/x/manifests/1',
      `/v2/registry.test/secret/x/manifests/${image.digest}`,
      ...image.blobs.map((b) => `/v2/registry.test/secret/x/blobs/${b}`),
      '/v2/registry.test/secret/x/tags/list',
      `/v2/registry.test/secret/x/referrers/${image.digest}`,
      `/v2/secret/x/manifests/1?ns=registry.test`,
    ];
    const authDenies = async () => {
      const text = await (await request(`${proxy.url}/metrics`)).body.text();
      const m = /^pullgate_denied_pulls_total\{image="registry\.test\/secret\/x",reason="auth"\} (\d+)$/m.exec(text);
      return m ? Number(m[1]) : 0;
    };
    const deniesBefore = await authDenies();
    for (const path of paths) {
      for (const method of ['GET', 'HEAD'] as const) {
        for (const [who, header, status] of [
          ['bob (no rule)', `Bearer ${bobToken}`, 403],
          ['alice with a token for another repository', `Bearer ${aliceOther}`, 401],
          ['no token', undefined, 401],
          ['a Basic header instead of a token', `Basic ${Buffer.from(`node:${USERS.node}`).toString('base64')}`, 401],
          ['a forged token', `Bearer ${forge(nodeToken)}`, 401],
        ] as const) {
          const r = await request(`${proxy.url}${path}`, { method, headers: header ? { authorization: header } : {} });
          const body = Buffer.from(await r.body.arrayBuffer());
          t.is(r.statusCode, status, `${who}: ${method} ${path}`);
          t.is(r.headers['docker-content-digest'], undefined, `${who}: ${method} ${path}`);
          for (const blob of image.blobs) t.false(body.includes(Buffer.from(blob.slice(7))), 'no content');
          if (method === 'GET') t.regex(body.toString(), /"code":"(DENIED|UNAUTHORIZED)"/, `${who}: ${method} ${path}`);
        }
      }
    }
    const denied = proxy.lines('request').filter((l) => l.status === 403 && l.identity === 'bob');
    t.true(denied.length > 0);
    // bob's refused manifest pulls (3 paths, HEAD and GET) count; 401s, blobs, tags and referrers do not
    t.is((await authDenies()) - deniesBefore, 6);
  },
);

test.serial('auth off is the loopback default: no challenge, no /token', async (t) => {
  const { startTestProxy, ALLOW_ALL } = await import('./proxy-fixture.ts');
  const open = await startTestProxy({
    policy: ALLOW_ALL,
    config: { upstreams: [{ host: 'registry.test', url: registry.url, insecure: true }] },
  });
  t.teardown(() => open.close());
  const r = await request(`${open.url}/v2/`);
  t.is(r.statusCode, 200);
  await r.body.dump();
  const tok = await request(`${open.url}/token`);
  t.is(tok.statusCode, 404);
  await tok.body.dump();
  t.is((await skopeoInspect(`${open.host}/registry.test/secret/x:1`)).code, 0);
});

async function tokenFor(user: string, password: string, scope: string): Promise<string> {
  const r = await request(`${proxy.url}/token?service=pullgate&scope=${encodeURIComponent(scope)}`, {
    headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` },
  });
  if (r.statusCode !== 200) throw new Error(`token for ${user}: ${r.statusCode} ${await r.body.text()}`);
  return ((await r.body.json()) as { token: string }).token;
}

/** The node's token with bob's name: the signature no longer matches. */
function forge(token: string): string {
  const [h, p, s] = token.split('.') as [string, string, string];
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
  return `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: 'bob' })).toString('base64url')}.${s}`;
}

test.serial(
  'metrics.listener: admin serves /metrics on the admin listener without a token, and not on the registry port',
  async (t) => {
    const { startTestProxy, ALLOW_ALL } = await import('./proxy-fixture.ts');
    const p = await startTestProxy({
      policy: ALLOW_ALL,
      config: {
        auth: setup.auth,
        metrics: { listener: 'admin' },
        admin: { host: '127.0.0.1', port: 0 },
        upstreams: [{ host: 'registry.test', url: registry.url, insecure: true }],
      },
    });
    t.teardown(() => p.close());
    t.truthy(p.proxy.adminUrl, 'the admin listener starts for /metrics even without an admin token');
    const onRegistry = await request(`${p.url}/metrics`);
    t.is(onRegistry.statusCode, 404);
    await onRegistry.body.dump();
    t.is((await skopeoInspect(`${p.host}/registry.test/secret/x:1`, `bob:${USERS.bob}`)).code !== 0, true);
    const metrics = await request(`${p.proxy.adminUrl}/metrics`);
    const text = await metrics.body.text();
    t.is(metrics.statusCode, 200);
    t.regex(text, /pullgate_client_auth_total\{outcome="denied"\} [1-9]/);
    t.regex(text, /pullgate_client_auth_total\{outcome="issued"\} [1-9]/);
    const api = await request(`${p.proxy.adminUrl}/api/v1/pins`);
    t.is(api.statusCode, 401, 'the admin API still needs its token');
    await api.body.dump();
  },
);
