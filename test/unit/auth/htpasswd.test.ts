import test from 'ava';
import bcrypt from 'bcryptjs';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Authenticator } from '../../../src/auth/authenticate.ts';
import { BcryptPool, type PasswordChecker } from '../../../src/auth/bcrypt-pool.ts';
import { parseHtpasswd } from '../../../src/auth/htpasswd.ts';
import { createLogger } from '../../../src/ops/log.ts';
import { makeClusterIssuer } from '../../harness/kubernetes-tokens.ts';

const HASH = bcrypt.hashSync('s3cret', 4);
const dir = mkdtempSync(join(tmpdir(), 'pullgate-auth-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

test('htpasswd: bcrypt entries only, each other line refused by number with the fix', (t) => {
  const users = parseHtpasswd(`# comment\n\nalice:${HASH}\r\nbob:${HASH.replace('$2b$', '$2y$')}\n`);
  t.deepEqual([...(users as Map<string, string>).keys()], ['alice', 'bob']);
  const table: [string, RegExp][] = [
    ['alice:$apr1$abc$def', /line 1 \(user alice\): not a bcrypt hash.*htpasswd -B/],
    ['alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=', /not a bcrypt hash/],
    ['alice:plaintext', /not a bcrypt hash/],
    [`ok:${HASH}\nnocolon`, /line 2: expected USER:HASH/],
    [`:${HASH}`, /expected USER:HASH/],
    [`alice:${HASH}\nalice:${HASH}`, /listed twice/],
    [`alice:${HASH.replace('$04$', '$15$')}`, /cost 15/],
    [`alice:${HASH.replace('$04$', '$03$')}`, /cost 3/],
  ];
  for (const [text, expected] of table) t.regex(parseHtpasswd(text) as string, expected, text.slice(0, 30));
});

test('bcrypt runs in a worker: right and wrong passwords, a bounded queue, the event loop free meanwhile', async (t) => {
  const pool = new BcryptPool({ maxQueue: 4 });
  t.teardown(() => pool.close());
  t.true(await pool.compare('s3cret', HASH));
  t.false(await pool.compare('wrong', HASH));
  t.false(await pool.compare('x', 'not-a-hash'));
  const slow = bcrypt.hashSync('pw', 10);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const checks = Array.from({ length: 4 }, () => pool.compare('pw', slow));
  const overflow = await pool.compare('pw', slow).catch((e: Error) => e);
  t.regex((overflow as Error).message, /too many password checks/);
  t.deepEqual(await Promise.all(checks), [true, true, true, true]);
  clearInterval(timer);
  t.true(ticks > 10, `the event loop ran meanwhile (${ticks} ticks)`);
});

test('authenticator: htpasswd users with groups, service-account tokens as passwords, results cached', async (t) => {
  const file = join(dir, 'htpasswd');
  writeFileSync(file, `alice:${HASH}\n`);
  const jwksFile = join(dir, 'jwks.json');
  const cluster = makeClusterIssuer();
  writeFileSync(jwksFile, JSON.stringify(cluster.jwks));
  let compares = 0;
  const real = new BcryptPool();
  t.teardown(() => real.close());
  const counting: PasswordChecker = {
    compare: (p, h) => {
      compares++;
      return real.compare(p, h);
    },
    close: () => real.close(),
  };
  const auth = new Authenticator(
    {
      service: 'pullgate',
      token: { ttlSeconds: 300 },
      htpasswd: { file },
      groups: { developers: ['alice'] },
      kubernetes: { issuer: cluster.issuer, audiences: ['pullgate'], jwksFile },
      rules: [],
    },
    counting,
    createLogger('silent'),
  );
  t.deepEqual(await auth.identify({ username: 'alice', password: 's3cret' }), {
    identity: { name: 'alice', kind: 'user', groups: ['developers', 'system:authenticated'] },
  });
  await auth.identify({ username: 'alice', password: 's3cret' });
  t.is(compares, 1, 'the second check is answered from the cache');
  const reason = async (c: { username: string; password: string }) => {
    const v = await auth.identify(c);
    return 'reason' in v ? v.reason : `identified as ${v.identity.name}`;
  };
  t.regex(await reason({ username: 'alice', password: 'nope' }), /wrong password/);
  t.regex(await reason({ username: 'nobody', password: 'x' }), /unknown user/);
  t.is(compares, 3, 'unknown users cost a comparison too: timing does not tell who exists');
  const token = cluster.token({ namespace: 'ci', serviceAccount: 'runner' });
  t.like(await auth.identify({ username: 'anything', password: token }), {
    identity: { name: 'system:serviceaccount:ci:runner', kind: 'serviceaccount' },
  });
  t.regex(
    await reason({ username: 'x', password: cluster.token({ namespace: 'ci', serviceAccount: 'r', audience: 'api' }) }),
    /service-account token: audience/,
  );
});

test('a missing or invalid htpasswd at start names the key', (t) => {
  const base = { service: 'pullgate', token: { ttlSeconds: 300 }, groups: {}, rules: [] };
  const pool = new BcryptPool();
  t.teardown(() => pool.close());
  t.throws(
    () => new Authenticator({ ...base, htpasswd: { file: join(dir, 'absent') } }, pool, createLogger('silent')),
    {
      message: /auth\.htpasswd\.file.*cannot read/,
    },
  );
  const bad = join(dir, 'md5');
  writeFileSync(bad, 'alice:$apr1$x$y\n');
  t.throws(() => new Authenticator({ ...base, htpasswd: { file: bad } }, pool, createLogger('silent')), {
    message: /not a bcrypt hash/,
  });
});
