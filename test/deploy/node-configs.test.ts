// Node configurations (containerd, CRI-O, Docker) parsed as the runtimes parse them: they name
// only the proxy, never a registry to fall back to, and the request forms they produce are ones
// the proxy routes to the intended upstream under the shipped proxy configurations.
import test from 'ava';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import { routeRequest } from '../../src/proxy/route.ts';
import { Upstreams } from '../../src/oci/upstreams.ts';
import { type Doc, DEPLOY, filesUnder, kubernetesConfig, parseDeployFiles, parseFile } from './deploy-files.ts';
import { SHIPPED_CA, SHIPPED_PROXY } from './node-fixture.ts';

const PROXY_URL = `https://${SHIPPED_PROXY}`;
const UPSTREAM_FOLDERS = ['docker.io', 'ghcr.io', 'quay.io', 'registry.k8s.io'];

/** The proxy configurations nodes talk to: the Kubernetes ConfigMap's and the Docker image's. */
function shippedProxyConfigs(t: { teardown(fn: () => void): void }) {
  return { kubernetes: kubernetesConfig(t).config, docker: loadConfig(join(DEPLOY, 'docker/pullgate.yaml'), {}) };
}

test('every YAML, TOML and JSON file under deploy/ parses, and no other format is shipped unchecked', (t) => {
  const parsed = parseDeployFiles();
  t.true(parsed.length >= 15);
  for (const { file, docs } of parsed)
    t.true(docs.length > 0 && docs.every((d) => d !== null && typeof d === 'object'), file);
});

test('containerd: every hosts.toml makes the proxy the server and the only host, with pull+resolve and the proxy CA', (t) => {
  const folders = filesUnder(join(DEPLOY, 'containerd/certs.d')).map((f) => f.split('/')[0]!);
  t.deepEqual(folders.sort(), [...UPSTREAM_FOLDERS, '_default', 'pullgate.internal_5050_'].sort());
  for (const folder of folders) {
    const toml = parseFile(`containerd/certs.d/${folder}/hosts.toml`)[0]!;
    const server: string = toml.server;
    t.true(server.startsWith(PROXY_URL), `${folder}: server is the proxy`);
    // containerd 1.6 ignores a file without [host] (and pulls from the registry): one, the proxy itself
    t.deepEqual(Object.keys(toml.host), [server], `${folder}: the only host is the server`);
    for (const entry of [toml, toml.host[server]] as Doc[]) {
      t.deepEqual(entry.capabilities, ['pull', 'resolve'], folder);
      t.is(entry.ca, SHIPPED_CA, folder);
      t.is(entry.skip_verify, undefined, `${folder}: TLS is verified`);
    }
    if (UPSTREAM_FOLDERS.includes(folder)) {
      t.is(server, `${PROXY_URL}/v2/${folder}`, `${folder}: the path-prefix API root`);
      t.true(toml.override_path && toml.host[server].override_path, `${folder}: override_path on server and host`);
    } else {
      t.is(server, PROXY_URL, folder);
      t.is(toml.override_path, undefined, folder);
    }
  }
  t.is(`${SHIPPED_PROXY.replace(':', '_')}_`, 'pullgate.internal_5050_', "containerd's folder name for the proxy host");
});

test('CRI-O: every registry is located at the proxy, with no mirror or direct location', (t) => {
  const conf = parseFile('cri-o/registries.conf')[0]!;
  t.deepEqual(conf['unqualified-search-registries'], ['docker.io']);
  const registries = conf.registry as Doc[];
  t.deepEqual(registries.map((r) => r.prefix).sort(), [...UPSTREAM_FOLDERS].sort());
  for (const r of registries) {
    t.is(r.location, `${SHIPPED_PROXY}/${r.prefix}`, r.prefix);
    t.is(r.mirror, undefined, `${r.prefix}: no mirror, so nothing is tried besides the location`);
    t.not(r.insecure, true, r.prefix);
    t.not(r.blocked, true, r.prefix);
  }
});

test('Docker: daemon.json mirrors Docker Hub to the proxy', (t) => {
  const daemon = parseFile('docker/daemon.json')[0]!;
  t.deepEqual(daemon['registry-mirrors'], [PROXY_URL]);
  t.deepEqual(Object.keys(daemon), ['registry-mirrors'], 'no insecure-registries or other settings');
});

test('the proxy configurations route every request form the node configurations produce', (t) => {
  const forms: [string, string | undefined, string, string][] = [
    // containerd, per-registry hosts.toml: override_path root plus ns
    ['/v2/ghcr.io/acme/app/manifests/1.0', 'ghcr.io', 'ghcr.io', 'acme/app'],
    ['/v2/docker.io/library/nginx/manifests/1.27', 'docker.io', 'docker.io', 'library/nginx'],
    // containerd, _default: no registry in the path, ns names it
    ['/v2/kubernetes/pause/manifests/3.10', 'registry.k8s.io', 'registry.k8s.io', 'kubernetes/pause'],
    // names through the proxy (containerd's pullgate.internal_5050_, CRI-O locations, docker pull)
    ['/v2/quay.io/org/img/blobs/sha256:' + 'a'.repeat(64), undefined, 'quay.io', 'org/img'],
    // Docker's registry-mirrors: Docker Hub names without a registry
    ['/v2/library/nginx/manifests/latest', undefined, 'docker.io', 'library/nginx'],
  ];
  for (const [name, config] of Object.entries(shippedProxyConfigs(t))) {
    const upstreams = new Upstreams(config);
    for (const [path, ns, upstream, repository] of forms) {
      const target = routeRequest(path, ns, upstreams);
      t.is(target.upstream, upstream, `${name}: ${path}?ns=${ns}`);
      t.is(target.repository, repository, `${name}: ${path}?ns=${ns}`);
    }
    for (const folder of UPSTREAM_FOLDERS)
      t.is(upstreams.canonical(folder), folder, `${name}: ${folder} is allowlisted`);
  }
});
