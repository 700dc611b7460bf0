import test from 'ava';
import { resolveImage, resolveImageFilter } from '../../../src/oci/image-name.ts';
import type { UpstreamNames } from '../../../src/oci/upstreams.ts';

const D = `sha256:${'a'.repeat(64)}`;
function names(defaultUpstream?: string): UpstreamNames {
  const map: Record<string, string> = {
    'docker.io': 'docker.io',
    'index.docker.io': 'docker.io',
    'ghcr.io': 'ghcr.io',
    'registry.test:5000': 'registry.test:5000',
    internal: 'internal',
  };
  return { canonical: (n) => map[n], defaultUpstream };
}

test('images: registry optional with a defaultUpstream, aliases canonical, Docker Hub single names normalised', (t) => {
  const cases: [string, string | undefined, unknown][] = [
    ['ghcr.io/acme/app:1.0', undefined, { upstream: 'ghcr.io', repository: 'acme/app', tag: '1.0' }],
    ['index.docker.io/nginx', undefined, { upstream: 'docker.io', repository: 'library/nginx' }],
    ['nginx:1.27', 'docker.io', { upstream: 'docker.io', repository: 'library/nginx', tag: '1.27' }],
    ['acme/app', 'ghcr.io', { upstream: 'ghcr.io', repository: 'acme/app' }],
    ['app', 'ghcr.io', { upstream: 'ghcr.io', repository: 'app' }],
    [
      'registry.test:5000/demo/app:2',
      'docker.io',
      { upstream: 'registry.test:5000', repository: 'demo/app', tag: '2' },
    ],
    [
      `registry.test:5000/demo/app@${D}`,
      undefined,
      { upstream: 'registry.test:5000', repository: 'demo/app', digest: D },
    ],
    [`demo/app:1@${D}`, 'ghcr.io', { upstream: 'ghcr.io', repository: 'demo/app', tag: '1', digest: D }],
    ['internal/team/app', undefined, { upstream: 'internal', repository: 'team/app' }],
  ];
  for (const [text, fallback, expected] of cases) t.deepEqual(resolveImage(text, names(fallback)), expected, text);
});

test('images: errors say what is wrong and how to write it', (t) => {
  const cases: [string, string | undefined, RegExp][] = [
    ['nginx', undefined, /names no registry and this proxy has no defaultUpstream: write it as registry\/repository/],
    ['evil.example/app', 'docker.io', /registry "evil\.example" is not an allowlisted upstream/],
    ['localhost/app', 'docker.io', /registry "localhost" is not an allowlisted upstream/],
    ['ghcr.io/', undefined, /names a registry but no repository/],
    ['ghcr.io/Acme/App', undefined, /"Acme\/App" is not a valid repository name/],
    ['ghcr.io/acme/app:-bad', undefined, /"-bad" is not a valid tag/],
    ['ghcr.io/acme/app@sha256:short', undefined, /malformed sha256/],
    [`ghcr.io/${'a'.repeat(600)}`, undefined, /longer than 512/],
  ];
  for (const [text, fallback, message] of cases) t.regex(String(resolveImage(text, names(fallback))), message, text);
});

test('audit filters: a tag or digest names one image, anything else is a prefix of upstream/repository', (t) => {
  const cases: [string, string | undefined, unknown][] = [
    ['ghcr.io/acme/app:1.0', undefined, { upstream: 'ghcr.io', repository: 'acme/app', tag: '1.0' }],
    [`ghcr.io/acme/app@${D}`, undefined, { upstream: 'ghcr.io', repository: 'acme/app', digest: D }],
    ['nginx:1.27', 'docker.io', { upstream: 'docker.io', repository: 'library/nginx', tag: '1.27' }],
    ['ghcr.io/acme/app', undefined, { prefix: 'ghcr.io/acme/app' }],
    ['ghcr.io/acme/', undefined, { prefix: 'ghcr.io/acme/' }],
    ['ghcr.io', undefined, { prefix: 'ghcr.io/' }],
    ['index.docker.io', undefined, { prefix: 'docker.io/' }],
    ['docker.io/ngi', undefined, { prefix: 'docker.io/library/ngi' }],
    ['acme', 'ghcr.io', { prefix: 'ghcr.io/acme' }],
    ['registry.test:5000/demo', undefined, { prefix: 'registry.test:5000/demo' }],
  ];
  for (const [text, fallback, expected] of cases)
    t.deepEqual(resolveImageFilter(text, names(fallback)), expected, text);
  t.regex(String(resolveImageFilter('quay.io', names('docker.io'))), /"quay\.io" is not an allowlisted upstream/);
  t.regex(String(resolveImageFilter('acme/app', names())), /no defaultUpstream/);
});
