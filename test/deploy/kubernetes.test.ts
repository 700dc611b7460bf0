// deploy/kubernetes: the fields the deployment relies on are there and agree with each other and
// with the proxy's own configuration, which the real config and policy loaders accept.
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import { parsePolicy } from '../../src/policy/load.ts';
import { lintPolicy } from '../../src/policy/lint.ts';
import { type Doc, K8S, kubernetesConfig, manifestsIn, parseYamlDocuments } from './deploy-files.ts';

const manifests = manifestsIn(K8S);
const ofKind = (kind: string) => manifests.filter((m) => m.doc.kind === kind).map((m) => m.doc);
function one(kind: string): Doc {
  const found = ofKind(kind);
  if (found.length !== 1) throw new Error(`deploy/kubernetes: expected one ${kind}, found ${found.length}`);
  return found[0]!;
}

const deployment = one('Deployment');
const podSpec: Doc = deployment.spec.template.spec;
const container: Doc = podSpec.containers[0];
const podLabels: Doc = deployment.spec.template.metadata.labels;
const secret = ofKind('Secret').find((s) => s.metadata.name === 'pullgate-secrets')!;
const configMap = ofKind('ConfigMap').find((c) => c.metadata.name === 'pullgate-config')!;

/** The container port a probe or Service names (by name or number). */
function containerPort(port: string | number): number | undefined {
  return container.ports.find((p: Doc) => p.name === port || p.containerPort === port)?.containerPort;
}

/** Where in the container a path of the pod's filesystem comes from: the volume mounted above it. */
function mountFor(path: string): { mount: Doc; volume: Doc } | undefined {
  const mount = (container.volumeMounts as Doc[])
    .filter((m) => path.startsWith(`${m.mountPath}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  const volume = mount && (podSpec.volumes as Doc[]).find((v) => v.name === mount.name);
  return mount && volume ? { mount, volume } : undefined;
}

test('every manifest is a known kind at its stable apiVersion, in the pullgate namespace', (t) => {
  const expected: Record<string, string> = {
    Namespace: 'v1',
    ConfigMap: 'v1',
    Secret: 'v1',
    Service: 'v1',
    Deployment: 'apps/v1',
    PodDisruptionBudget: 'policy/v1',
    NetworkPolicy: 'networking.k8s.io/v1',
  };
  t.deepEqual(manifests.map((m) => m.doc.kind).sort(), Object.keys(expected).sort());
  for (const { file, doc } of manifests) {
    t.is(doc.apiVersion, expected[doc.kind], `${file}: ${doc.kind}`);
    t.truthy(doc.metadata?.name, `${file}: ${doc.kind} has a name`);
    t.is(doc.metadata.namespace, undefined, `${file}: the kustomization sets the namespace`);
  }
  const kustomization = parseYamlDocuments(
    readFileSync(join(K8S, 'kustomization.yaml'), 'utf8'),
    'kustomization.yaml',
  )[0]!;
  t.is(kustomization.namespace, one('Namespace').metadata.name);
  t.is(one('Namespace').metadata.labels['pod-security.kubernetes.io/enforce'], 'restricted');
});

test('each kustomization lists every manifest in its folder, and nothing else', (t) => {
  for (const dir of [K8S, join(K8S, 'admission')]) {
    const [k] = parseYamlDocuments(readFileSync(join(dir, 'kustomization.yaml'), 'utf8'), dir);
    t.is(k!.apiVersion, 'kustomize.config.k8s.io/v1beta1');
    t.is(k!.kind, 'Kustomization');
    const files = readdirSync(dir)
      .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
      .sort();
    t.deepEqual([...k!.resources].sort(), files, dir);
  }
});

test('deployment: two replicas spread over nodes, rolling without losing capacity', (t) => {
  t.is(deployment.spec.replicas, 2);
  t.deepEqual(deployment.spec.selector.matchLabels, podLabels);
  t.is(deployment.spec.strategy.rollingUpdate.maxUnavailable, 0);
  const byHost = podSpec.topologySpreadConstraints.find((c: Doc) => c.topologyKey === 'kubernetes.io/hostname');
  t.is(byHost.whenUnsatisfiable, 'DoNotSchedule');
  t.is(byHost.maxSkew, 1);
  t.deepEqual(byHost.labelSelector.matchLabels, podLabels);
});

test('deployment: restricted security context, read-only root, no writable mounts, resources set', (t) => {
  t.true(podSpec.securityContext.runAsNonRoot);
  t.true(Number.isInteger(podSpec.securityContext.runAsUser) && podSpec.securityContext.runAsUser > 0);
  t.is(podSpec.securityContext.seccompProfile.type, 'RuntimeDefault');
  t.false(podSpec.automountServiceAccountToken);
  const sc = container.securityContext;
  t.false(sc.allowPrivilegeEscalation);
  t.true(sc.readOnlyRootFilesystem);
  t.deepEqual(sc.capabilities.drop, ['ALL']);
  t.is(sc.capabilities.add, undefined);
  t.is(sc.privileged, undefined);
  // with the PostgreSQL store the proxy writes no file: every mount is read-only
  for (const m of container.volumeMounts) t.true(m.readOnly, `${m.name} is read-only`);
  t.truthy(container.resources.requests.cpu);
  t.truthy(container.resources.requests.memory);
  t.truthy(container.resources.limits.memory);
  t.is(container.command, undefined, 'the image ENTRYPOINT (node src/cli/main.ts) runs');
  t.deepEqual(container.args.slice(0, 2), ['serve', '--config']);
});

test('deployment: probes hit /readyz and /healthz on the port the config listens on, over TLS as configured', (t) => {
  const { config } = kubernetesConfig(t);
  for (const [probe, path] of [
    ['readinessProbe', '/readyz'],
    ['livenessProbe', '/healthz'],
  ] as const) {
    const get = container[probe].httpGet;
    t.is(get.path, path);
    t.is(containerPort(get.port), config.listen.port, `${probe} port`);
    t.is(get.scheme, config.listen.tlsCert ? 'HTTPS' : 'HTTP', `${probe} scheme`);
  }
  t.deepEqual(
    container.ports.map((p: Doc) => p.containerPort),
    [config.listen.port, config.admin.port],
    'the registry port, and the admin port for Prometheus',
  );
  t.is(containerPort('admin'), config.admin.port);
  t.is(config.listen.host, '0.0.0.0');
  t.is(config.metrics.listener, 'admin', '/metrics is not on the port every node and pod reaches');
  t.is(config.admin.host, '0.0.0.0', 'the admin listener is reachable for Prometheus (the NetworkPolicy narrows it)');
});

test('deployment: config and policy come from the ConfigMap mounted as a directory, TLS from its Secret', (t) => {
  const { config } = kubernetesConfig(t);
  const configFile = container.args[container.args.indexOf('--config') + 1];
  const configMount = mountFor(configFile);
  t.is(configMount?.volume.configMap?.name, configMap.metadata.name);
  t.is(configMount?.mount.subPath, undefined, 'no subPath: ConfigMap updates propagate');
  t.true(Object.keys(configMap.data).includes(configFile.slice(configMount!.mount.mountPath.length + 1)));
  // the policy path in the config resolves beside it, into the same mounted ConfigMap
  const policyFile = config.policyFile!.replace(/^.*\//, `${configMount!.mount.mountPath}/`);
  t.is(mountFor(policyFile)?.volume.configMap?.name, configMap.metadata.name);
  for (const file of [config.listen.tlsCert!, config.listen.tlsKey!]) {
    const tls = mountFor(file);
    t.truthy(tls?.volume.secret?.secretName, `${file} comes from a Secret`);
    t.true(
      ['tls.crt', 'tls.key'].includes(file.slice(tls!.mount.mountPath.length + 1)),
      `${file}: a kubernetes.io/tls key`,
    );
  }
  for (const m of container.volumeMounts) t.is(m.subPath, undefined, `${m.name}: no subPath`);
});

test('the Secret provides every variable the config reads, and only placeholders', (t) => {
  t.is(secret.type, 'Opaque');
  t.true(container.envFrom.some((e: Doc) => e.secretRef?.name === secret.metadata.name));
  for (const [key, value] of Object.entries(secret.stringData as Record<string, string>)) {
    t.true(value.startsWith('REPLACE'), `${key} is a marked placeholder, not a real secret`);
  }
  const { config } = kubernetesConfig(t);
  t.like(config.store, { kind: 'postgres', url: secret.stringData.PULLGATE_POSTGRES_URL, schema: 'pullgate' });
  t.is(config.admin.token, secret.stringData.PULLGATE_ADMIN_TOKEN);
  const hub = config.upstreams.find((u) => u.host === 'docker.io');
  t.is(hub?.username, secret.stringData.DOCKERHUB_USERNAME);
  t.is(hub?.password, secret.stringData.DOCKERHUB_TOKEN);
  // every *Env key in the config names a Secret key (a missing one would fail at start)
  const envNames = [...configMap.data['pullgate.yaml'].matchAll(/\w+Env: (\w+)/g)].map((m) => m[1]);
  for (const name of envNames) t.true(name in secret.stringData, `${name} is in the Secret`);
});

test('pullgate serve refuses the Secret as shipped: its placeholder admin token is named with the fix', (t) => {
  const { dir, secret: shipped } = kubernetesConfig(t);
  const env = { ...shipped.stringData };
  const err = t.throws(() => loadConfig(join(dir, 'pullgate.yaml'), env, { refusePlaceholders: true })) as Error;
  t.regex(
    err.message,
    /admin\.token: the value of environment variable PULLGATE_ADMIN_TOKEN is a placeholder .*pullgate-secrets Secret.*openssl rand -hex 32/,
  );
  // with a real token the next placeholder is named, and so on: none of them slips through
  env.PULLGATE_ADMIN_TOKEN = 'f3b1c9e0a7d2486b9c1e5f0a3d7b2c8e';
  t.throws(() => loadConfig(join(dir, 'pullgate.yaml'), env, { refusePlaceholders: true }), {
    message: /upstreams\[0\]\.username: the value of environment variable DOCKERHUB_USERNAME is a placeholder/,
  });
});

test('the ConfigMap policy is accepted by the real policy loader and lints clean but for the announced dry run', (t) => {
  const { config, dir } = kubernetesConfig(t);
  const text = configMap.data['policy.yaml'];
  const policy = parsePolicy(text, { file: 'configmap policy.yaml', baseDir: dir });
  t.deepEqual([...policy.attestors.keys()].sort(), ['platform-team', 'release-ci']);
  t.is(policy.doc.defaultRule.enforcementMode, 'dryrun', 'the shipped roll-out starts in dry run');
  const findings = lintPolicy(text, { file: 'policy.yaml', baseDir: dir });
  t.deepEqual(
    findings.map((f) => `${f.level} ${f.path}`),
    ['warning /defaultRule/enforcementMode'],
  );
  t.is(config.policyFile, join(dir, 'policy.yaml'));
  // the infrastructure images nodes need first are allowlisted for tags and digests alike
  for (const entry of policy.doc.allowlist ?? [])
    t.false(entry.slice(entry.lastIndexOf('/')).includes(':'), `${entry} has no tag part`);
});

test('service and PDB select the deployment pods; the PDB keeps one serving', (t) => {
  const service = one('Service');
  t.deepEqual(service.spec.selector, podLabels);
  t.is(service.spec.type ?? 'ClusterIP', 'ClusterIP');
  // a fixed address, so the nodes' name for the proxy survives the Service being recreated
  t.regex(service.spec.clusterIP, /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/);
  t.true(
    String(service.spec.clusterIP)
      .split('.')
      .every((o: string) => Number(o) <= 255),
  );
  t.deepEqual(service.spec.ipFamilies, ['IPv4'], 'one family: the one address nodes are given');
  t.is(service.spec.ipFamilyPolicy, 'SingleStack');
  t.is(service.spec.ports[0].port, 5050, 'the port of the name nodes use (pullgate.internal:5050)');
  const { config } = kubernetesConfig(t);
  t.deepEqual(
    service.spec.ports.map((p: Doc) => containerPort(p.targetPort)),
    [config.listen.port],
  );
  const pdb = one('PodDisruptionBudget');
  t.is(pdb.spec.minAvailable, 1);
  t.deepEqual(pdb.spec.selector.matchLabels, podLabels);
});

test('network policy: ingress to the registry port, the admin port from the monitoring namespace; egress to DNS, PostgreSQL and HTTPS only', (t) => {
  const np = one('NetworkPolicy');
  t.deepEqual(np.spec.podSelector.matchLabels, podLabels);
  t.deepEqual([...np.spec.policyTypes].sort(), ['Egress', 'Ingress']);
  const { config } = kubernetesConfig(t);
  const ingressPorts = np.spec.ingress.flatMap((r: Doc) => r.ports.map((p: Doc) => p.port));
  t.deepEqual(ingressPorts, [config.listen.port, config.admin.port]);
  const registryRule = np.spec.ingress.find((r: Doc) => r.ports.some((p: Doc) => p.port === config.listen.port));
  t.is(registryRule.from, undefined, 'nodes (host network) reach the registry port: clients log in there');
  const adminRule = np.spec.ingress.find((r: Doc) => r.ports.some((p: Doc) => p.port === config.admin.port));
  t.deepEqual(adminRule.ports, [{ port: config.admin.port, protocol: 'TCP' }]);
  t.is(adminRule.from.length, 1, 'the admin port from one namespace only');
  t.truthy(adminRule.from[0].namespaceSelector.matchLabels['kubernetes.io/metadata.name'], 'the monitoring namespace');
  t.is(adminRule.from[0].ipBlock, undefined);
  // every egress rule is limited by port; which rule allows what
  for (const rule of np.spec.egress) t.true(rule.ports?.length > 0, 'no egress rule without ports');
  const rules = np.spec.egress.map((r: Doc) => ({
    ports: r.ports.map((p: Doc) => `${p.protocol}/${p.port}`).sort(),
    to: r.to,
  }));
  const dns = rules.find((r: Doc) => r.ports.includes('UDP/53'));
  t.deepEqual(dns.ports, ['TCP/53', 'UDP/53']);
  t.is(dns.to[0].namespaceSelector.matchLabels['kubernetes.io/metadata.name'], 'kube-system');
  t.is(dns.to[0].podSelector.matchLabels['k8s-app'], 'kube-dns');
  const postgresPort = new URL(secret.stringData.PULLGATE_POSTGRES_URL.replace(/^REPLACE-/, '')).port;
  const store = rules.find((r: Doc) => r.ports.includes(`TCP/${postgresPort}`));
  t.deepEqual(store.ports, [`TCP/${postgresPort}`]);
  t.truthy(store.to, 'PostgreSQL is reached on its selector only');
  const https = rules.find((r: Doc) => r.ports.includes('TCP/443'));
  t.deepEqual(https.ports, ['TCP/443']);
  t.is(rules.length, 3);
});
