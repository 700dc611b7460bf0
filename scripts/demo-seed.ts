// Quickstart helper: pushes a signed and an unsigned demo image to a local registry and writes a
// matching pullgate config and policy into ./quickstart/. See README.md, "Quickstart".
// usage: npm run demo:seed [-- --registry 127.0.0.1:5000]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { buildImage, generateKey, pushImage, signImage } from '../test/harness/index.ts';

const { values } = parseArgs({
  options: { registry: { type: 'string', default: '127.0.0.1:5000' }, out: { type: 'string', default: 'quickstart' } },
});
const registry = values.registry;
const out = resolve(values.out);
mkdirSync(out, { recursive: true });

const key = generateKey('ecdsa-p256');
writeFileSync(join(out, 'ci.pub'), key.publicPem);
for (const [repo, signed] of [
  ['demo/signed', true],
  ['demo/unsigned', false],
] as const) {
  process.stderr.write(`building and pushing ${registry}/${repo}:1.0${signed ? ', signing it' : ''}…\n`);
  const image = await buildImage(join(out, 'layouts', repo), '1.0', { seed: `quickstart ${repo}` });
  await pushImage(join(out, 'layouts', repo), '1.0', `${registry}/${repo}:1.0`);
  if (signed) await signImage({ url: `http://${registry}` }, repo, image.digest, key.privateKey);
  process.stdout.write(`${repo}:1.0 = ${image.digest}${signed ? ' (signed by ci.pub)' : ' (unsigned)'}\n`);
}
writeFileSync(
  join(out, 'policy.yaml'),
  stringify({
    apiVersion: 'pullgate.dev/v1',
    kind: 'Policy',
    attestors: { ci: { description: 'the demo CI key', keys: [{ file: 'ci.pub' }] } },
    defaultRule: { evaluationMode: 'requireAttestation', requireAttestors: ['ci'] },
  }),
);
writeFileSync(
  join(out, 'pullgate.yaml'),
  stringify({
    listen: { host: '127.0.0.1', port: 5050 },
    admin: { host: '127.0.0.1', port: 5051, token: 'quickstart-admin-token' },
    upstreams: [{ host: 'registry.demo', url: `http://${registry}`, insecure: true }],
    defaultUpstream: 'registry.demo',
    policy: { file: 'policy.yaml' },
    store: { sqlite: { path: 'state.db' } },
  }),
);
process.stdout.write(`wrote ${out}/pullgate.yaml, policy.yaml and ci.pub\n`);
