import test from 'ava';
import { readFileSync } from 'node:fs';
import { lintPolicy, type LintFinding } from '../../../src/policy/lint.ts';
import { publicKeyPem } from './helpers.ts';

const opts = { file: 'policy.yaml', baseDir: '/nonexistent' };
const KEY = JSON.stringify(publicKeyPem());
const HEADER = `apiVersion: pullgate.dev/v1
kind: Policy
attestors:
  ci: {keys: [{pem: ${KEY}}]}
`;

function lint(body: string, header = HEADER): LintFinding[] {
  return lintPolicy(`${header}${body}`, opts);
}

function at(findings: LintFinding[], path: string): LintFinding[] {
  return findings.filter((f) => f.path === path);
}

test('a clean policy has no findings', (t) => {
  t.deepEqual(
    lint(`defaultRule: {evaluationMode: requireAttestation, requireAttestors: [ci]}
rules:
  - {match: "ghcr.io/acme/**", evaluationMode: requireAttestation, requireAttestors: [ci], tagMode: follow}
  - {match: "docker.io/library/*", evaluationMode: alwaysDeny}
`),
    [],
  );
});

test('errors: all problems are reported at once, with their paths', (t) => {
  const findings = lint(`defaultRule: {evaluationMode: requireAttestation}
rules:
  - {match: "docker.io", evaluationMode: requireAttestation, requireAttestors: [ci, cd]}
  - match: ghcr.io/**
    evaluationMode: requireAttestation
    attestations: [{attestor: ci, predicateType: x, conditions: [{path: a, maxAge: soon}]}]
`);
  t.deepEqual(
    findings.filter((f) => f.level === 'error').map((f) => f.path),
    [
      '/defaultRule/evaluationMode',
      '/rules/0/match',
      '/rules/0/requireAttestors/1',
      '/rules/1/attestations/0/conditions/0/maxAge',
    ],
  );
});

test('schema errors stop the analysis: no warnings on a document that did not parse', (t) => {
  const findings = lint('defaultRule: {evaluationMode: alwaysAllow, enforcementMode: dryrun, extra: 1}\n');
  t.deepEqual(findings, [{ level: 'error', path: '/defaultRule/extra', message: findings[0]?.message as string }]);
  t.regex(findings[0]?.message as string, /unknown field/);
});

test('a rule whose images are all allowlisted never applies', (t) => {
  const findings = lint(`allowlist: ["docker.io/library/**"]
defaultRule: {evaluationMode: alwaysDeny}
rules:
  - {match: "docker.io/library/nginx", evaluationMode: requireAttestation, requireAttestors: [ci]}
  - {match: "docker.io/**", evaluationMode: requireAttestation, requireAttestors: [ci]}
`);
  const nginx = at(findings, '/rules/0/match');
  t.is(nginx.length, 1);
  t.is(nginx[0]?.level, 'warning');
  t.regex(nginx[0]?.message as string, /never applies: .*allowlisted by \/allowlist\/0 \("docker.io\/library\/\*\*"\)/);
  t.deepEqual(at(findings, '/rules/1/match'), [], 'a rule that is only partly allowlisted still applies');
});

test('a rule covered by a more specific rule never applies', (t) => {
  const findings = lint(`defaultRule: {evaluationMode: alwaysDeny}
rules:
  - {match: "ghcr.io/x?*", evaluationMode: alwaysDeny}
  - {match: "ghcr.io/x*", evaluationMode: requireAttestation, requireAttestors: [ci]}
`);
  // x* has fewer wildcards than x?* with the same literals: it wins, and matches everything x?* does.
  const shadowed = at(findings, '/rules/0/match');
  t.is(shadowed.length, 1);
  t.regex(shadowed[0]?.message as string, /never applies: \/rules\/1\/match \("ghcr.io\/x\*"\) takes precedence/);
});

test('equally specific overlapping rules: the later one is flagged with an example image', (t) => {
  const findings = lint(`defaultRule: {evaluationMode: alwaysDeny}
rules:
  - {match: "ghcr.io/acme/*", evaluationMode: requireAttestation, requireAttestors: [ci]}
  - {match: "ghcr.io/*/acme", evaluationMode: alwaysAllow}
  - {match: "ghcr.io/other/*", evaluationMode: alwaysAllow}
`);
  const later = at(findings, '/rules/1/match');
  t.is(later.length, 1);
  t.regex(
    later[0]?.message as string,
    /as specific as \/rules\/0\/match \("ghcr.io\/acme\/\*"\): for images both match, e\.g\. ghcr\.io\/acme\/acme@sha256:…, the earlier rule applies/,
  );
  t.deepEqual(at(findings, '/rules/0/match'), []);
  t.deepEqual(at(findings, '/rules/2/match'), [], 'equally specific but disjoint: nothing to say');
});

test('tag-specific rules are flagged: digest pulls bypass them', (t) => {
  const findings = lint(`defaultRule: {evaluationMode: alwaysDeny}
rules:
  - {match: "ghcr.io/acme/app:v*", evaluationMode: requireAttestation, requireAttestors: [ci]}
`);
  const tagged = at(findings, '/rules/0/match');
  t.is(tagged.length, 1);
  t.regex(
    tagged[0]?.message as string,
    /matches pulls by tag only: a pull by digest \(ghcr\.io\/acme\/app@sha256:…\) never matches .* add a rule "ghcr\.io\/acme\/app"/,
  );
});

test('dry-run rules, fail-open defaults and ignored requirements are flagged', (t) => {
  const findings = lint(`defaultRule: {evaluationMode: alwaysAllow, enforcementMode: dryrun, requireAttestors: [ci]}
rules:
  - {match: "ghcr.io/**", evaluationMode: requireAttestation, enforcementMode: dryrun, requireAttestors: [ci]}
`);
  t.regex(
    at(findings, '/defaultRule/enforcementMode')[0]?.message as string,
    /dry-run: images this rule would deny are served anyway/,
  );
  t.regex(at(findings, '/rules/0/enforcementMode')[0]?.message as string, /dry-run/);
  t.regex(at(findings, '/defaultRule/evaluationMode')[0]?.message as string, /fail-open/);
  t.regex(
    at(findings, '/defaultRule/requireAttestors')[0]?.message as string,
    /ignored: evaluationMode is alwaysAllow/,
  );
  t.true(findings.every((f) => f.level === 'warning'));
});

test('unused attestors and trust roots are flagged; duplicate and redundant allowlist entries too', (t) => {
  const findings = lint(
    `trustRoots:
  public-good: {builtin: sigstore-public-good}
  spare: {builtin: sigstore-public-good}
allowlist: ["registry.k8s.io/**", "registry.k8s.io/pause", "quay.io/a", "quay.io/a"]
defaultRule: {evaluationMode: alwaysDeny}
`,
    `${HEADER}  unused: {identities: [{issuer: https://accounts.google.com, subject: me@example.com}]}
`,
  );
  t.regex(at(findings, '/attestors/ci')[0]?.message as string, /attestor "ci" is not referenced by any rule/);
  t.regex(at(findings, '/attestors/unused')[0]?.message as string, /not referenced/);
  t.regex(at(findings, '/trustRoots/spare')[0]?.message as string, /trust root "spare" is not used/);
  t.deepEqual(at(findings, '/trustRoots/public-good'), [], 'the default trust root is used by keyless attestors');
  t.regex(at(findings, '/allowlist/1')[0]?.message as string, /redundant: \/allowlist\/0 \("registry.k8s.io\/\*\*"\)/);
  t.deepEqual(at(findings, '/allowlist/2'), [], 'the first of two duplicates stays');
  t.regex(at(findings, '/allowlist/3')[0]?.message as string, /redundant: \/allowlist\/2/);
});

test('a pattern that starts with a Docker Hub namespace instead of a registry is flagged', (t) => {
  const findings = lint(`allowlist: ["library/nginx", "localhost/x", "registry:5000/x", "*/x"]
defaultRule: {evaluationMode: alwaysDeny}
rules:
  - {match: "acme/app", evaluationMode: requireAttestation, requireAttestors: [ci]}
`);
  t.regex(
    at(findings, '/allowlist/0')[0]?.message as string,
    /"library" does not look like a registry host: .* write docker\.io\/library\/nginx/,
  );
  t.regex(at(findings, '/rules/0/match')[0]?.message as string, /write docker\.io\/acme\/app/);
  t.deepEqual(
    [1, 2, 3].flatMap((i) => at(findings, `/allowlist/${i}`)).filter((f) => f.message.includes('registry host')),
    [],
  );
});

test('a key or trust root takes exactly one source', (t) => {
  const findings = lintPolicy(
    `apiVersion: pullgate.dev/v1
kind: Policy
trustRoots: {private: {}}
attestors: {ci: {keys: [{pem: ${KEY}, file: ci.pub}]}}
defaultRule: {evaluationMode: requireAttestation, requireAttestors: [ci]}
`,
    opts,
  );
  t.deepEqual(
    findings.map((f) => [f.level, f.path, f.message]),
    [
      ['error', '/attestors/ci/keys/0', 'attestor "ci": keys[0]: give exactly one of pem or file'],
      [
        'error',
        '/trustRoots/private',
        'trust root "private": give exactly one of builtin, file, or the parts rekorKeys, fulcioCertificates, ctlogKeys (got none)',
      ],
      ['warning', '/trustRoots/private', 'trust root "private" is not used by any attestor'],
    ],
  );
});

test('the example policy lints with only its deliberate dry-run warning', (t) => {
  const file = new URL('../../../config/policy.example.yaml', import.meta.url);
  const findings = lintPolicy(readFileSync(file, 'utf8'), {
    file: file.pathname,
    baseDir: new URL('.', file).pathname,
  });
  t.deepEqual(
    findings.map((f) => [f.level, f.path]),
    [['warning', '/rules/2/enforcementMode']],
  );
});
