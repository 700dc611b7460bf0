import test from 'ava';
import { checkCredentials, parseBasic, PASSWORD_MAX_BYTES } from '../../../src/auth/basic.ts';
import { parseScopes, MAX_SCOPES } from '../../../src/auth/scope.ts';

const basic = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;

test('Basic credentials: parsed, or refused with a reason, never thrown', (t) => {
  const table: [string | undefined, unknown][] = [
    [undefined, undefined],
    ['', undefined],
    [basic('alice:s3cret'), { username: 'alice', password: 's3cret' }],
    [basic('alice:pa:ss'), { username: 'alice', password: 'pa:ss' }],
    [`basic ${Buffer.from('a:b').toString('base64')}`, { username: 'a', password: 'b' }],
    [basic('alice'), /no ":"/],
    [basic(':pw'), /user name/],
    [basic('alice:'), /password is empty/],
    [basic('al\x01ce:pw'), /user name/],
    ['Bearer abc', /expected "Authorization: Basic/],
    ['Basic !!!', /expected/],
    [`Basic ${Buffer.from([0x61, 0x3a, 0xff, 0xfe]).toString('base64')}`, /UTF-8/],
    [basic(`u:${'x'.repeat(PASSWORD_MAX_BYTES + 1)}`), /longer/],
    [`Basic ${'A'.repeat(100_000)}`, /longer than/],
  ];
  for (const [header, expected] of table) {
    const got = parseBasic(header);
    if (expected instanceof RegExp) t.regex(got as string, expected, String(header).slice(0, 40));
    else t.deepEqual(got, expected, String(header).slice(0, 40));
  }
  t.regex(checkCredentials({ username: 'x'.repeat(257), password: 'p' }) as string, /1-256 bytes/);
});

test('scopes: several per parameter, names with ports, actions merged; malformed and too many refused', (t) => {
  t.deepEqual(parseScopes(['repository:ghcr.io/acme/app:pull']), [
    { type: 'repository', name: 'ghcr.io/acme/app', actions: ['pull'] },
  ]);
  t.deepEqual(parseScopes(['repository:registry.test:5000/app:pull,push repository:a/b:pull', 'repository:a/b:push']), [
    { type: 'repository', name: 'registry.test:5000/app', actions: ['pull', 'push'] },
    { type: 'repository', name: 'a/b', actions: ['pull', 'push'] },
  ]);
  t.deepEqual(parseScopes(['registry:catalog:*']), [{ type: 'registry', name: 'catalog', actions: ['*'] }]);
  t.deepEqual(parseScopes([]), []);
  t.deepEqual(parseScopes(['']), []);
  for (const bad of ['repository', 'repository:a/b', ':a:pull', 'Repo:a:pull', 'repository::pull', 'repository:a:PULL'])
    t.regex(parseScopes([bad]) as string, /TYPE:NAME:ACTIONS/, bad);
  t.regex(parseScopes([`repository:${'a'.repeat(600)}:pull`]) as string, /longer/);
  const many = Array.from({ length: MAX_SCOPES + 1 }, (_, i) => `repository:r/${i}:pull`).join(' ');
  t.regex(parseScopes([many]) as string, /more than/);
});
