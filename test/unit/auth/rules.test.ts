import test from 'ava';
import { grantsFor } from '../../../src/auth/grants.ts';
import { parseRepositoryPattern, parseSubjectPattern, pullRule, type AccessRule } from '../../../src/auth/rules.ts';
import type { Glob } from '../../../src/policy/glob.ts';
import type { Identity } from '../../../src/auth/types.ts';

function rule(identities: string[], repositories: string[]): AccessRule {
  return {
    subjects: identities.map((i) => {
      const p = parseSubjectPattern(i);
      if (typeof p === 'string') throw new Error(p);
      return p;
    }),
    repositories: repositories.map((r) => parseRepositoryPattern(r) as Glob),
  };
}

const alice: Identity = { name: 'alice', kind: 'user', groups: ['developers', 'system:authenticated'] };
const node: Identity = { name: 'node-pool-a', kind: 'user', groups: ['nodes', 'system:authenticated'] };
const builder: Identity = {
  name: 'system:serviceaccount:team-a:builder',
  kind: 'serviceaccount',
  groups: ['system:serviceaccounts', 'system:serviceaccounts:team-a', 'system:authenticated'],
  serviceAccount: { namespace: 'team-a', name: 'builder' },
};
const other: Identity = {
  name: 'system:serviceaccount:team-b:default',
  kind: 'serviceaccount',
  groups: ['system:serviceaccounts', 'system:serviceaccounts:team-b', 'system:authenticated'],
  serviceAccount: { namespace: 'team-b', name: 'default' },
};

const rules = [
  rule(['group:nodes'], ['**']),
  rule(['alice', 'user:bob'], ['ghcr.io/acme/**', 'docker.io/library/*']),
  rule(['namespace:team-a'], ['ghcr.io/acme/team-a/**']),
  rule(['serviceaccount:team-b/ci-*'], ['ghcr.io/acme/team-b/**']),
  rule(['system:serviceaccount:*:default'], ['registry.k8s.io/**']),
];

test('rules: who may pull which upstream/repository; default deny', (t) => {
  const table: [Identity, string, number | undefined][] = [
    [node, 'ghcr.io/acme/secret', 0],
    [node, 'quay.io/anything/at/all', 0],
    [alice, 'ghcr.io/acme/app', 1],
    [alice, 'ghcr.io/acme/team-a/api', 1],
    [alice, 'docker.io/library/nginx', 1],
    [alice, 'docker.io/bitnami/nginx', undefined],
    [alice, 'ghcr.io/other/app', undefined],
    [alice, 'ghcr.io/acme', undefined],
    [builder, 'ghcr.io/acme/team-a/api', 2],
    [builder, 'ghcr.io/acme/team-b/api', undefined],
    [builder, 'ghcr.io/acme/app', undefined],
    [other, 'ghcr.io/acme/team-b/api', undefined],
    [
      { ...other, name: 'system:serviceaccount:team-b:ci-7', serviceAccount: { namespace: 'team-b', name: 'ci-7' } },
      'ghcr.io/acme/team-b/x',
      3,
    ],
    [other, 'registry.k8s.io/pause', 4],
    [builder, 'registry.k8s.io/pause', undefined],
    [{ name: 'mallory', kind: 'user', groups: ['system:authenticated'] }, 'ghcr.io/acme/app', undefined],
    // a user named like a group or a service account gets nothing from it
    [{ name: 'nodes', kind: 'user', groups: [] }, 'ghcr.io/acme/app', undefined],
    [{ name: 'team-a', kind: 'user', groups: [] }, 'ghcr.io/acme/team-a/api', undefined],
  ];
  for (const [id, name, expected] of table) t.is(pullRule(rules, id, name), expected, `${id.name} → ${name}`);
  t.is(pullRule([], node, 'ghcr.io/acme/app'), undefined, 'no rules: nobody');
});

test('rule patterns: malformed subjects and repository patterns are refused with the fix', (t) => {
  const subjects: [string, RegExp][] = [
    ['group:', /nothing after/],
    ['serviceaccount:team-a', /NAMESPACE\/NAME/],
    ['serviceaccount:a/b/c', /NAMESPACE\/NAME/],
    ['alice smith', /may contain only/],
    ['(.*)', /may contain only/],
  ];
  for (const [p, e] of subjects) t.regex(parseSubjectPattern(p) as string, e, p);
  const repos: [string, RegExp][] = [
    ['ghcr.io/acme/app:1.0', /tag part/],
    ['acme', /has no "\/"/],
    ['ghcr.io/Acme/*', /lower-case/],
    ['ghcr.io/a@sha256:x', /digests/],
  ];
  for (const [p, e] of repos) t.regex(parseRepositoryPattern(p) as string, e, p);
  // "*" stays within the pattern: no regular-expression syntax leaks in
  const dotted = rule(['a.b'], ['ghcr.io/x/*']);
  t.is(pullRule([dotted], { name: 'aXb', kind: 'user', groups: [] }, 'ghcr.io/x/y'), undefined);
});

test('grants: pull for each allowed scope asked for pull; nothing else, ever', (t) => {
  const pt = new Set(['ghcr.io']);
  const scopes = [
    { name: 'ghcr.io/acme/app', upstream: 'ghcr.io', actions: ['pull'] },
    { name: 'ghcr.io/acme/app2', upstream: 'ghcr.io', actions: ['pull', 'push'] },
    { name: 'ghcr.io/other/x', upstream: 'ghcr.io', actions: ['pull'] },
    { name: 'docker.io/library/nginx', upstream: 'docker.io', actions: ['push'] },
    { name: 'docker.io/library/redis', upstream: 'docker.io', actions: ['*'] },
  ];
  t.deepEqual(grantsFor(rules, { kind: 'identity', identity: alice }, scopes, pt), [
    { name: 'ghcr.io/acme/app', actions: ['pull'] },
    { name: 'ghcr.io/acme/app2', actions: ['pull'] },
    { name: 'ghcr.io/other/x', actions: [] },
    { name: 'docker.io/library/nginx', actions: [] },
    { name: 'docker.io/library/redis', actions: ['pull'] },
  ]);
  // pass-through credentials: the pass-through upstream's repositories (checked there per request), no other
  t.deepEqual(grantsFor(rules, { kind: 'pass-through' }, scopes, pt), [
    { name: 'ghcr.io/acme/app', actions: ['pull'] },
    { name: 'ghcr.io/acme/app2', actions: ['pull'] },
    { name: 'ghcr.io/other/x', actions: ['pull'] },
    { name: 'docker.io/library/nginx', actions: [] },
    { name: 'docker.io/library/redis', actions: [] },
  ]);
});
