// Client authentication as shipped: the Kubernetes deployment turns it on with its files from the
// pullgate-auth Secret; the kubelet credential provider (a real run of the shipped script) hands
// a service-account token to a real proxy, which verifies it; the node credential fragment for
// containerd names the proxy and a node identity.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { request } from 'undici';
import { runCommand, startRegistry } from '../harness/index.ts';
import { authSetup, seedImages, skopeoInspect, startAuthProxy } from '../integration/auth-fixture.ts';
import { type Doc, DEPLOY, K8S, kubernetesConfig, manifestsIn, parseFile } from './deploy-files.ts';
import { SHIPPED_PROXY } from './node-fixture.ts';

const PROVIDER = join(DEPLOY, 'kubelet/pullgate-credential-provider.sh');
const deployment = manifestsIn(K8S).find((m) => m.doc.kind === 'Deployment')!.doc;
const podSpec: Doc = deployment.spec.template.spec;
const container: Doc = podSpec.containers[0];

function volumeFor(path: string): Doc | undefined {
  const mount = (container.volumeMounts as Doc[])
    .filter((m) => path.startsWith(`${m.mountPath}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  return mount && (podSpec.volumes as Doc[]).find((v) => v.name === mount.name);
}

function runProvider(stdin: string, env: Record<string, string> = {}) {
  return runCommand('sh', ['-c', `printf '%s' "$REQ" | ${PROVIDER}`], {
    timeoutMs: 10_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', REQ: stdin, ...env },
  });
}

const request1 = (token: string) =>
  JSON.stringify({
    kind: 'CredentialProviderRequest',
    apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
    image: `${SHIPPED_PROXY}/ghcr.io/acme/team-a/api:1.0`,
    serviceAccountToken: token,
    serviceAccountAnnotations: {},
  });

test('the shipped deployment turns client authentication on, with its files from the pullgate-auth Secret', (t) => {
  const { config } = kubernetesConfig(t);
  const auth = config.auth!;
  t.truthy(auth, 'auth is on in the cluster');
  t.is(new URL(auth.realm!).host, SHIPPED_PROXY, 'the realm is the name nodes use');
  t.is(new URL(auth.realm!).protocol, 'https:');
  t.truthy(auth.token.keyFile, 'both replicas sign with one key');
  for (const file of [auth.token.keyFile!, auth.htpasswd!.file, auth.kubernetes!.jwksFile]) {
    const volume = volumeFor(file);
    t.is(volume?.secret?.secretName, 'pullgate-auth', file);
  }
  t.true(auth.rules.some((r) => r.identities.includes('group:nodes') && r.repositories.includes('**')));
  t.true((auth.groups.nodes ?? []).length > 0);
  t.true(auth.rules.some((r) => r.identities.some((i) => i.startsWith('namespace:'))));
});

test('the kubelet credential provider: the token as the password for the proxy; no token, no credentials', async (t) => {
  const token = 'eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';
  const r = await runProvider(request1(token));
  t.is(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout);
  t.deepEqual(res, {
    kind: 'CredentialProviderResponse',
    apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
    cacheKeyType: 'Registry',
    cacheDuration: '0s',
    auth: { [SHIPPED_PROXY]: { username: 'serviceaccount', password: token } },
  });
  // pretty-printed input works too
  const pretty = await runProvider(JSON.stringify(JSON.parse(request1(token)), null, 2));
  t.is(JSON.parse(pretty.stdout).auth[SHIPPED_PROXY].password, token);
  const none = JSON.parse((await runProvider(request1(''))).stdout);
  t.deepEqual(none.auth, {});
  // nothing but token characters reaches the response
  const hostile = JSON.parse((await runProvider(request1('abc"},"evil":{"x":"y'))).stdout);
  t.deepEqual(Object.keys(hostile.auth), []);
  t.not((await runProvider(request1(token), { PULLGATE_REGISTRY: 'x","y' })).code, 0);
  const other = JSON.parse((await runProvider(request1(token), { PULLGATE_REGISTRY: 'registry.corp:443' })).stdout);
  t.deepEqual(Object.keys(other.auth), ['registry.corp:443']);
});

test('the kubelet configuration agrees with the proxy: provider name, images, audience, and the RBAC for that audience', (t) => {
  const { config } = kubernetesConfig(t);
  const [cp] = parseFile('kubelet/credential-provider-config.yaml') as Doc[];
  t.is(cp!.apiVersion, 'kubelet.config.k8s.io/v1');
  t.is(cp!.kind, 'CredentialProviderConfig');
  const [p] = cp!.providers as Doc[];
  t.is(p!.name, 'pullgate-credential-provider', 'the script installed without .sh');
  t.is(p!.apiVersion, 'credentialprovider.kubelet.k8s.io/v1');
  t.deepEqual(p!.matchImages, [SHIPPED_PROXY]);
  t.truthy(p!.defaultCacheDuration);
  t.deepEqual(p!.env, [{ name: 'PULLGATE_REGISTRY', value: SHIPPED_PROXY }]);
  t.true(config.auth!.kubernetes!.audiences.includes(p!.tokenAttributes.serviceAccountTokenAudience));
  t.true(p!.tokenAttributes.requireServiceAccount);
  t.true(['Token', 'ServiceAccount'].includes(p!.tokenAttributes.cacheType));
  const rbac = parseFile('kubelet/rbac.yaml') as Doc[];
  const role = rbac.find((d) => d.kind === 'ClusterRole')!;
  const binding = rbac.find((d) => d.kind === 'ClusterRoleBinding')!;
  t.deepEqual(role.rules, [
    {
      apiGroups: [''],
      resources: [p!.tokenAttributes.serviceAccountTokenAudience],
      verbs: ['request-serviceaccounts-token-audience'],
    },
  ]);
  t.is(binding.roleRef.name, role.metadata.name);
  t.deepEqual(binding.subjects, [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'system:nodes' }]);
});

test("containerd's node credential names the proxy and a user of the nodes group, as a placeholder", (t) => {
  const { config } = kubernetesConfig(t);
  const doc = parseToml(readFileSync(join(DEPLOY, 'containerd/conf.d/pullgate-auth.toml'), 'utf8')) as Doc;
  const configs = doc.plugins['io.containerd.grpc.v1.cri'].registry.configs;
  t.deepEqual(Object.keys(configs), [SHIPPED_PROXY]);
  const { username, password } = configs[SHIPPED_PROXY].auth;
  t.true(config.auth!.groups.nodes!.includes(username));
  t.true(password.startsWith('REPLACE'));
});

test('end to end: the provider script turns a real service-account token into a pull through a real proxy', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'pullgate-kubelet-'));
  const registry = await startRegistry();
  const setup = authSetup();
  t.teardown(async () => {
    await registry.stop();
    setup.cleanup();
    rmSync(work, { recursive: true, force: true });
  });
  await seedImages(work, registry, ['app/team-a/api', 'app/other'], 'kubelet');
  const proxy = await startAuthProxy(registry, setup.auth);
  t.teardown(() => proxy.close());
  const token = setup.cluster.token({ namespace: 'team-a', serviceAccount: 'api' });
  const out = JSON.parse((await runProvider(request1(token), { PULLGATE_REGISTRY: proxy.host })).stdout);
  const { username, password } = out.auth[proxy.host];
  const ok = await skopeoInspect(`${proxy.host}/registry.test/app/team-a/api:1`, `${username}:${password}`);
  t.is(ok.code, 0, ok.stderr);
  const refused = await skopeoInspect(`${proxy.host}/registry.test/app/other:1`, `${username}:${password}`);
  t.regex(refused.stderr, /system:serviceaccount:team-a:api\\?" may not pull registry\.test\/app\/other/);
  const health = await request(`${proxy.url}/healthz`);
  t.is(health.statusCode, 200);
  await health.body.dump();
});
