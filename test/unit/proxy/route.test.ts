import test from 'ava';
import { RegistryError, type ErrorCode } from '../../../src/oci/errors.ts';
import { httpStatus } from '../../../src/proxy/http-errors.ts';
import { routeRequest, type UpstreamNames } from '../../../src/proxy/route.ts';

const names = (defaultUpstream?: string): UpstreamNames => {
  const map: Record<string, string> = {
    'docker.io': 'docker.io',
    'index.docker.io': 'docker.io',
    'ghcr.io': 'ghcr.io',
    'registry.test:5000': 'registry.test:5000',
    hub: 'docker.io',
  };
  return { canonical: (n) => map[n], defaultUpstream };
};
const D = `sha256:${'a'.repeat(64)}`;

function rejects(t: import('ava').ExecutionContext, fn: () => unknown, status: number, code: ErrorCode) {
  const err = t.throws(fn, { instanceOf: RegistryError }) as RegistryError;
  t.is(httpStatus(err), status, err.message);
  t.is(err.code, code, err.message);
  return err;
}

test('path prefix selects the upstream and strips it from the repository', (t) => {
  const r = routeRequest('/v2/ghcr.io/acme/app/manifests/1.0', undefined, names());
  t.deepEqual(r, {
    upstream: 'ghcr.io',
    repository: 'acme/app',
    clientName: 'ghcr.io/acme/app',
    endpoint: { kind: 'manifest', reference: '1.0' },
  });
});

test('Docker Hub single-segment names become library/ names, also through an alias', (t) => {
  t.is(routeRequest('/v2/docker.io/nginx/manifests/latest', undefined, names()).repository, 'library/nginx');
  const viaAlias = routeRequest('/v2/hub/nginx/blobs/' + D, undefined, names());
  t.is(viaAlias.upstream, 'docker.io');
  t.is(viaAlias.repository, 'library/nginx');
  t.is(routeRequest('/v2/docker.io/bitnami/redis/tags/list', undefined, names()).repository, 'bitnami/redis');
});

test('containerd ns parameter selects the upstream; the path is the repository', (t) => {
  const r = routeRequest(`/v2/demo/signed/manifests/${D}`, 'registry.test:5000', names());
  t.is(r.upstream, 'registry.test:5000');
  t.is(r.repository, 'demo/signed');
  t.is(r.ns, 'registry.test:5000');
  t.is(routeRequest('/v2/nginx/manifests/1', 'index.docker.io', names()).repository, 'library/nginx');
});

test('ns together with the same registry as path prefix (containerd override_path) names the repository once', (t) => {
  const r = routeRequest('/v2/docker.io/library/nginx/manifests/1', 'docker.io', names());
  t.is(r.upstream, 'docker.io');
  t.is(r.repository, 'library/nginx');
  t.is(routeRequest('/v2/docker.io/nginx/manifests/1', 'docker.io', names()).repository, 'library/nginx');
  // a prefix naming another registry than ns stays part of the repository name at the ns registry
  t.deepEqual(
    [routeRequest('/v2/ghcr.io/a/manifests/1', 'docker.io', names())].map((r) => [r.upstream, r.repository]),
    [['docker.io', 'ghcr.io/a']],
  );
});

test('a host that is not allowlisted is denied, by prefix and by ns', (t) => {
  const a = rejects(
    t,
    () => routeRequest('/v2/evil.example/x/manifests/1', undefined, names('docker.io')),
    403,
    'DENIED',
  );
  t.regex(a.message, /upstream not allowed.*evil\.example/);
  rejects(t, () => routeRequest('/v2/x/manifests/1', 'evil.example', names()), 403, 'DENIED');
  rejects(t, () => routeRequest('/v2/localhost/x/manifests/1', undefined, names()), 403, 'DENIED');
});

test('default upstream applies to names without a registry; without one the request is denied', (t) => {
  t.is(routeRequest('/v2/library/nginx/manifests/1', undefined, names('docker.io')).repository, 'library/nginx');
  const err = rejects(t, () => routeRequest('/v2/library/nginx/manifests/1', undefined, names()), 403, 'DENIED');
  t.regex(err.message, /defaultUpstream/);
});

test('invalid names, traversal and encoded characters are refused', (t) => {
  rejects(t, () => routeRequest('/v2/ghcr.io/Acme/app/manifests/1', undefined, names()), 400, 'NAME_INVALID');
  rejects(t, () => routeRequest('/v2/ghcr.io/acme/../app/manifests/1', undefined, names()), 400, 'NAME_INVALID');
  rejects(t, () => routeRequest('/v2/ghcr.io/acme%2Fapp/manifests/1', undefined, names()), 400, 'NAME_INVALID');
  rejects(t, () => routeRequest('/v2/ghcr.io/acme/app%2e%2e/manifests/1', undefined, names()), 400, 'NAME_INVALID');
  rejects(t, () => routeRequest('/v2/ghcr.io//app/manifests/1', undefined, names()), 400, 'NAME_INVALID');
  rejects(t, () => routeRequest('/v2/ghcr.io/manifests/1', undefined, names()), 400, 'NAME_INVALID');
});

test('references and digests are validated', (t) => {
  rejects(t, () => routeRequest('/v2/ghcr.io/a/manifests/-bad', undefined, names()), 400, 'MANIFEST_INVALID');
  rejects(t, () => routeRequest('/v2/ghcr.io/a/manifests/md5:abcd', undefined, names()), 400, 'MANIFEST_INVALID');
  const e = rejects(
    t,
    () => routeRequest(`/v2/ghcr.io/a/blobs/sha1:${'a'.repeat(40)}`, undefined, names()),
    400,
    'DIGEST_INVALID',
  );
  t.regex(e.message, /unsupported digest algorithm "sha1"/);
  rejects(t, () => routeRequest('/v2/ghcr.io/a/blobs/sha256:abc', undefined, names()), 400, 'DIGEST_INVALID');
  rejects(
    t,
    () => routeRequest(`/v2/ghcr.io/a/referrers/sha256:${'A'.repeat(64)}`, undefined, names()),
    400,
    'DIGEST_INVALID',
  );
  rejects(
    t,
    () => routeRequest(`/v2/ghcr.io/a/manifests/sha512:${'b'.repeat(128)}`, undefined, names()),
    400,
    'MANIFEST_INVALID',
  );
  t.deepEqual(routeRequest(`/v2/ghcr.io/a/blobs/sha512:${'b'.repeat(128)}`, undefined, names()).endpoint, {
    kind: 'blob',
    digest: `sha512:${'b'.repeat(128)}`,
  });
});

test('unknown endpoints are NAME_UNKNOWN; referrers and tags are routed', (t) => {
  rejects(t, () => routeRequest('/v2/ghcr.io/a/unknown', undefined, names()), 404, 'NAME_UNKNOWN');
  t.deepEqual(routeRequest(`/v2/ghcr.io/a/b/referrers/${D}`, undefined, names()).endpoint, {
    kind: 'referrers',
    digest: D,
  });
  t.deepEqual(routeRequest('/v2/ghcr.io/a/tags/list', undefined, names()).endpoint, { kind: 'tags' });
  // a repository may itself contain an endpoint word
  t.is(routeRequest('/v2/ghcr.io/a/blobs/b/manifests/1', undefined, names()).repository, 'a/blobs/b');
});
