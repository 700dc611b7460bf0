import test from 'ava';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  EMBEDDED_POLICY,
  EMBEDDED_SOURCE,
  loadPolicyFile,
  parsePolicy,
  PolicyError,
} from '../../../src/policy/load.ts';
import { selectRule } from '../../../src/policy/match.ts';
import { evaluate } from '../../../src/policy/evaluate.ts';
import { publicKeyPem, tempDirs, yamlBlock } from './helpers.ts';

const tmp = tempDirs();
test.after.always(tmp.cleanup);

const KEY = publicKeyPem();
const HEADER = 'apiVersion: pullgate.dev/v1\nkind: Policy\n';
const ATTESTORS = `attestors:
  ci:
    keys:
      - pem: |
${yamlBlock(KEY, 10)}
  scanner:
    keys:
      - pem: |
${yamlBlock(KEY, 10)}
`;
const opts = { file: 'policy.yaml', baseDir: '/nonexistent' };

test('a complete document loads: attestors compiled, rules kept, version is the sha256 of the content', (t) => {
  const text = `${HEADER}${ATTESTORS}
allowlist: [registry.k8s.io/pause]
defaultRule: {evaluationMode: alwaysDeny}
rules:
  - match: ghcr.io/acme/**
    evaluationMode: requireAttestation
    requireAttestors: {anyOf: [ci, scanner], min: 1}
    attestations:
      - attestor: scanner
        predicateType: https://cosign.sigstore.dev/attestation/vuln/v1
        conditions: [{path: metadata.scanFinishedOn, maxAge: 7d}]
    tagMode: follow
`;
  const p = parsePolicy(text, opts);
  t.is(p.source, 'policy.yaml');
  t.deepEqual([...p.attestors.keys()], ['ci', 'scanner']);
  t.is(p.attestors.get('ci')?.keys.length, 1);
  t.is(p.doc.rules?.[0]?.tagMode, 'follow');
  t.deepEqual(p.doc.allowlist, ['registry.k8s.io/pause']);
  t.regex(p.version, /^[0-9a-f]{64}$/);
  t.is(parsePolicy(text, opts).version, p.version, 'same content, same version');
  t.not(parsePolicy(`${text}\n# a comment\n`, opts).version, p.version);
});

// Each case: document body (after apiVersion/kind), the JSON pointer of the problem, and its wording.
const invalid: [string, string, string, RegExp][] = [
  ['missing defaultRule', `${ATTESTORS}`, '/defaultRule', /is required/],
  [
    'unknown top-level field',
    'defaultRule: {evaluationMode: alwaysDeny}\nrule: []',
    '/rule',
    /unknown field; expected one of: .*rules/,
  ],
  [
    'unknown evaluation mode',
    'defaultRule: {evaluationMode: allow}',
    '/defaultRule/evaluationMode',
    /must be one of alwaysAllow, alwaysDeny, requireAttestation \(got the string "allow"\)/,
  ],
  [
    'match on the default rule',
    'defaultRule: {evaluationMode: alwaysDeny, match: "x/**"}',
    '/defaultRule/match',
    /not allowed/,
  ],
  [
    'rule without match',
    'defaultRule: {evaluationMode: alwaysDeny}\nrules: [{evaluationMode: alwaysAllow}]',
    '/rules/0/match',
    /is required/,
  ],
  [
    'requireAttestors as a string',
    `${ATTESTORS}defaultRule: {evaluationMode: requireAttestation, requireAttestors: ci}`,
    '/defaultRule/requireAttestors',
    /must be a list or a mapping/,
  ],
  [
    'min not an integer',
    `${ATTESTORS}defaultRule: {evaluationMode: requireAttestation, requireAttestors: {anyOf: [ci], min: 0.5}}`,
    '/defaultRule/requireAttestors/min',
    /integer/,
  ],
  [
    'unknown tag mode',
    'defaultRule: {evaluationMode: alwaysDeny, tagMode: latest}',
    '/defaultRule/tagMode',
    /pin, deny, follow/,
  ],
  [
    'bad attestor name',
    'attestors: {"ci team": {keys: [{pem: x}]}}\ndefaultRule: {evaluationMode: alwaysDeny}',
    '/attestors/ci team',
    /invalid name/,
  ],
  [
    'unknown attestor in anyOf',
    `${ATTESTORS}defaultRule: {evaluationMode: alwaysDeny}
rules:
  - {match: a/b, evaluationMode: alwaysAllow}
  - {match: a/c, evaluationMode: alwaysAllow}
  - match: a/d
    evaluationMode: requireAttestation
    requireAttestors: {anyOf: [ci, sigstore], min: 1}`,
    '/rules/2/requireAttestors/anyOf/1',
    /unknown attestor "sigstore"; defined: ci, scanner/,
  ],
  [
    'unknown attestor in a list',
    `${ATTESTORS}defaultRule: {evaluationMode: requireAttestation, requireAttestors: [ci, cd]}`,
    '/defaultRule/requireAttestors/1',
    /unknown attestor "cd"/,
  ],
  [
    'unknown attestor in attestations',
    `${ATTESTORS}defaultRule:
  evaluationMode: requireAttestation
  attestations: [{attestor: sbom, predicateType: https://spdx.dev/Document}]`,
    '/defaultRule/attestations/0/attestor',
    /unknown attestor "sbom"/,
  ],
  [
    'min larger than the list',
    `${ATTESTORS}defaultRule: {evaluationMode: requireAttestation, requireAttestors: {anyOf: [ci, scanner], min: 3}}`,
    '/defaultRule/requireAttestors/min',
    /between 1 and 2.*got 3/,
  ],
  [
    'min below 1',
    `${ATTESTORS}defaultRule: {evaluationMode: requireAttestation, requireAttestors: {anyOf: [ci, scanner], min: 0}}`,
    '/defaultRule/requireAttestors/min',
    /between 1 and 2.*got 0/,
  ],
  [
    'attestor listed twice',
    `${ATTESTORS}defaultRule: {evaluationMode: requireAttestation, requireAttestors: [ci, ci]}`,
    '/defaultRule/requireAttestors/1',
    /listed twice/,
  ],
  [
    'requireAttestation with nothing required',
    'defaultRule: {evaluationMode: requireAttestation}',
    '/defaultRule/evaluationMode',
    /needs requireAttestors or attestations/,
  ],
  [
    'invalid condition regexp',
    `${ATTESTORS}defaultRule:
  evaluationMode: requireAttestation
  attestations:
    - attestor: ci
      predicateType: https://slsa.dev/provenance/v1
      conditions: [{path: runDetails.builder.id, matches: "https://(github"}]`,
    '/defaultRule/attestations/0/conditions/0/matches',
    /invalid regular expression/,
  ],
  [
    'invalid duration',
    `${ATTESTORS}defaultRule:
  evaluationMode: requireAttestation
  attestations:
    - attestor: scanner
      predicateType: https://cosign.sigstore.dev/attestation/vuln/v1
      conditions: [{path: metadata.scanFinishedOn, maxAge: 1 week}]`,
    '/defaultRule/attestations/0/conditions/0/maxAge',
    /not a duration.*7d/,
  ],
  [
    'condition without a test',
    `${ATTESTORS}defaultRule:
  evaluationMode: requireAttestation
  attestations: [{attestor: ci, predicateType: x, conditions: [{path: a.b}]}]`,
    '/defaultRule/attestations/0/conditions/0',
    /no test: give at least one of equals/,
  ],
  [
    'condition path with an empty segment',
    `${ATTESTORS}defaultRule:
  evaluationMode: requireAttestation
  attestations: [{attestor: ci, predicateType: x, conditions: [{path: a..b, equals: 1}]}]`,
    '/defaultRule/attestations/0/conditions/0/path',
    /empty segment/,
  ],
  [
    'duplicate rule match',
    `defaultRule: {evaluationMode: alwaysDeny}
rules:
  - {match: "ghcr.io/**", evaluationMode: alwaysAllow}
  - {match: "ghcr.io/**", evaluationMode: alwaysDeny}`,
    '/rules/1/match',
    /already the match of \/rules\/0/,
  ],
  [
    'invalid rule pattern',
    'defaultRule: {evaluationMode: alwaysDeny}\nrules: [{match: "ghcr.io/app@sha256:00", evaluationMode: alwaysAllow}]',
    '/rules/0/match',
    /digests cannot be matched/,
  ],
  [
    'invalid allowlist pattern',
    'allowlist: [ok.io/x, docker.io]\ndefaultRule: {evaluationMode: alwaysDeny}',
    '/allowlist/1',
    /has no "\/"/,
  ],
  [
    'attestor with no keys, identities or pki',
    'attestors: {ci: {description: nothing}}\ndefaultRule: {evaluationMode: alwaysDeny}',
    '/attestors/ci',
    /has no keys, identities or pki; give at least one/,
  ],
  [
    'unknown trust root',
    `attestors: {ci: {trustRoot: private, identities: [{issuer: https://x, subject: me}]}}
defaultRule: {evaluationMode: alwaysDeny}`,
    '/attestors/ci/trustRoot',
    /unknown trust root "private"/,
  ],
  [
    'invalid identity regexp',
    `attestors: {ci: {identities: [{issuer: https://x, subjectRegExp: "(("}]}}
defaultRule: {evaluationMode: alwaysDeny}`,
    '/attestors/ci/identities/0/subjectRegExp',
    /invalid regular expression/,
  ],
  [
    'not a public key',
    'attestors: {ci: {keys: [{pem: hello}]}}\ndefaultRule: {evaluationMode: alwaysDeny}',
    '/attestors/ci/keys/0/pem',
    /not a PEM public key/,
  ],
  [
    'duplicate YAML keys',
    'defaultRule: {evaluationMode: alwaysDeny}\ndefaultRule: {evaluationMode: alwaysAllow}',
    '',
    /not valid YAML: Map keys must be unique/,
  ],
  ['YAML syntax', 'defaultRule: [', '', /not valid YAML/],
  [
    'signaturesRepository without a registry',
    `${ATTESTORS.replace('  scanner:', '    signaturesRepository: acme/signatures\n  scanner:')}defaultRule: {evaluationMode: alwaysDeny}`,
    '/attestors/ci/signaturesRepository',
    /"acme" is not a registry host .*; write registry\/repository, e\.g\. ghcr\.io\/acme\/signatures/,
  ],
  [
    'signaturesRepository with a tag',
    `${ATTESTORS.replace('  scanner:', '    signaturesRepository: ghcr.io/acme/signatures:latest\n  scanner:')}defaultRule: {evaluationMode: alwaysDeny}`,
    '/attestors/ci/signaturesRepository',
    /names a tag or digest; give the repository only/,
  ],
  [
    'signaturesRepository with an invalid repository name',
    `${ATTESTORS.replace('  scanner:', '    signaturesRepository: ghcr.io/Acme/signatures\n  scanner:')}defaultRule: {evaluationMode: alwaysDeny}`,
    '/attestors/ci/signaturesRepository',
    /"Acme\/signatures" is not a valid repository name/,
  ],
  [
    'alsoImageRepository without signaturesRepository',
    `${ATTESTORS.replace('  scanner:', '    alsoImageRepository: true\n  scanner:')}defaultRule: {evaluationMode: alwaysDeny}`,
    '/attestors/ci/alsoImageRepository',
    /applies only with signaturesRepository/,
  ],
];

for (const [title, body, path, problem] of invalid) {
  test(`invalid: ${title} → ${path || '/'}`, (t) => {
    const err = t.throws(() => parsePolicy(`${HEADER}${body}\n`, opts), { instanceOf: PolicyError });
    t.is(err.path, path, err.message);
    t.regex(err.problem, problem);
    t.is(err.file, 'policy.yaml');
    t.is(err.message, `policy.yaml: ${path || '/'}: ${err.problem}`);
  });
}

test('the apiVersion and kind are checked', (t) => {
  const version = t.throws(
    () => parsePolicy('apiVersion: pullgate.dev/v2\nkind: Policy\ndefaultRule: {evaluationMode: alwaysDeny}\n', opts),
    { instanceOf: PolicyError },
  );
  t.is(version.path, '/apiVersion');
  t.regex(version.problem, /must be "pullgate.dev\/v1" \(got the string "pullgate.dev\/v2"\)/);
  const kind = t.throws(
    () => parsePolicy('apiVersion: pullgate.dev/v1\ndefaultRule: {evaluationMode: alwaysDeny}\n', opts),
    { instanceOf: PolicyError },
  );
  t.is(kind.path, '/kind');
  t.regex(kind.problem, /is required/);
});

test('a document that is not a mapping is refused at the root', (t) => {
  const err = t.throws(() => parsePolicy('- just\n- a list\n', opts), { instanceOf: PolicyError });
  t.is(err.path, '');
  t.regex(err.problem, /must be a mapping \(got a list\)/);
});

test('loadPolicyFile reads key files relative to the policy file; replacing one changes the version', (t) => {
  const dir = tmp.make();
  writeFileSync(join(dir, 'ci.pub'), publicKeyPem());
  const file = join(dir, 'policy.yaml');
  writeFileSync(
    file,
    `${HEADER}attestors: {ci: {keys: [{file: ci.pub}]}}
defaultRule: {evaluationMode: requireAttestation, requireAttestors: [ci]}
`,
  );
  const first = loadPolicyFile(file);
  t.is(first.source, file);
  t.is(first.attestors.get('ci')?.keys.length, 1);
  t.is(loadPolicyFile(file).version, first.version);
  writeFileSync(join(dir, 'ci.pub'), publicKeyPem());
  t.not(
    loadPolicyFile(file).version,
    first.version,
    'a rotated key file is a new policy even if the text is unchanged',
  );
});

test('loadPolicyFile names the file it cannot read or the key file it cannot find', (t) => {
  const dir = tmp.make();
  const missing = t.throws(() => loadPolicyFile(join(dir, 'nope.yaml')), { instanceOf: PolicyError });
  t.regex(missing.message, /nope\.yaml: \/: cannot read the policy file \(ENOENT\)/);
  const file = join(dir, 'policy.yaml');
  writeFileSync(
    file,
    `${HEADER}attestors: {ci: {keys: [{file: keys/ci.pub}]}}\ndefaultRule: {evaluationMode: alwaysDeny}\n`,
  );
  const err = t.throws(() => loadPolicyFile(file), { instanceOf: PolicyError });
  t.is(err.path, '/attestors/ci/keys/0/file');
  t.regex(err.problem, /keys\/ci\.pub.*cannot read \(ENOENT, relative to /);
});

test('the embedded policy is fail-closed: nothing allowlisted, every image denied with a reason telling the admin what to do', (t) => {
  const p = parsePolicy(EMBEDDED_POLICY, { file: '<embedded policy>', baseDir: process.cwd() });
  t.is(p.source, EMBEDDED_SOURCE);
  t.deepEqual(p.doc.allowlist ?? [], []);
  t.deepEqual(p.doc.rules ?? [], []);
  t.is(p.doc.defaultRule.evaluationMode, 'alwaysDeny');
  for (const image of [
    { registry: 'docker.io', repository: 'library/nginx', tag: 'latest', digest: 'sha256:00' },
    { registry: 'registry.k8s.io', repository: 'pause', digest: 'sha256:01' },
  ]) {
    const v = evaluate(selectRule(p, image), new Map(), new Date());
    t.is(v.verdict, 'deny');
    t.is(v.rule, 'default');
    t.regex(v.reasons.join(' '), /no policy is configured.*set policy\.file/);
  }
});

test('config/policy.example.yaml is a valid policy', (t) => {
  const file = new URL('../../../config/policy.example.yaml', import.meta.url).pathname;
  const p = loadPolicyFile(file);
  t.deepEqual([...p.attestors.keys()].sort(), ['release-ci', 'scanner', 'security-team']);
  t.true((p.doc.rules ?? []).length >= 3);
  t.true(readFileSync(file, 'utf8').includes('docs/policy.md'));
});

test('CA and Rekor key files of PKI attestors and bare trust roots are part of the version and the rule hash', (t) => {
  const dir = tmp.make();
  const ca = (name: string) => {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        join(dir, `${name}.key`),
        '-out',
        join(dir, 'ca.pem'),
        '-days',
        '1',
        '-subj',
        `/CN=${name}`,
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign',
      ],
      { stdio: 'ignore' },
    );
  };
  ca('first');
  writeFileSync(join(dir, 'rekor.pub'), publicKeyPem());
  const file = join(dir, 'policy.yaml');
  writeFileSync(
    file,
    `${HEADER}trustRoots: {corp: {rekorKeys: [{file: rekor.pub}]}}
attestors:
  corp:
    pki: {caCertificates: [{file: ca.pem}], signers: [{email: ci@corp.test}]}
    trustRoot: corp
    signaturesRepository: registry.corp.test/signatures
defaultRule: {evaluationMode: requireAttestation, requireAttestors: [corp]}
`,
  );
  const image = { registry: 'registry.corp.test', repository: 'app', digest: `sha256:${'a'.repeat(64)}` };
  const fingerprint = () => {
    const p = loadPolicyFile(file);
    return { version: p.version, ruleHash: selectRule(p, image).ruleHash };
  };
  const first = fingerprint();
  t.deepEqual(loadPolicyFile(file).attestors.get('corp')?.locations, [
    { registry: 'registry.corp.test', repository: 'signatures' },
  ]);
  t.deepEqual(fingerprint(), first);
  ca('second');
  const afterCa = fingerprint();
  t.not(afterCa.version, first.version, 'a replaced CA file is a new policy');
  t.not(afterCa.ruleHash, first.ruleHash, 'and cached verdicts under the old CA are not reused');
  writeFileSync(join(dir, 'rekor.pub'), publicKeyPem());
  const afterRekor = fingerprint();
  t.not(afterRekor.ruleHash, afterCa.ruleHash, 'a replaced Rekor key file changes the rule hash');
});
