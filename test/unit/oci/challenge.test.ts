import test from 'ava';
import { parseChallenges } from '../../../src/oci/challenge.ts';

test('parses a registry bearer challenge', (t) => {
  t.deepEqual(
    parseChallenges(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"',
    ),
    [
      {
        scheme: 'bearer',
        params: {
          realm: 'https://auth.docker.io/token',
          service: 'registry.docker.io',
          scope: 'repository:library/nginx:pull',
        },
      },
    ],
  );
});

test('parses several challenges, unquoted values and escapes', (t) => {
  const c = parseChallenges('Basic realm="a \\"b\\"", Bearer realm=https://x/token, error=insufficient_scope');
  t.is(c.length, 2);
  t.deepEqual(c[0], { scheme: 'basic', params: { realm: 'a "b"' } });
  t.deepEqual(c[1], { scheme: 'bearer', params: { realm: 'https://x/token', error: 'insufficient_scope' } });
});

test('garbage yields no usable challenge rather than an exception', (t) => {
  t.deepEqual(parseChallenges(''), []);
  t.deepEqual(parseChallenges('Bearer realm="unterminated'), [{ scheme: 'bearer', params: { realm: '' } }]);
});
