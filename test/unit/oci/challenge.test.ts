import test from 'ava';
import { parseChallenges, parseTokenResponse } from '../../../src/oci/challenge.ts';

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

test('token responses: token or access_token, expires_in less a margin, invalid JSON named', (t) => {
  const rows: [string, ReturnType<typeof parseTokenResponse>][] = [
    ['{"token":"a","expires_in":300}', { token: 'a', ttlMs: 290_000 }],
    ['{"access_token":"b"}', { token: 'b', ttlMs: 50_000 }],
    ['{"token":"a","access_token":"b","expires_in":5}', { token: 'a', ttlMs: 1_000 }],
    ['{"token":7,"expires_in":-3}', { ttlMs: 50_000 }],
    ['null', { ttlMs: 0 }],
    ['not json', 'invalid'],
  ];
  for (const [body, want] of rows) t.deepEqual(parseTokenResponse(Buffer.from(body)), want, body);
});
