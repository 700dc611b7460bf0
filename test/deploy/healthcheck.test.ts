// The image's HEALTHCHECK script, run as Docker runs it (a separate node process) against real
// proxies: plain HTTP, and TLS with a certificate that does not name 127.0.0.1's caller.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { configArgument, healthUrl } from '../../deploy/docker/healthcheck.ts';
import { freePort, makeCa } from '../harness/index.ts';
import { ALLOW_ALL, startTestProxy } from '../integration/proxy-fixture.ts';

const SCRIPT = fileURLToPath(new URL('../../deploy/docker/healthcheck.ts', import.meta.url));
const RUN_TIMEOUT_MS = 10_000;

function runHealthcheck(configFile: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [SCRIPT],
      { env: { ...process.env, PULLGATE_CONFIG: configFile }, timeout: RUN_TIMEOUT_MS },
      (err, _stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stderr });
      },
    );
  });
}

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'pullgate-hc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A config file naming the address the proxy actually listens on (the test proxy picks a free port). */
function writeConfig(dir: string, listen: Record<string, unknown>): string {
  const file = join(dir, 'pullgate.yaml');
  writeFileSync(file, stringify({ listen, store: { sqlite: { path: join(dir, 'unused.db') } } }));
  return file;
}

test('the config path comes from the main process command line', (t) => {
  t.is(configArgument(['node', 'src/cli/main.ts', 'serve', '--config', '/etc/x.yaml', '']), '/etc/x.yaml');
  t.is(configArgument(['/sbin/docker-init', '--', 'node', 'src/cli/main.ts', 'serve', '-c', 'a.yaml']), 'a.yaml');
  t.is(configArgument(['node', 'src/cli/main.ts', 'serve', '--config=b.yaml']), 'b.yaml');
  t.is(configArgument(['node', 'src/cli/main.ts', 'serve']), undefined);
});

test('the health URL follows the listen address, port and TLS', (t) => {
  t.is(healthUrl({ host: '0.0.0.0', port: 5050 }), 'http://127.0.0.1:5050/healthz');
  t.is(healthUrl({ host: '::', port: 8443, tlsCert: '/c', tlsKey: '/k' }), 'https://127.0.0.1:8443/healthz');
  t.is(healthUrl({ host: '10.1.2.3', port: 5050 }), 'http://10.1.2.3:5050/healthz');
  t.is(healthUrl({ host: '::1', port: 5050 }), 'http://[::1]:5050/healthz');
});

test('healthy over plain HTTP; unhealthy, with the reason, once the proxy is gone', async (t) => {
  const proxy = await startTestProxy({ policy: ALLOW_ALL, config: {} });
  let closed = false;
  t.teardown(async () => {
    if (!closed) await proxy.close();
  });
  const port = Number(new URL(proxy.url).port);
  const config = writeConfig(tempDir(t), { host: '0.0.0.0', port });
  t.deepEqual(await runHealthcheck(config), { code: 0, stderr: '' });
  await proxy.close();
  closed = true;
  const down = await runHealthcheck(config);
  t.is(down.code, 1);
  t.regex(down.stderr, new RegExp(`healthcheck: http://127\\.0\\.0\\.1:${port}/healthz: .*ECONNREFUSED`));
});

test('healthy over TLS with a certificate from a private CA', async (t) => {
  const dir = tempDir(t);
  const cert = await (await makeCa(dir)).issue('proxy');
  const tls = { cert: cert.certFile, key: cert.keyFile };
  const proxy = await startTestProxy({ policy: ALLOW_ALL, config: { listen: { host: '127.0.0.1', port: 0, tls } } });
  t.teardown(() => proxy.close());
  t.true(proxy.url.startsWith('https://'));
  const port = Number(new URL(proxy.url).port);
  t.deepEqual(await runHealthcheck(writeConfig(dir, { host: '127.0.0.1', port, tls })), { code: 0, stderr: '' });
  // the same proxy asked in plain HTTP is not healthy: the script really follows the config
  const plain = await runHealthcheck(writeConfig(dir, { host: '127.0.0.1', port }));
  t.is(plain.code, 1);
});

test('an unreadable configuration is unhealthy and says which file', async (t) => {
  const missing = join(tempDir(t), 'missing.yaml');
  const r = await runHealthcheck(missing);
  t.is(r.code, 1);
  t.true(r.stderr.includes(`cannot read the configuration ${missing}`), r.stderr);
});

test('a port nobody listens on is unhealthy', async (t) => {
  const port = await freePort();
  const r = await runHealthcheck(writeConfig(tempDir(t), { host: '127.0.0.1', port }));
  t.is(r.code, 1);
});
