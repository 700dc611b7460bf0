import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPolicyFile, parsePolicy } from '../../../src/policy/load.ts';
import { selectRule } from '../../../src/policy/match.ts';
import type { ImageRef } from '../../../src/policy/types.ts';
import { publicGoodTrustedRoot, publicKeyPem, tempDirs, yamlBlock } from './helpers.ts';

const tmp = tempDirs();
test.after.always(tmp.cleanup);

const opts = { file: 'policy.yaml', baseDir: '/nonexistent' };
const DIGEST = 'sha256:1111111111111111111111111111111111111111111111111111111111111111';

function image(ref: string): ImageRef {
  const at = ref.indexOf('@');
  const name = at >= 0 ? ref.slice(0, at) : ref;
  const slash = name.indexOf('/');
  const colon = name.indexOf(':', name.lastIndexOf('/') + 1);
  const registry = name.slice(0, slash);
  const repository = name.slice(slash + 1, colon >= 0 ? colon : undefined);
  return colon >= 0
    ? { registry, repository, tag: name.slice(colon + 1), digest: DIGEST }
    : { registry, repository, digest: at >= 0 ? ref.slice(at + 1) : DIGEST };
}

function policy(rules: string[], extra = ''): ReturnType<typeof parsePolicy> {
  const body = rules.map((r) => `{match: "${r}", evaluationMode: alwaysAllow}`).join(', ');
  return parsePolicy(
    `apiVersion: pullgate.dev/v1\nkind: Policy\n${extra}defaultRule: {evaluationMode: alwaysDeny}\nrules: [${body}]\n`,
    opts,
  );
}

const precedence: [string, string[], string, string][] = [
  [
    'exact name beats a segment wildcard',
    ['docker.io/library/*', 'docker.io/library/nginx'],
    'docker.io/library/nginx:1.25',
    'rule:docker.io/library/nginx',
  ],
  [
    'a segment wildcard beats **',
    ['docker.io/**', 'docker.io/library/*'],
    'docker.io/library/nginx:1',
    'rule:docker.io/library/*',
  ],
  [
    'order in the file does not matter when specificity differs',
    ['docker.io/library/nginx', 'docker.io/**'],
    'docker.io/library/nginx:1',
    'rule:docker.io/library/nginx',
  ],
  [
    'a tag rule beats the untagged rule for its tags',
    ['ghcr.io/acme/app', 'ghcr.io/acme/app:v*'],
    'ghcr.io/acme/app:v2',
    'rule:ghcr.io/acme/app:v*',
  ],
  [
    'a tag rule does not apply to other tags',
    ['ghcr.io/acme/app', 'ghcr.io/acme/app:v*'],
    'ghcr.io/acme/app:latest',
    'rule:ghcr.io/acme/app',
  ],
  [
    'a tag rule never applies to a digest pull',
    ['ghcr.io/acme/app', 'ghcr.io/acme/app:v*'],
    `ghcr.io/acme/app@${DIGEST}`,
    'rule:ghcr.io/acme/app',
  ],
  [
    'equal literals: fewer wildcards wins',
    ['ghcr.io/acme/ap?*', 'ghcr.io/acme/ap?'],
    'ghcr.io/acme/app:1',
    'rule:ghcr.io/acme/ap?',
  ],
  [
    '** counts as one wildcard: equal specificity, the earlier rule wins',
    ['ghcr.io/acme/ap**', 'ghcr.io/acme/ap?'],
    'ghcr.io/acme/app:1',
    'rule:ghcr.io/acme/ap**',
  ],
  [
    'equal specificity: the earlier rule wins',
    ['ghcr.io/*/acme', 'ghcr.io/acme/*'],
    'ghcr.io/acme/acme:1',
    'rule:ghcr.io/*/acme',
  ],
  [
    'equal specificity, other order',
    ['ghcr.io/acme/*', 'ghcr.io/*/acme'],
    'ghcr.io/acme/acme:1',
    'rule:ghcr.io/acme/*',
  ],
  ['no match falls to the default rule', ['ghcr.io/acme/*'], 'quay.io/x/y:1', 'default'],
  ['* does not cross /', ['ghcr.io/acme/*'], 'ghcr.io/acme/team/app:1', 'default'],
];

for (const [title, rules, ref, expected] of precedence) {
  test(`precedence: ${title}`, (t) => {
    t.is(selectRule(policy(rules), image(ref)).name, expected);
  });
}

test('the allowlist comes before any rule, however specific', (t) => {
  const p = policy(['docker.io/library/nginx:1.25'], 'allowlist: ["docker.io/library/**"]\n');
  const s = selectRule(p, image('docker.io/library/nginx:1.25'));
  t.is(s.name, 'allowlist:docker.io/library/**');
  t.is(s.rule, null);
  t.deepEqual(s.attestors, []);
  t.is(s.tagMode, 'follow');
  t.is(s.enforcementMode, 'enforce');
  t.is(selectRule(p, image('docker.io/acme/nginx:1.25')).name, 'default');
});

test('a tagged allowlist entry does not allowlist digest pulls', (t) => {
  const p = policy([], 'allowlist: ["registry.k8s.io/pause:3.*"]\n');
  t.is(selectRule(p, image('registry.k8s.io/pause:3.9')).name, 'allowlist:registry.k8s.io/pause:3.*');
  t.is(selectRule(p, image(`registry.k8s.io/pause@${DIGEST}`)).name, 'default');
});

test('selected rule carries its modes, defaults and the attestors that need verifying', (t) => {
  const key = publicKeyPem();
  const p = parsePolicy(
    `apiVersion: pullgate.dev/v1
kind: Policy
attestors:
  ci: {keys: [{pem: "${key.replace(/\n/g, '\\n')}"}]}
  scan: {keys: [{pem: "${key.replace(/\n/g, '\\n')}"}]}
defaultRule: {evaluationMode: alwaysDeny}
rules:
  - match: ghcr.io/**
    evaluationMode: requireAttestation
    enforcementMode: dryrun
    tagMode: deny
    requireAttestors: [ci]
    attestations: [{attestor: scan, predicateType: x}, {attestor: ci, predicateType: y}]
  - match: quay.io/**
    evaluationMode: alwaysAllow
    requireAttestors: [ci]
`,
    opts,
  );
  const s = selectRule(p, image('ghcr.io/a/b:1'));
  t.deepEqual(
    [s.name, s.enforcementMode, s.tagMode, s.attestors],
    ['rule:ghcr.io/**', 'dryrun', 'deny', ['ci', 'scan']],
  );
  t.is(s.rule, p.doc.rules?.[0] ?? null);
  const allow = selectRule(p, image('quay.io/a/b:1'));
  t.deepEqual(
    [allow.enforcementMode, allow.tagMode, allow.attestors],
    ['enforce', 'pin', []],
    'no verification for alwaysAllow',
  );
  const def = selectRule(p, image('x.io/a/b:1'));
  t.is(def.name, 'default');
  t.is(def.message, undefined, 'only the embedded policy adds a message');
});

function attestorPolicy(dir: string, defaultRule: string, extra = ''): string {
  const file = join(dir, 'policy.yaml');
  writeFileSync(
    file,
    `apiVersion: pullgate.dev/v1
kind: Policy
${extra}attestors:
  ci: {keys: [{file: ci.pub}]}
  other: {keys: [{file: other.pub}]}
defaultRule: ${defaultRule}
rules:
  - {match: "ghcr.io/acme/**", evaluationMode: requireAttestation, requireAttestors: [other]}
`,
  );
  return file;
}

test('ruleHash changes when the rule, a key of its attestors or their trust root changes, and only then', (t) => {
  const dir = tmp.make();
  writeFileSync(join(dir, 'ci.pub'), publicKeyPem());
  writeFileSync(join(dir, 'other.pub'), publicKeyPem());
  const rule = '{evaluationMode: requireAttestation, requireAttestors: [ci]}';
  const file = attestorPolicy(dir, rule);
  const hash = () => selectRule(loadPolicyFile(file), image('docker.io/library/nginx:1')).ruleHash;
  const first = hash();
  t.regex(first, /^[0-9a-f]{64}$/);
  t.is(hash(), first, 'stable across loads');

  writeFileSync(join(dir, 'other.pub'), publicKeyPem());
  t.is(hash(), first, 'a key of an attestor the rule does not use does not matter');

  writeFileSync(join(dir, 'ci.pub'), publicKeyPem());
  const rotated = hash();
  t.not(rotated, first, "a rotated key of the rule's attestor invalidates cached verdicts");

  attestorPolicy(dir, '{evaluationMode: requireAttestation, requireAttestors: [ci], tagMode: follow}');
  const edited = hash();
  t.not(edited, rotated, 'an edited rule has a new hash');

  // The same trust material in a file with other bytes: the digest, and so the hash, changes.
  writeFileSync(join(dir, 'root.json'), JSON.stringify(publicGoodTrustedRoot()));
  const withRoot = (indent: number) => {
    writeFileSync(join(dir, 'root.json'), JSON.stringify(publicGoodTrustedRoot(), null, indent));
    return attestorPolicy(dir, rule, 'trustRoots:\n  public-good: {file: root.json}\n');
  };
  withRoot(0);
  const rootA = hash();
  withRoot(2);
  t.not(hash(), rootA, 'a replaced trusted_root.json invalidates cached verdicts');
});

test('ruleHash differs between rules with the same content and between allowlist entries', (t) => {
  const p = policy(['ghcr.io/a/*', 'ghcr.io/b/*'], 'allowlist: [quay.io/x, quay.io/y]\n');
  const hashes = ['ghcr.io/a/x:1', 'ghcr.io/b/x:1', 'quay.io/x:1', 'quay.io/y:1', 'other.io/z/z:1'].map(
    (r) => selectRule(p, image(r)).ruleHash,
  );
  t.is(new Set(hashes).size, hashes.length);
});
