// Every deployment file parses, and the fields the deployment relies on are there and consistent:
// ports, probes, labels and selectors, security context, config and policy accepted by the real loaders.
import test from 'ava';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config/load.ts';
import { parsePolicy } from '../../src/policy/load.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const K8S = join(ROOT, 'deploy/kubernetes');
// parsed YAML: the assertions below are the schema
type Doc = Record<string, any>;

function docs(file: string): Doc[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0]!.message}`);
    return d.toJS() as Doc;
  });
}

const all = readdirSync(K8S).filter((f) => f.endsWith('.yaml')).flatMap((f) => docs(join(K8S, f)).map((d) => ({ file: f, doc: d })));
const byKind = (kind: string) => all.filter((x) => x.doc.kind === kind).map((x) => x.doc);
const one = (kind: string) => {
  const found = byKind(kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`);
  return found[0]!;
};

test('the kustomization lists every manifest in its folder, and only those', (t) => {
  const k = docs(join(K8S, 'kustomization.yaml'))[0]!;
  t.is(k.kind, 'Kustomization');
  const manifests = readdirSync(K8S).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort();
  t.deepEqual([...k.resources].sort(), manifests);
  const admission = docs(join(K8S, 'admission/kustomization.yaml'))[0]!;
  t.deepEqual(admission.resources, readdirSync(join(K8S, 'admission')).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml'));
});

test('deployment: two replicas, probes on the registry port, hardened security context, config mounted as a directory', (t) => {
  const d = one('Deployment');
  t.is(d.apiVersion, 'apps/v1');
  t.is(d.spec.replicas, 2);
  t.deepEqual(d.spec.selector.matchLabels, d.spec.template.metadata.labels);
  const pod = d.spec.template.spec;
  t.true(pod.securityContext.runAsNonRoot);
  t.is(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
  const c = pod.containers[0];
  t.deepEqual(c.ports.map((p: Doc) => p.containerPort), [5050, 5051]);
  t.is(c.readinessProbe.httpGet.path, '/readyz');
  t.is(c.livenessProbe.httpGet.path, '/healthz');
  t.is(c.readinessProbe.httpGet.port, 'registry');
  t.false(c.securityContext.allowPrivilegeEscalation);
  t.true(c.securityContext.readOnlyRootFilesystem);
  t.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
  t.truthy(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory);
  for (const m of c.volumeMounts) t.is(m.subPath, undefined, `${m.name} is mounted without subPath so updates propagate`);
  t.true(c.args.includes('/etc/pullgate/config/pullgate.yaml'));
  t.true(byKind('Secret').some((s) => s.metadata.name === c.envFrom[0].secretRef.name), 'the env Secret is part of the deployment');
});

test('service, PDB and network policy select the deployment pods', (t) => {
  const labels = one('Deployment').spec.template.metadata.labels;
  t.deepEqual(one('Service').spec.selector, labels);
  t.is(one('Service').spec.ports[0].targetPort, 'registry');
  const pdb = one('PodDisruptionBudget');
  t.is(pdb.apiVersion, 'policy/v1');
  t.is(pdb.spec.minAvailable, 1);
  t.deepEqual(pdb.spec.selector.matchLabels, labels);
  const np = one('NetworkPolicy');
  t.deepEqual(np.spec.podSelector.matchLabels, labels);
  t.deepEqual(np.spec.policyTypes, ['Ingress', 'Egress']);
  t.deepEqual(np.spec.ingress.flatMap((r: Doc) => r.ports.map((p: Doc) => p.port)), [5050], 'the admin port is not reachable from the network');
  const egressPorts = np.spec.egress.flatMap((r: Doc) => r.ports.map((p: Doc) => `${p.protocol}/${p.port}`)).sort();
  t.deepEqual(egressPorts, ['TCP/443', 'TCP/53', 'TCP/5432', 'UDP/53']);
});

test('the ConfigMap config and policy are accepted by the real loaders, with the Secret providing the variables', (t) => {
  const cm = byKind('ConfigMap').find((c) => c.metadata.name === 'pullgate-config')!;
  const secret = byKind('Secret').find((s) => s.metadata.name === 'pullgate-secrets')!;
  const dir = mkdtempSync(join(tmpdir(), 'pullgate-cm-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'pullgate.yaml'), cm.data['pullgate.yaml']);
  const config = loadConfig(join(dir, 'pullgate.yaml'), secret.stringData);
  t.is(config.listen.port, 5050);
  t.is(config.admin.port, 5051);
  t.is(config.store.kind, 'postgres');
  t.is(config.admin.token, secret.stringData.PULLGATE_ADMIN_TOKEN);
  t.is(config.upstreams.find((u) => u.host === 'docker.io')?.username, secret.stringData.DOCKERHUB_USERNAME);
  t.is(config.listen.tlsCert, '/etc/pullgate/tls/tls.crt');
  const policy = parsePolicy(cm.data['policy.yaml'], { file: 'configmap policy.yaml', baseDir: dir });
  t.deepEqual([...policy.attestors.keys()].sort(), ['platform-team', 'release-ci']);
  const d = one('Deployment');
  const mounts = Object.fromEntries(d.spec.template.spec.containers[0].volumeMounts.map((m: Doc) => [m.name, m.mountPath]));
  t.is(mounts.tls, '/etc/pullgate/tls', 'the TLS paths in the config are where the Secret is mounted');
});

test('the admission policy checks containers, init and ephemeral containers of pods and workload templates', (t) => {
  const [vap, binding] = docs(join(K8S, 'admission/require-pullgate.yaml'));
  t.is(vap!.kind, 'ValidatingAdmissionPolicy');
  t.is(vap!.apiVersion, 'admissionregistration.k8s.io/v1');
  t.is(vap!.spec.failurePolicy, 'Fail');
  const resources = vap!.spec.matchConstraints.resourceRules.flatMap((r: Doc) => r.resources).sort();
  t.deepEqual(resources, ['cronjobs', 'daemonsets', 'deployments', 'jobs', 'pods', 'replicasets', 'statefulsets']);
  const cel = JSON.stringify(vap!.spec.variables);
  for (const field of ['containers', 'initContainers', 'ephemeralContainers', 'jobTemplate']) t.true(cel.includes(field), field);
  t.regex(vap!.spec.validations[0].expression, /startsWith\(variables\.prefix\)/);
  t.is(binding!.kind, 'ValidatingAdmissionPolicyBinding');
  t.is(binding!.spec.policyName, vap!.metadata.name);
  t.true(binding!.spec.validationActions.includes('Deny'));
});

test('node configs point only at the proxy: containerd server and hosts, CRI-O locations, Docker mirror', (t) => {
  for (const reg of readdirSync(join(ROOT, 'deploy/containerd/certs.d'))) {
    const toml = readFileSync(join(ROOT, 'deploy/containerd/certs.d', reg, 'hosts.toml'), 'utf8');
    const proxy = `https://pullgate.internal:5050/v2/${reg}`;
    t.regex(toml, new RegExp(`^server = "${proxy.replaceAll('.', '\\.')}"$`, 'm'), reg);
    const hosts = [...toml.matchAll(/^\[host\."([^"]+)"\]/gm)].map((m) => m[1]);
    t.deepEqual(hosts, [proxy], `${reg}: the only host is the proxy, so a deny has nowhere to fall back to`);
    t.is([...toml.matchAll(/override_path = true/g)].length, 2);
  }
  const crio = readFileSync(join(ROOT, 'deploy/cri-o/registries.conf'), 'utf8');
  const locations = [...crio.matchAll(/^location = "([^"]+)"$/gm)].map((m) => m[1]!);
  t.true(locations.length >= 4 && locations.every((l) => l.startsWith('pullgate.internal:5050/')));
  t.notRegex(crio, /\[\[registry\.mirror\]\]/);
  const daemon = JSON.parse(readFileSync(join(ROOT, 'deploy/docker/daemon.json'), 'utf8'));
  t.deepEqual(daemon['registry-mirrors'], ['https://pullgate.internal:5050']);
  t.is(loadConfig(join(ROOT, 'deploy/docker/pullgate.yaml'), {}).listen.host, '0.0.0.0');
});

test('Dockerfile: multi-stage on node:24-slim, production dependencies only, non-root, healthcheck, node entrypoint', (t) => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
  t.deepEqual(froms, ['node:24-slim', 'node:24-slim']);
  t.regex(dockerfile, /COPY package\.json package-lock\.json/);
  t.regex(dockerfile, /npm ci --omit=dev/);
  t.regex(dockerfile, /^USER 10001:10001$/m);
  t.regex(dockerfile, /^HEALTHCHECK [^\n]*\\\n\s*CMD [^\n]*\/healthz/m);
  t.regex(dockerfile, /^ENTRYPOINT \["node", "src\/cli\/main\.ts"\]$/m);
  t.regex(dockerfile, /^VOLUME \["\/var\/lib\/pullgate"\]$/m);
  const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n');
  for (const entry of ['node_modules', '.git', 'test']) t.true(ignore.includes(entry), entry);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  // everything the running proxy imports must survive --omit=dev
  const runtime = new Set(Object.keys(pkg.dependencies));
  for (const dep of ['express', 'undici', 'pino', 'lru-cache', 'pg', 'yaml', 'ajv', 'prom-client', '@sigstore/verify', '@sigstore/tuf']) t.true(runtime.has(dep), dep);
});
