import test from 'ava';
import { probeFor, upstreamAnswer } from '../../../src/auth/passthrough.ts';

const D = `sha256:${'d'.repeat(64)}`;

test("the upstream's answer to the client's own HEAD: allowed, refused, missing, rate-limited, or fail closed", (t) => {
  const table: [number, string][] = [
    [200, 'allowed'],
    [307, 'allowed'], // a blob redirected to storage: the registry let the client in
    [302, 'allowed'],
    [401, 'refused'],
    [403, 'refused'],
    [404, 'missing'],
    [429, 'rate-limited'],
    [500, 'failed'],
    [502, 'failed'],
    [400, 'failed'],
    [405, 'failed'],
  ];
  for (const [status, answer] of table)
    t.is(upstreamAnswer(status), answer as ReturnType<typeof upstreamAnswer>, String(status));
});

test('what the upstream is asked, per endpoint', (t) => {
  t.deepEqual(probeFor('acme/app', { kind: 'manifest', reference: '1.0' }), {
    path: '/v2/acme/app/manifests/1.0',
    what: 'manifest 1.0',
  });
  t.deepEqual(probeFor('acme/app', { kind: 'blob', digest: D }), {
    path: `/v2/acme/app/blobs/${D}`,
    what: `blob ${D}`,
  });
  t.deepEqual(probeFor('acme/app', { kind: 'referrers', digest: D }).path, `/v2/acme/app/manifests/${D}`);
  t.deepEqual(probeFor('acme/app', { kind: 'tags' }).path, '/v2/acme/app/tags/list?n=1');
});
