// The shipped containerd hosts.toml, used verbatim (but for the proxy's address) by a real
// containerd: pulls go through the proxy's path-prefix form, and a DENIED does not fall back.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { buildImage, generateKey, pushImage, signImage, startContainerd, startRegistry } from '../harness/index.ts';
import { startTestProxy } from '../integration/proxy-fixture.ts';

const HOSTS = fileURLToPath(new URL('../../deploy/containerd/certs.d/ghcr.io/hosts.toml', import.meta.url));

test('containerd with the shipped hosts.toml pulls a signed image through pullgate and is refused an unsigned one', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'pullgate-hosts-'));
  const registry = await startRegistry();
  const key = generateKey('ecdsa-p256');
  writeFileSync(join(work, 'ci.pub'), key.publicPem);
  const digests: Record<string, string> = {};
  for (const [repo, signed] of [['acme/signed', true], ['acme/unsigned', false]] as const) {
    const image = await buildImage(join(work, repo), '1.0', { seed: repo });
    await pushImage(join(work, repo), '1.0', `${registry.host}/${repo}:1.0`);
    if (signed) await signImage(registry, repo, image.digest, key.privateKey);
    digests[repo] = image.digest;
  }
  // the proxy calls the local registry "ghcr.io", as a cluster's proxy would the real one
  const proxy = await startTestProxy({
    policy: stringify({ apiVersion: 'pullgate.dev/v1', kind: 'Policy', attestors: { ci: { keys: [{ file: join(work, 'ci.pub') }] } }, defaultRule: { evaluationMode: 'requireAttestation', requireAttestors: ['ci'] } }),
    config: { upstreams: [{ host: 'ghcr.io', url: registry.url, insecure: true }] },
  });
  const containerd = await startContainerd();
  t.teardown(async () => { await containerd.stop(); await proxy.close(); await registry.stop(); rmSync(work, { recursive: true, force: true }); });

  const shipped = readFileSync(HOSTS, 'utf8');
  t.regex(shipped, /^server = "https:\/\/pullgate\.internal:5050\/v2\/ghcr\.io"$/m);
  const toml = shipped.replaceAll('https://pullgate.internal:5050', proxy.url).replace(/^\s*ca = .*$/gm, '');

  const ok = await containerd.pull('ghcr.io/acme/signed:1.0', { registry: 'ghcr.io', toml });
  t.is(ok.code, 0, ok.stderr);
  t.is(await containerd.imageDigest('ghcr.io/acme/signed:1.0'), digests['acme/signed']);
  const requests = proxy.lines('request').filter((l) => l.route === 'manifest' && l.repository === 'acme/signed');
  t.true(requests.length > 0 && requests.every((l) => l.upstream === 'ghcr.io'), 'containerd reached the proxy in its path-prefix form');

  const refused = await containerd.pull('ghcr.io/acme/unsigned:1.0', { registry: 'ghcr.io', toml });
  t.not(refused.code, 0);
  t.regex(refused.stderr, /403 Forbidden/);
  t.notRegex(refused.stderr, /lookup ghcr\.io|dial tcp.*ghcr/, 'no fallback to the real registry was attempted');
});
