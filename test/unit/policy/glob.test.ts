import test from 'ava';
import {
  compareSpecificity,
  GlobError,
  globCovers,
  globMatch,
  globsOverlap,
  parseGlob,
} from '../../../src/policy/glob.ts';

const matches: [string, string, boolean][] = [
  // `*` stays within one path segment.
  ['docker.io/library/*', 'docker.io/library/nginx:1.25', true],
  ['docker.io/library/*', 'docker.io/library/nginx@sha256:abc', true],
  ['docker.io/library/*', 'docker.io/library/team/nginx:1', false],
  ['docker.io/*/nginx', 'docker.io/library/nginx:1', true],
  ['docker.io/*/nginx', 'docker.io/a/b/nginx:1', false],
  ['docker.io/library/ngi*', 'docker.io/library/nginx:1', true],
  ['docker.io/library/*', 'docker.io/library/:1', true],
  // `**` crosses segments and may be empty.
  ['ghcr.io/acme/**', 'ghcr.io/acme/team/app:v1', true],
  ['ghcr.io/acme/**', 'ghcr.io/acme/app@sha256:abc', true],
  ['ghcr.io/acme/**', 'ghcr.io/acme:v1', false],
  ['ghcr.io/acme**', 'ghcr.io/acme/app:v1', true],
  ['ghcr.io/acme**', 'ghcr.io/acmecorp/app:v1', true],
  ['**', 'registry.example:5000/x/y:z', true],
  ['**/app', 'ghcr.io/a/b/app:1', true],
  ['**/app', 'ghcr.io/a/b/application:1', false],
  // `?` is one character, never `/`.
  ['quay.io/app?', 'quay.io/app1:latest', true],
  ['quay.io/app?', 'quay.io/app:latest', false],
  ['quay.io/app?', 'quay.io/app12:latest', false],
  ['quay.io/a?b', 'quay.io/a/b:1', false],
  // `.` is literal, not a regexp wildcard.
  ['docker.io/x/app', 'dockerxio/x/app:1', false],
  // A tag part matches tag pulls only.
  ['docker.io/library/nginx:1.*', 'docker.io/library/nginx:1.25', true],
  ['docker.io/library/nginx:1.*', 'docker.io/library/nginx:2.0', false],
  ['docker.io/library/nginx:1.*', 'docker.io/library/nginx@sha256:abc', false],
  ['docker.io/library/nginx:*', 'docker.io/library/nginx@sha256:abc', false],
  ['docker.io/library/nginx:latest', 'docker.io/library/nginx:latest', true],
  ['docker.io/library/nginx:latest', 'docker.io/library/nginx:latest2', false],
  // No tag part: every tag and digest pulls.
  ['docker.io/library/nginx', 'docker.io/library/nginx:anything', true],
  ['docker.io/library/nginx', 'docker.io/library/nginx@sha256:abc', true],
  ['docker.io/library/nginx', 'docker.io/library/nginx-extra:1', false],
  // A registry port is not a tag.
  ['localhost:5000/app', 'localhost:5000/app:v1', true],
  ['localhost:5000/app:v?', 'localhost:5000/app:v1', true],
  ['localhost:*/app', 'localhost:5000/app:v1', true],
  ['localhost:5000/app', 'localhost:5001/app:v1', false],
];

for (const [pattern, subject, expected] of matches) {
  test(`globMatch(${pattern}, ${subject}) is ${expected}`, (t) => {
    t.is(globMatch(pattern, subject), expected);
  });
}

const invalid: [string, RegExp][] = [
  ['', /empty/],
  ['docker.io', /has no "\/": .*docker\.io\/\*\*/],
  ['localhost:5000', /localhost:5000\/\*\*/],
  ['docker.io/app@sha256:abc', /digests cannot be matched/],
  ['docker.io/x/***', /ambiguous/],
  ['Docker.io/x', /lower-case/],
  ['docker.io/x:', /empty tag/],
  ['docker.io/x:**', /"\*\*" in the tag part/],
  ['docker.io/x y', /may contain only/],
  ['docker.io/x/[ab]', /may contain only/],
];

for (const [pattern, problem] of invalid) {
  test(`parseGlob rejects ${JSON.stringify(pattern)}`, (t) => {
    const err = t.throws(() => parseGlob(pattern), { instanceOf: GlobError });
    t.regex(err.message, problem);
  });
}

test('a tag may be upper-case while registry and repository may not', (t) => {
  t.true(globMatch('docker.io/x/app:Release-*', 'docker.io/x/app:Release-1'));
});

test('specificity: more literal characters first, then fewer wildcards', (t) => {
  const order = (a: string, b: string) => Math.sign(compareSpecificity(parseGlob(a), parseGlob(b)));
  t.is(order('docker.io/library/nginx', 'docker.io/library/*'), -1);
  t.is(order('docker.io/library/*', 'docker.io/library/nginx'), 1);
  // Equal literals: fewer wildcards wins.
  t.is(order('docker.io/library/ngin?', 'docker.io/library/ngin**'), 0);
  t.is(order('docker.io/library/ngin*', 'docker.io/library/ngin?*'), -1);
  // The `:` before a tag counts as a literal character.
  t.deepEqual([parseGlob('a/b:c').literals, parseGlob('a/b:c').wildcards], [5, 0]);
  t.deepEqual([parseGlob('a/**:v*').literals, parseGlob('a/**:v*').wildcards], [4, 2]);
});

test('covers: every image the inner pattern matches is matched by the outer one', (t) => {
  const covers = (outer: string, inner: string) => globCovers(parseGlob(outer), parseGlob(inner));
  t.true(covers('docker.io/**', 'docker.io/library/*'));
  t.true(covers('docker.io/library/*', 'docker.io/library/nginx'));
  t.true(covers('docker.io/library/*', 'docker.io/library/nginx:1.*'));
  t.true(covers('x/a*', 'x/a?*'));
  t.false(covers('docker.io/library/*', 'docker.io/**'));
  t.false(covers('docker.io/*', 'docker.io/**'));
  // A tagged pattern misses the digest pulls an untagged one matches.
  t.false(covers('docker.io/library/nginx:*', 'docker.io/library/nginx'));
  t.true(covers('docker.io/library/nginx:*', 'docker.io/library/nginx:1.25'));
  t.false(covers('docker.io/library/nginx:1.*', 'docker.io/library/nginx:*'));
});

test('overlap: an example image both patterns match, or null', (t) => {
  const overlap = (a: string, b: string) => globsOverlap(parseGlob(a), parseGlob(b));
  const both = overlap('ghcr.io/acme/*', 'ghcr.io/*/app');
  t.is(typeof both, 'string');
  t.true(globMatch('ghcr.io/acme/*', both as string) && globMatch('ghcr.io/*/app', both as string), String(both));
  t.is(overlap('ghcr.io/acme/*', 'ghcr.io/other/*'), null);
  t.is(overlap('ghcr.io/acme/app:v1', 'ghcr.io/acme/app:v2'), null);
  const tagged = overlap('ghcr.io/acme/app', 'ghcr.io/acme/*:v?');
  t.true(
    typeof tagged === 'string' && globMatch('ghcr.io/acme/app', tagged) && globMatch('ghcr.io/acme/*:v?', tagged),
    String(tagged),
  );
});
