// The shipped containerd certs.d tree, used as it is but for the proxy's address and CA path, by a
// real containerd: every registry goes through pullgate over TLS, a DENIED stays a deny, and
// registries outside the allowlist are refused.
import test from 'ava';
import { cpSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCommand, startContainerd, type Containerd } from '../harness/index.ts';
import { startNodeFixture, type NodeFixture } from './node-fixture.ts';

const CERTS_D = fileURLToPath(new URL('../../deploy/containerd/certs.d/', import.meta.url));
const PULL_TIMEOUT_MS = 60_000;

let fixture: NodeFixture;
let containerd: Containerd;
let hostsDir: string;

test.before(async () => {
  // ghcr.io has its own folder in certs.d; gcr.io only reaches the proxy through _default
  fixture = await startNodeFixture(['ghcr.io', 'gcr.io']);
  containerd = await startContainerd();
  hostsDir = mkdtempSync(join(tmpdir(), 'pullgate-certs-d-'));
  cpSync(CERTS_D, hostsDir, { recursive: true });
  for (const dir of readdirSync(hostsDir)) {
    const file = join(hostsDir, dir, 'hosts.toml');
    writeFileSync(file, fixture.localise(readFileSync(file, 'utf8')));
  }
  // the folder containerd looks up for the proxy's own name (host_port_)
  renameSync(join(hostsDir, 'pullgate.internal_5050_'), join(hostsDir, fixture.proxyHost.replace(/:(\d+)$/, '_$1_')));
});

test.after.always(async () => {
  await containerd?.stop();
  await fixture?.close();
  if (hostsDir) rmSync(hostsDir, { recursive: true, force: true });
});

// like a node: the hosts directory decides where to go; https only (no --plain-http)
const pull = (image: string) =>
  runCommand('ctr', ['--address', containerd.address, 'images', 'pull', '--hosts-dir', hostsDir, image], {
    timeoutMs: PULL_TIMEOUT_MS,
  });

const manifestRequests = (repository: string) =>
  fixture.proxy.lines('request').filter((l) => l.route === 'manifest' && l.repository === repository);

test.serial(
  'a registry with its own hosts.toml: a signed image is pulled through the proxy in its path-prefix form, over TLS with the configured CA',
  async (t) => {
    const before = manifestRequests('acme/signed').length;
    const r = await pull('ghcr.io/acme/signed:1.0');
    t.is(r.code, 0, r.stderr);
    t.is(await containerd.imageDigest('ghcr.io/acme/signed:1.0'), fixture.digests.signed);
    const seen = manifestRequests('acme/signed').slice(before);
    t.true(seen.length > 0, 'the manifest came from the proxy');
    t.true(seen.every((l) => l.upstream === 'ghcr.io'));
  },
);

test.serial('a DENIED is final: no fallback to the real registry', async (t) => {
  const r = await pull('ghcr.io/acme/unsigned:1.0');
  t.not(r.code, 0);
  t.regex(r.stderr, /403 Forbidden/);
  t.notRegex(r.stderr, /lookup ghcr\.io|dial tcp[^\n]*ghcr/, 'containerd did not try ghcr.io itself');
  t.is(await containerd.imageDigest('ghcr.io/acme/unsigned:1.0'), undefined);
});

test.serial(
  '_default sends a registry without its own folder to the proxy (with ns), which serves it when allowlisted',
  async (t) => {
    const r = await pull('gcr.io/acme/signed:1.0');
    t.is(r.code, 0, r.stderr);
    t.is(await containerd.imageDigest('gcr.io/acme/signed:1.0'), fixture.digests.signed);
    t.true(manifestRequests('acme/signed').some((l) => l.upstream === 'gcr.io'));
  },
);

test.serial('_default: a registry outside the allowlist is refused by the proxy, not pulled directly', async (t) => {
  const r = await pull('registry.example.org/acme/signed:1.0');
  t.not(r.code, 0);
  t.regex(r.stderr, /403 Forbidden/);
  t.notRegex(r.stderr, /lookup registry\.example\.org/, 'containerd did not try the registry itself');
});

test.serial(
  'images named through the proxy (the form the admission policy requires) are pulled with the proxy CA',
  async (t) => {
    const image = `${fixture.proxyHost}/ghcr.io/acme/signed:1.0`;
    const r = await pull(image);
    t.is(r.code, 0, r.stderr);
    t.is(await containerd.imageDigest(image), fixture.digests.signed);
    const refused = await pull(`${fixture.proxyHost}/ghcr.io/acme/unsigned:1.0`);
    t.not(refused.code, 0);
    t.regex(refused.stderr, /403 Forbidden/);
  },
);
