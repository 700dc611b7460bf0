// The ValidatingAdmissionPolicy, structure and behaviour: its CEL is evaluated by a CEL engine the
// way the API server does (variables in order, then each validation) against Pods and workloads.
import test from 'ava';
import { evaluate } from '@marcbachmann/cel-js';
import { join } from 'node:path';
import { type Doc, K8S, kubernetesConfig, manifestsIn, parseFile } from './deploy-files.ts';
import { SHIPPED_PROXY } from './node-fixture.ts';

const docs = manifestsIn(join(K8S, 'admission')).map((m) => m.doc);
const policy = docs.find((d) => d.kind === 'ValidatingAdmissionPolicy')!;
const binding = docs.find((d) => d.kind === 'ValidatingAdmissionPolicyBinding')!;
const variantDocs = manifestsIn(join(K8S, 'admission/allowlisted-registries')).map((m) => m.doc);
const variant = variantDocs.find((d) => d.kind === 'ValidatingAdmissionPolicy')!;
const variantBinding = variantDocs.find((d) => d.kind === 'ValidatingAdmissionPolicyBinding')!;
const PROXY = 'pullgate.internal:5050/';

interface Admission {
  allowed: boolean;
  message?: string;
}

/** What the API server decides for `object`: false and the message when a validation fails. */
function admit(object: Doc, by: Doc = policy): Admission {
  const variables: Record<string, unknown> = {};
  for (const v of by.spec.variables) variables[v.name] = evaluate(v.expression, { object, variables });
  for (const validation of by.spec.validations) {
    if (evaluate(validation.expression, { object, variables }) !== true) {
      return { allowed: false, message: String(evaluate(validation.messageExpression, { object, variables })) };
    }
  }
  return { allowed: true };
}

const container = (name: string, image?: string) => (image === undefined ? { name } : { name, image });
const podSpec = (images: { containers: string[]; initContainers?: string[]; ephemeralContainers?: string[] }) =>
  Object.fromEntries(
    Object.entries(images).map(([list, names]) => [list, names.map((image, i) => container(`${list}-${i}`, image))]),
  );
const template = (spec: Doc) => ({ metadata: { labels: { app: 'x' } }, spec });
const workloads = (spec: Doc): Doc[] => [
  { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec },
  ...['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet'].map((kind) => ({
    apiVersion: 'apps/v1',
    kind,
    spec: { selector: {}, template: template(spec) },
  })),
  { apiVersion: 'batch/v1', kind: 'Job', spec: { template: template(spec) } },
  {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    spec: { schedule: '@daily', jobTemplate: { spec: { template: template(spec) } } },
  },
];

test('policy and binding: v1 API, fail closed, every workload kind and the ephemeral containers subresource', (t) => {
  t.is(policy.apiVersion, 'admissionregistration.k8s.io/v1');
  t.is(binding.apiVersion, 'admissionregistration.k8s.io/v1');
  t.is(policy.spec.failurePolicy, 'Fail');
  const rules = policy.spec.matchConstraints.resourceRules as Doc[];
  const resources = rules.flatMap((r) => r.resources.map((res: string) => `${r.apiGroups[0] || 'core'}/${res}`)).sort();
  t.deepEqual(resources, [
    'apps/daemonsets',
    'apps/deployments',
    'apps/replicasets',
    'apps/statefulsets',
    'batch/cronjobs',
    'batch/jobs',
    'core/pods',
    'core/pods/ephemeralcontainers',
  ]);
  for (const r of rules) t.deepEqual([...r.operations].sort(), ['CREATE', 'UPDATE']);
  t.is(binding.spec.policyName, policy.metadata.name);
  t.true(binding.spec.validationActions.includes('Deny'));
  const exempt = binding.spec.matchResources.namespaceSelector.matchExpressions.find(
    (e: Doc) => e.key === 'kubernetes.io/metadata.name',
  );
  t.is(exempt.operator, 'NotIn');
  t.deepEqual([...exempt.values].sort(), ['kube-system', 'pullgate']);
  const cel = JSON.stringify(policy.spec);
  for (const list of ['containers', 'initContainers', 'ephemeralContainers'])
    t.true(cel.includes(`has(variables.spec.${list})`), `${list} is optional: has() guards it`);
});

test('images named through the proxy are admitted, in every workload kind, with or without init containers', (t) => {
  const specs = [
    podSpec({ containers: [`${PROXY}docker.io/library/nginx:1.27`] }),
    podSpec({
      containers: [`${PROXY}ghcr.io/acme/app@sha256:${'a'.repeat(64)}`, `${PROXY}quay.io/x/y:1`],
      initContainers: [`${PROXY}docker.io/library/busybox:1.36`],
    }),
  ];
  for (const spec of specs)
    for (const object of workloads(spec)) t.deepEqual(admit(object), { allowed: true }, object.kind);
});

test('an image from anywhere else is refused, in any container list of any workload kind, and the message names it', (t) => {
  const cases = [
    podSpec({ containers: ['nginx:1.27'] }),
    podSpec({ containers: [`${PROXY}docker.io/library/nginx:1.27`], initContainers: ['ghcr.io/evil/init:1'] }),
    podSpec({ containers: [`${PROXY}docker.io/library/nginx:1.27`], ephemeralContainers: ['busybox'] }),
    podSpec({ containers: [`docker.io/${PROXY}x:1`] }), // the prefix must come first
    podSpec({ containers: ['pullgate.internal:5050.evil.example/x:1'] }), // and end at the slash
  ];
  for (const spec of cases) {
    const bad = Object.values(spec)
      .flat()
      .map((c) => (c as { image: string }).image)
      .filter((i) => !i.startsWith(PROXY));
    for (const object of workloads(spec)) {
      const r = admit(object);
      t.false(r.allowed, `${object.kind}: ${bad.join(', ')}`);
      t.is(
        r.message,
        `images must be pulled through pullgate, named ${PROXY}<registry>/<repository>; not: ${bad.join(', ')}`,
      );
    }
  }
});

test('a template container without an image is refused with a message, not an evaluation error', (t) => {
  const spec = { containers: [container('app')] };
  for (const object of workloads(spec).filter((o) => o.kind !== 'Pod')) {
    const r = admit(object);
    t.false(r.allowed);
    t.regex(r.message ?? '', /not: \(no image\)$/);
  }
});

test('kubectl debug on an existing pod: the pod with an added ephemeral container is what the subresource admits', (t) => {
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    spec: podSpec({ containers: [`${PROXY}docker.io/library/nginx:1.27`] }),
  };
  t.true(admit(pod).allowed);
  const debugged = {
    ...pod,
    spec: { ...pod.spec, ephemeralContainers: [container('debugger', 'docker.io/library/busybox:1.36')] },
  };
  t.false(admit(debugged).allowed);
});

// The variant that keeps image names: deploy/kubernetes/admission/allowlisted-registries.

test('allowlisted-registries variant: same scope and fail-closed binding as the prefix policy, its own names', (t) => {
  t.deepEqual(variant.spec.matchConstraints, policy.spec.matchConstraints);
  t.is(variant.spec.failurePolicy, 'Fail');
  t.not(variant.metadata.name, policy.metadata.name, 'both can be installed while switching');
  t.is(variantBinding.spec.policyName, variant.metadata.name);
  t.deepEqual(variantBinding.spec.validationActions, binding.spec.validationActions);
  t.deepEqual(variantBinding.spec.matchResources, binding.spec.matchResources);
  const k = parseFile('kubernetes/admission/allowlisted-registries/kustomization.yaml')[0]!;
  t.deepEqual(k.resources, ['allowlisted-registries.yaml'], 'the variant alone, not the prefix policy too');
});

test('allowlisted-registries variant: the allowed registries are the proxy upstreams the node configurations route through it', (t) => {
  const allowed = evaluate(variant.spec.variables.find((v: Doc) => v.name === 'allowed').expression, {}) as string[];
  const { config } = kubernetesConfig(t);
  const upstreams = config.upstreams.map((u) => u.host);
  t.deepEqual(allowed.filter((r) => r !== SHIPPED_PROXY && r !== 'index.docker.io').sort(), [...upstreams].sort());
  t.true(allowed.includes(SHIPPED_PROXY), 'images named through the proxy stay allowed');
  t.true(config.upstreams.find((u) => u.host === 'docker.io')!.aliases.includes('index.docker.io'));
  const crio = (parseFile('cri-o/registries.conf')[0]!.registry as Doc[]).map((r) => r.prefix);
  for (const registry of upstreams) {
    t.truthy(
      parseFile(`containerd/certs.d/${registry}/hosts.toml`)[0],
      `${registry}: a containerd folder routes it through the proxy`,
    );
    t.true(
      crio.includes(registry),
      `${registry}: CRI-O routes it through the proxy (unlisted registries are pulled directly)`,
    );
  }
});

test('allowlisted-registries variant: usual image names from allowed registries are admitted in every workload kind', (t) => {
  const specs = [
    podSpec({ containers: ['nginx:1.27', 'library/busybox', 'acme/app:1@sha256:' + 'a'.repeat(64)] }),
    podSpec({ containers: ['ghcr.io/acme/app:1.4', 'quay.io/x/y:1'], initContainers: ['registry.k8s.io/pause:3.10'] }),
    podSpec({
      containers: ['docker.io/library/nginx:1.27', 'index.docker.io/library/nginx'],
      ephemeralContainers: [`${PROXY}ghcr.io/acme/debug:1`],
    }),
  ];
  for (const spec of specs)
    for (const object of workloads(spec))
      t.deepEqual(admit(object, variant), { allowed: true }, `${object.kind}: ${JSON.stringify(spec)}`);
});

test('allowlisted-registries variant: any other registry, and a template without an image, are refused and named', (t) => {
  const cases: [Doc, string[]][] = [
    [podSpec({ containers: ['evil.example/app:1'] }), ['evil.example/app:1']],
    [
      podSpec({ containers: ['nginx'], initContainers: ['localhost/x:1', 'localhost:5000/x'] }),
      ['localhost/x:1', 'localhost:5000/x'],
    ],
    [
      podSpec({ containers: ['nginx'], ephemeralContainers: ['ghcr.io.evil.example/x:1'] }),
      ['ghcr.io.evil.example/x:1'],
    ],
    [podSpec({ containers: ['registry-1.docker.io/library/nginx'] }), ['registry-1.docker.io/library/nginx']],
    [podSpec({ containers: ['pullgate.internal:5051/docker.io/x'] }), ['pullgate.internal:5051/docker.io/x']],
    [podSpec({ containers: ['GHCR.IO/acme/app'] }), ['GHCR.IO/acme/app']],
  ];
  for (const [spec, bad] of cases) {
    for (const object of workloads(spec)) {
      const r = admit(object, variant);
      t.false(r.allowed, `${object.kind}: ${bad.join(', ')}`);
      t.regex(
        r.message ?? '',
        /^images must come from a registry pulled through pullgate \(docker\.io, index\.docker\.io, ghcr\.io, quay\.io, registry\.k8s\.io, pullgate\.internal:5050\); not: /,
      );
      t.true(r.message?.endsWith(`not: ${bad.join(', ')}`), r.message);
    }
  }
  for (const object of workloads({ containers: [container('app')] }).filter((o) => o.kind !== 'Pod')) {
    const r = admit(object, variant);
    t.false(r.allowed);
    t.regex(r.message ?? '', /not: \(no image\)$/);
  }
});
