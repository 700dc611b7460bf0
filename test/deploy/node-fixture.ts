// What the node-configuration tests pull from: a local registry holding a signed and an unsigned
// image, and a pullgate over TLS (a test CA) that calls that registry by public names, the way a
// cluster's proxy calls the real ones. The shipped files then differ only in the proxy's address
// and CA path, which `localise` rewrites.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { buildImage, generateKey, makeCa, pushImage, signImage, startRegistry } from '../harness/index.ts';
import { startTestProxy, type TestProxy } from '../integration/proxy-fixture.ts';

/** The proxy's name and CA path in the shipped node configurations. */
export const SHIPPED_PROXY = 'pullgate.internal:5050';
export const SHIPPED_CA = '/etc/containerd/certs.d/pullgate-ca.crt';

export interface NodeFixture {
  proxy: TestProxy;
  /** host:port of the proxy (127.0.0.1:N). */
  proxyHost: string;
  /** The CA that issued the proxy's certificate. */
  caFile: string;
  /** Digests of `acme/signed:1.0` and `acme/unsigned:1.0` as pushed. */
  digests: { signed: string; unsigned: string };
  /** The shipped text with the proxy's name and CA path pointed at this fixture. */
  localise(text: string): string;
  close(): Promise<void>;
}

/**
 * `upstreams`: the public names the proxy gives the local registry (its allowlist). The policy
 * admits images signed with the fixture's key and denies everything else.
 */
export async function startNodeFixture(upstreams: string[]): Promise<NodeFixture> {
  const work = mkdtempSync(join(tmpdir(), 'pullgate-node-'));
  const registry = await startRegistry();
  let proxy: TestProxy | undefined;
  try {
    const key = generateKey('ecdsa-p256');
    writeFileSync(join(work, 'ci.pub'), key.publicPem);
    const signed = await buildImage(join(work, 'signed'), '1.0', { seed: 'acme/signed' });
    await pushImage(join(work, 'signed'), '1.0', `${registry.host}/acme/signed:1.0`);
    await signImage(registry, 'acme/signed', signed.digest, key.privateKey);
    const unsigned = await buildImage(join(work, 'unsigned'), '1.0', { seed: 'acme/unsigned' });
    await pushImage(join(work, 'unsigned'), '1.0', `${registry.host}/acme/unsigned:1.0`);

    const ca = await makeCa(work);
    const cert = await ca.issue('proxy');
    proxy = await startTestProxy({
      policy: stringify({
        apiVersion: 'pullgate.dev/v1',
        kind: 'Policy',
        attestors: { ci: { keys: [{ file: join(work, 'ci.pub') }] } },
        defaultRule: { evaluationMode: 'requireAttestation', requireAttestors: ['ci'] },
      }),
      config: {
        listen: { host: '127.0.0.1', port: 0, tls: { cert: cert.certFile, key: cert.keyFile } },
        upstreams: upstreams.map((host) => ({ host, url: registry.url, insecure: true })),
      },
    });
    const proxyHost = proxy.host;
    const running = proxy;
    return {
      proxy: running,
      proxyHost,
      caFile: ca.certFile,
      digests: { signed: signed.digest, unsigned: unsigned.digest },
      localise: (text) => text.replaceAll(SHIPPED_CA, ca.certFile).replaceAll(SHIPPED_PROXY, proxyHost),
      async close() {
        await running.close();
        await registry.stop();
        rmSync(work, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await proxy?.close();
    await registry.stop();
    rmSync(work, { recursive: true, force: true });
    throw err;
  }
}
