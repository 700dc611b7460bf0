import test from 'ava';
import { evaluate } from '../../../src/policy/evaluate.ts';
import type { SelectedRule } from '../../../src/policy/match.ts';
import type { ConditionSpec, RuleSpec } from '../../../src/policy/types.ts';
import { attestation, facts, signature } from './helpers.ts';

const NOW = new Date('2025-06-15T12:00:00Z');
const DAY = 86_400_000;
const ago = (ms: number) => new Date(NOW.getTime() - ms).toISOString();

const SLSA = 'https://slsa.dev/provenance/v1';
const VULN = 'https://cosign.sigstore.dev/attestation/vuln/v1';

function selected(rule: RuleSpec | null, over: Partial<SelectedRule> = {}): SelectedRule {
  return {
    name: 'rule:ghcr.io/acme/**',
    rule,
    ruleHash: 'h'.repeat(64),
    attestors: [],
    tagMode: 'pin',
    enforcementMode: rule?.enforcementMode ?? 'enforce',
    ...over,
  };
}

const requireSigs = (requireAttestors: RuleSpec['requireAttestors']): RuleSpec => ({
  evaluationMode: 'requireAttestation',
  requireAttestors,
});

test('an allowlisted image is admitted without evidence', (t) => {
  const v = evaluate(selected(null, { name: 'allowlist:registry.k8s.io/pause', tagMode: 'follow' }), new Map(), NOW);
  t.like(v, {
    verdict: 'allow',
    judgement: 'allow',
    rule: 'allowlist:registry.k8s.io/pause',
    tagMode: 'follow',
    enforcementMode: 'enforce',
  });
  t.deepEqual(v.reasons, ['allowlisted by "registry.k8s.io/pause": no evidence required']);
});

test('alwaysAllow and alwaysDeny ignore evidence', (t) => {
  const allow = evaluate(selected({ evaluationMode: 'alwaysAllow' }), new Map(), NOW);
  t.like(allow, { verdict: 'allow', judgement: 'allow' });
  t.regex(allow.reasons[0] as string, /rule "ghcr.io\/acme\/\*\*" admits every image/);
  const deny = evaluate(
    selected({ evaluationMode: 'alwaysDeny' }, { name: 'default' }),
    facts({ attestor: 'ci', verified: [signature('ci')] }),
    NOW,
  );
  t.like(deny, { verdict: 'deny', judgement: 'deny', rule: 'default' });
  t.regex(deny.reasons[0] as string, /the default rule denies every image/);
  const told = evaluate(selected({ evaluationMode: 'alwaysDeny' }, { message: 'configure a policy' }), new Map(), NOW);
  t.deepEqual(told.reasons, ['configure a policy']);
});

test('verdict carries the rule, its hash and tag mode', (t) => {
  const v = evaluate(selected({ evaluationMode: 'alwaysAllow' }, { ruleHash: 'abc', tagMode: 'deny' }), new Map(), NOW);
  t.like(v, { rule: 'rule:ghcr.io/acme/**', ruleHash: 'abc', tagMode: 'deny' });
});

test('[a, b]: every attestor needs a verified signature', (t) => {
  const rule = requireSigs(['ci', 'release']);
  const both = evaluate(
    selected(rule),
    facts(
      { attestor: 'ci', verified: [signature('ci', 'key sha256:c1')] },
      { attestor: 'release', verified: [signature('release')] },
    ),
    NOW,
  );
  t.is(both.verdict, 'allow');
  t.deepEqual(both.reasons, [
    'attestor "ci": signature verified (key sha256:c1, tag sha256-0.sig layer 0)',
    'attestor "release": signature verified (key sha256:aa, tag sha256-0.sig layer 0)',
  ]);
  const one = evaluate(
    selected(rule),
    facts({ attestor: 'ci', verified: [signature('ci')] }, { attestor: 'release' }),
    NOW,
  );
  t.is(one.verdict, 'deny');
  t.deepEqual(one.reasons, ['attestor "release": no signatures or attestations found for this image']);
});

test("a signature rejected for an attestor is explained with the verifier's reasons", (t) => {
  const f = facts({
    attestor: 'ci',
    examined: 2,
    rejected: [
      'tag sha256-0.sig layer 0: signed by a key not listed for attestor "ci"',
      'tag sha256-0.sig layer 1: signed by a key not listed for attestor "ci"',
    ],
  });
  const v = evaluate(selected(requireSigs(['ci'])), f, NOW);
  t.is(v.verdict, 'deny');
  t.deepEqual(v.reasons, [
    'attestor "ci": 2 signatures or attestations found, none verified: tag sha256-0.sig layer 0: signed by a key not listed for attestor "ci"; tag sha256-0.sig layer 1: signed by a key not listed for attestor "ci"',
  ]);
  const many = facts({ attestor: 'ci', rejected: ['r1', 'r2', 'r3', 'r4', 'r5'] });
  t.deepEqual(evaluate(selected(requireSigs(['ci'])), many, NOW).reasons, [
    'attestor "ci": 5 signatures or attestations found, none verified: r1; r2; r3; and 2 more',
  ]);
});

test('a verified attestation alone does not satisfy an attestor: it is not a signature', (t) => {
  const f = facts({ attestor: 'ci', verified: [attestation('ci', SLSA, {})] });
  const v = evaluate(selected(requireSigs(['ci'])), f, NOW);
  t.is(v.verdict, 'deny');
  t.regex(
    v.reasons[0] as string,
    /^attestor "ci": 1 attestation verified but no signature \(an attestation does not count as a signature/,
  );
});

test('an attestor without facts is not satisfied (fail closed)', (t) => {
  const v = evaluate(selected(requireSigs(['ci'])), new Map(), NOW);
  t.is(v.verdict, 'deny');
  t.deepEqual(v.reasons, ['attestor "ci": evidence was not verified for it']);
});

test('{anyOf, min}: at least min attestors must be satisfied', (t) => {
  const rule = requireSigs({ anyOf: ['a', 'b', 'c'], min: 2 });
  const one = evaluate(
    selected(rule),
    facts(
      { attestor: 'a', verified: [signature('a')] },
      { attestor: 'b' },
      { attestor: 'c', rejected: ['bad signature'] },
    ),
    NOW,
  );
  t.is(one.verdict, 'deny');
  t.deepEqual(one.reasons, [
    'signatures from at least 2 of "a", "b", "c" required, 1 found ("a")',
    'attestor "b": no signatures or attestations found for this image',
    'attestor "c": 1 signature or attestation found, none verified: bad signature',
  ]);
  const two = evaluate(
    selected(rule),
    facts(
      { attestor: 'a', verified: [signature('a')] },
      { attestor: 'b' },
      { attestor: 'c', verified: [signature('c')] },
    ),
    NOW,
  );
  t.is(two.verdict, 'allow');
  t.deepEqual(
    two.reasons.map((r) => r.split(':')[0]),
    ['attestor "a"', 'attestor "c"'],
  );
  const minOne = evaluate(
    selected(requireSigs({ anyOf: ['a', 'b'], min: 1 })),
    facts({ attestor: 'b', verified: [signature('b')] }),
    NOW,
  );
  t.is(minOne.verdict, 'allow');
});

function withConditions(conditions: ConditionSpec[], predicate: unknown, now = NOW) {
  const rule: RuleSpec = {
    evaluationMode: 'requireAttestation',
    attestations: [{ attestor: 'ci', predicateType: SLSA, conditions }],
  };
  return evaluate(selected(rule), facts({ attestor: 'ci', verified: [attestation('ci', SLSA, predicate)] }), now);
}

const label = `attestation ${SLSA} by "ci"`;
const predicate = {
  buildType: 'https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1',
  count: 3,
  flag: true,
  text: '3',
  list: [{ name: 'first' }, { name: 'second' }],
  at: ago(2 * DAY),
};

// [title, condition, failure message or undefined when it must hold]
const conditionCases: [string, ConditionSpec, string | undefined][] = [
  [
    'equals string',
    { path: 'buildType', equals: 'https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1' },
    undefined,
  ],
  [
    'equals string, different',
    { path: 'buildType', equals: 'https://example.com/x' },
    'buildType is "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1", expected "https://example.com/x"',
  ],
  ['equals number', { path: 'count', equals: 3 }, undefined],
  ['equals is type-strict', { path: 'text', equals: 3 }, 'text is "3", expected 3'],
  ['equals boolean', { path: 'flag', equals: true }, undefined],
  ['equals boolean, different', { path: 'flag', equals: false }, 'flag is true, expected false'],
  ['equals on an object', { path: 'list', equals: 'x' }, 'list is a list of 2, expected "x"'],
  ['oneOf', { path: 'count', oneOf: [1, 2, 3] }, undefined],
  ['oneOf, none', { path: 'text', oneOf: ['1', '2'] }, 'text is "3", expected one of "1", "2"'],
  ['matches', { path: 'buildType', matches: 'https://slsa-framework\\.github\\.io/.*' }, undefined],
  [
    'matches is anchored',
    { path: 'buildType', matches: 'github' },
    'buildType is "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1", expected a string matching github',
  ],
  ['matches needs a string', { path: 'count', matches: '3' }, 'count is 3, expected a string matching 3'],
  ['array index in the path', { path: 'list.1.name', equals: 'second' }, undefined],
  ['index out of range', { path: 'list.2.name', equals: 'second' }, 'list.2.name is missing'],
  ['missing field', { path: 'runDetails.builder.id', equals: 'x' }, 'runDetails.builder.id is missing'],
  ['lessThan', { path: 'count', lessThan: 4 }, undefined],
  ['lessThan, equal', { path: 'count', lessThan: 3 }, 'count is 3, expected less than 3'],
  ['lessThanOrEqual', { path: 'count', lessThanOrEqual: 3 }, undefined],
  ['lessThanOrEqual, above', { path: 'count', lessThanOrEqual: 2 }, 'count is 3, expected at most 2'],
  ['greaterThan', { path: 'count', greaterThan: 2 }, undefined],
  ['greaterThan, equal', { path: 'count', greaterThan: 3 }, 'count is 3, expected more than 3'],
  ['greaterThanOrEqual', { path: 'count', greaterThanOrEqual: 3 }, undefined],
  ['greaterThanOrEqual, below', { path: 'count', greaterThanOrEqual: 4 }, 'count is 3, expected at least 4'],
  [
    'numeric comparison of a non-number fails',
    { path: 'text', lessThan: 10 },
    'text is "3", expected a number less than 10',
  ],
  ['range in one condition', { path: 'count', greaterThan: 0, lessThan: 10 }, undefined],
  [
    'range in one condition, outside',
    { path: 'count', greaterThan: 0, lessThan: 2 },
    'count is 3, expected less than 2',
  ],
  ['maxAge', { path: 'at', maxAge: '3d' }, undefined],
  ['maxAge, too old', { path: 'at', maxAge: '1d12h' }, 'at is 2 days old, max 1d12h'],
  [
    'maxAge on a non-time',
    { path: 'text', maxAge: '7d' },
    'text is "3", expected an RFC 3339 time (e.g. 2025-01-31T12:00:00Z)',
  ],
  [
    'maxAge on a number',
    { path: 'count', maxAge: '7d' },
    'count is 3, expected an RFC 3339 time (e.g. 2025-01-31T12:00:00Z)',
  ],
];

for (const [title, condition, failure] of conditionCases) {
  test(`condition: ${title}`, (t) => {
    const v = withConditions([condition], predicate);
    if (failure === undefined) {
      t.is(v.verdict, 'allow', v.reasons.join('\n'));
      t.deepEqual(v.reasons, [`${label}: verified, 1 condition met (key sha256:aa, tag sha256-0.att layer 0)`]);
    } else {
      t.is(v.verdict, 'deny');
      t.deepEqual(v.reasons, [`${label}: ${failure}`]);
    }
  });
}

test('maxAge: a time in the future beyond clock skew fails, within it holds', (t) => {
  const soon = withConditions([{ path: 'at', maxAge: '1h' }], { at: new Date(NOW.getTime() + 60_000).toISOString() });
  t.is(soon.verdict, 'allow');
  const later = withConditions([{ path: 'at', maxAge: '1h' }], { at: '2025-06-15T15:00:00Z' });
  t.deepEqual(later.reasons, [`${label}: at is 3 hours in the future (2025-06-15T15:00:00Z)`]);
  const offset = withConditions([{ path: 'at', maxAge: '1h' }], { at: '2025-06-15T13:30:00+02:00' });
  t.is(offset.verdict, 'allow', 'time zone offsets are honoured');
});

test('all failing conditions of an attestation are reported', (t) => {
  const v = withConditions(
    [
      { path: 'count', equals: 1 },
      { path: 'flag', equals: true },
      { path: 'text', equals: 'x' },
    ],
    predicate,
  );
  t.deepEqual(v.reasons, [`${label}: count is 3, expected 1; text is "3", expected "x"`]);
});

// SLSA provenance v1 as the SLSA GitHub generator writes it (abridged).
function provenance(builder: string, repository: string) {
  return {
    buildDefinition: {
      buildType: 'https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1',
      externalParameters: { workflow: { ref: 'refs/tags/v1.2.0', repository, path: '.github/workflows/release.yml' } },
    },
    runDetails: {
      builder: { id: builder },
      metadata: { invocationId: 'https://github.com/acme/app/actions/runs/1/attempts/1' },
    },
  };
}

const BUILDER =
  'https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v2.0.0';
const slsaRule: RuleSpec = {
  evaluationMode: 'requireAttestation',
  requireAttestors: ['ci'],
  attestations: [
    {
      attestor: 'ci',
      predicateType: SLSA,
      conditions: [
        { path: 'runDetails.builder.id', equals: BUILDER },
        { path: 'buildDefinition.externalParameters.workflow.repository', matches: 'https://github\\.com/acme/.+' },
      ],
    },
  ],
};

test('SLSA provenance: built by builder X from a repository of org Y', (t) => {
  const good = facts({
    attestor: 'ci',
    verified: [signature('ci'), attestation('ci', SLSA, provenance(BUILDER, 'https://github.com/acme/app'))],
  });
  const v = evaluate(selected(slsaRule), good, NOW);
  t.is(v.verdict, 'allow', v.reasons.join('\n'));
  t.is(v.reasons.length, 2);
  t.regex(
    v.reasons[1] as string,
    /^attestation https:\/\/slsa\.dev\/provenance\/v1 by "ci": verified, 2 conditions met/,
  );

  const otherBuilder = facts({
    attestor: 'ci',
    verified: [signature('ci'), attestation('ci', SLSA, provenance('x', 'https://github.com/acme/app'))],
  });
  t.deepEqual(evaluate(selected(slsaRule), otherBuilder, NOW).reasons, [
    `attestation https://slsa.dev/provenance/v1 by "ci": runDetails.builder.id is "x", expected "${BUILDER}"`,
  ]);

  const fork = facts({
    attestor: 'ci',
    verified: [signature('ci'), attestation('ci', SLSA, provenance(BUILDER, 'https://github.com/evil/app'))],
  });
  t.deepEqual(evaluate(selected(slsaRule), fork, NOW).reasons, [
    'attestation https://slsa.dev/provenance/v1 by "ci": buildDefinition.externalParameters.workflow.repository is "https://github.com/evil/app", expected a string matching https://github\\.com/acme/.+',
  ]);
});

test('SLSA provenance: no provenance at all says what did verify', (t) => {
  const f = facts({
    attestor: 'ci',
    verified: [signature('ci'), attestation('ci', 'https://spdx.dev/Document', {})],
    rejected: ['tag sha256-0.att layer 1: statement names another digest'],
  });
  const v = evaluate(selected(slsaRule), f, NOW);
  t.is(v.verdict, 'deny');
  t.deepEqual(v.reasons, [
    'attestation https://slsa.dev/provenance/v1 by "ci": none verified (3 signatures or attestations examined; verified for it: signature, https://spdx.dev/Document; rejected: tag sha256-0.att layer 1: statement names another digest)',
  ]);
  const nothing = evaluate(selected(slsaRule), facts({ attestor: 'ci', examined: 0 }), NOW);
  t.deepEqual(nothing.reasons, [
    'attestor "ci": no signatures or attestations found for this image',
    'attestation https://slsa.dev/provenance/v1 by "ci": none found: the image has no signatures or attestations',
  ]);
});

// cosign's vuln predicate; the summary under scanner.result is what our scanner writes.
function scan(critical: number, finished: string) {
  return {
    invocation: { uri: 'https://github.com/acme/app/actions/runs/1' },
    scanner: {
      uri: 'pkg:github/aquasecurity/trivy@0.50.0',
      version: '0.50.0',
      result: { summary: { critical, high: 4 } },
    },
    metadata: { scanStartedOn: finished, scanFinishedOn: finished },
  };
}

const vulnRule: RuleSpec = {
  evaluationMode: 'requireAttestation',
  attestations: [
    {
      attestor: 'scanner',
      predicateType: VULN,
      conditions: [
        { path: 'scanner.result.summary.critical', equals: 0 },
        { path: 'metadata.scanFinishedOn', maxAge: '7d' },
      ],
    },
  ],
};

test('vulnerability scan: zero critical findings, not older than 7 days', (t) => {
  const judge = (...predicates: unknown[]) =>
    evaluate(
      selected(vulnRule),
      facts({
        attestor: 'scanner',
        verified: predicates.map((p, i) => attestation('scanner', VULN, p, `referrer sha256:${i}`)),
      }),
      NOW,
    );
  t.is(judge(scan(0, ago(DAY))).verdict, 'allow');
  t.deepEqual(judge(scan(0, ago(9 * DAY))).reasons, [
    `attestation ${VULN} by "scanner": metadata.scanFinishedOn is 9 days old, max 7d`,
  ]);
  t.deepEqual(judge(scan(2, ago(DAY))).reasons, [
    `attestation ${VULN} by "scanner": scanner.result.summary.critical is 2, expected 0`,
  ]);
  // A fresh scan among stale ones is enough.
  t.is(judge(scan(0, ago(30 * DAY)), scan(0, ago(2 * DAY))).verdict, 'allow');
  t.deepEqual(judge(scan(1, ago(DAY)), scan(0, ago(8 * DAY))).reasons, [
    `attestation ${VULN} by "scanner": none of 2 verified attestations meets the conditions: referrer sha256:0: scanner.result.summary.critical is 1, expected 0; ` +
      'referrer sha256:1: metadata.scanFinishedOn is 8 days old, max 7d',
  ]);
});

test('dry-run: a deny judgement is served, with reasons saying what would have been denied', (t) => {
  const rule: RuleSpec = { ...requireSigs(['ci']), enforcementMode: 'dryrun' };
  const v = evaluate(selected(rule), facts({ attestor: 'ci' }), NOW);
  t.like(v, { verdict: 'allow', judgement: 'deny', enforcementMode: 'dryrun' });
  t.deepEqual(v.reasons, ['dry-run: would deny: attestor "ci": no signatures or attestations found for this image']);
  const ok = evaluate(selected(rule), facts({ attestor: 'ci', verified: [signature('ci')] }), NOW);
  t.like(ok, { verdict: 'allow', judgement: 'allow', enforcementMode: 'dryrun' });
  t.false(ok.reasons.some((r) => r.startsWith('dry-run')));
  const enforced = evaluate(selected(requireSigs(['ci'])), facts({ attestor: 'ci' }), NOW);
  t.like(enforced, { verdict: 'deny', judgement: 'deny', enforcementMode: 'enforce' });
});

test('signatures and attestations must both hold; every failure is reported', (t) => {
  const v = evaluate(
    selected(slsaRule),
    facts({ attestor: 'ci', verified: [attestation('ci', SLSA, provenance('x', 'https://github.com/acme/app'))] }),
    NOW,
  );
  t.is(v.verdict, 'deny');
  t.is(v.reasons.length, 2);
  t.regex(v.reasons[0] as string, /^attestor "ci": 1 attestation verified but no signature/);
  t.regex(v.reasons[1] as string, /runDetails\.builder\.id is "x"/);
});
