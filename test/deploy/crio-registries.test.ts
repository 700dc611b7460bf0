// The shipped registries.conf, used by a real containers/image client (skopeo, the library CRI-O
// pulls with) as it is but for the proxy's address: pulls are rewritten to the proxy's
// path-prefix form, and a DENIED does not fall back to the registry itself.
import test from 'ava';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCommand } from '../harness/index.ts';
import { startNodeFixture, type NodeFixture } from './node-fixture.ts';

const SHIPPED = fileURLToPath(new URL('../../deploy/cri-o/registries.conf', import.meta.url));
const SKOPEO_TIMEOUT_MS = 60_000;

let fixture: NodeFixture;
let work: string;

test.before(async () => {
  fixture = await startNodeFixture(['docker.io', 'ghcr.io']);
  work = mkdtempSync(join(tmpdir(), 'pullgate-crio-'));
  writeFileSync(join(work, 'registries.conf'), fixture.localise(readFileSync(SHIPPED, 'utf8')));
  // where the shipped comment tells nodes to put the proxy's CA, relative to a cert dir
  mkdirSync(join(work, 'certs'));
  copyFileSync(fixture.caFile, join(work, 'certs', 'ca.crt'));
});

test.after.always(async () => {
  await fixture?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

const copy = (image: string, dest: string) =>
  runCommand(
    'skopeo',
    [
      '--registries-conf',
      join(work, 'registries.conf'),
      'copy',
      '--src-cert-dir',
      join(work, 'certs'),
      `docker://${image}`,
      `oci:${join(work, dest)}:1.0`,
    ],
    { timeoutMs: SKOPEO_TIMEOUT_MS },
  );

const manifestRequests = (repository: string) =>
  fixture.proxy.lines('request').filter((l) => l.route === 'manifest' && l.repository === repository);

test.serial('a signed image is pulled through the proxy in its path-prefix form', async (t) => {
  const r = await copy('ghcr.io/acme/signed:1.0', 'signed');
  t.is(r.code, 0, r.stderr);
  const index = JSON.parse(readFileSync(join(work, 'signed', 'index.json'), 'utf8')) as {
    manifests: { digest: string }[];
  };
  t.is(index.manifests[0]?.digest, fixture.digests.signed);
  const seen = manifestRequests('acme/signed');
  t.true(seen.length > 0 && seen.every((l) => l.upstream === 'ghcr.io'), 'the proxy served it as ghcr.io');
});

test.serial('a DENIED is final: the registry itself is not tried', async (t) => {
  const r = await copy('ghcr.io/acme/unsigned:1.0', 'unsigned');
  t.not(r.code, 0);
  t.regex(r.stderr, /denied/i);
  t.notRegex(r.stderr, /lookup ghcr\.io|ghcr\.io\/v2/, 'no request went to ghcr.io');
});

test.serial('Docker Hub names, short or long, go to the proxy as docker.io', async (t) => {
  for (const [image, dest] of [
    ['docker.io/acme/signed:1.0', 'hub-long'],
    ['acme/signed:1.0', 'hub-short'],
  ] as const) {
    const before = manifestRequests('acme/signed').length;
    const r = await copy(image, dest);
    t.is(r.code, 0, `${image}: ${r.stderr}`);
    t.true(
      manifestRequests('acme/signed')
        .slice(before)
        .some((l) => l.upstream === 'docker.io'),
      image,
    );
  }
});
