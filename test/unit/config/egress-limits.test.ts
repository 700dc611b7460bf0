import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { DEFAULT_CONNECTIONS, loadConfig } from '../../../src/config/load.ts';

function load(doc: Record<string, unknown>) {
  const dir = mkdtempSync(join(tmpdir(), 'pullgate-cfg-'));
  try {
    const file = join(dir, 'pullgate.yaml');
    writeFileSync(file, stringify(doc));
    return loadConfig(file, {});
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const EXAMPLE = new URL('../../../config/pullgate.example.yaml', import.meta.url).pathname;

test('defaults: docker.io trusts auth.docker.io with credentials, nothing internal is allowlisted, deadlines set', (t) => {
  const c = loadConfig(undefined, {});
  const hub = c.upstreams.find((u) => u.host === 'docker.io');
  t.deepEqual(hub?.tokenRealms, ['auth.docker.io']);
  t.deepEqual(c.upstreams.find((u) => u.host === 'ghcr.io')?.tokenRealms, []);
  t.deepEqual(hub?.egress, { allowHosts: [], allowCidrs: [] });
  t.is(hub?.timeouts.totalMs, 60_000);
  t.is(hub?.timeouts.blobTotalMs, 3_600_000);
  t.deepEqual(c.connections, { ...DEFAULT_CONNECTIONS });
  const own = load({ upstreams: [{ host: 'docker.io', url: 'https://registry-1.docker.io' }] });
  t.deepEqual(own.upstreams[0]?.tokenRealms, ['auth.docker.io'], 'the well-known realm follows the url');
});

test('the example config documents the real egress, deadline and connection keys with their defaults', (t) => {
  const c = loadConfig(EXAMPLE, {});
  const d = loadConfig(undefined, {});
  t.deepEqual(c.upstreams[0]?.timeouts, d.upstreams[0]?.timeouts);
  t.deepEqual(c.upstreams[0]?.egress, d.upstreams[0]?.egress);
  t.deepEqual(c.upstreams[0]?.tokenRealms, d.upstreams[0]?.tokenRealms);
  t.deepEqual(c.connections, d.connections);
});

test('egress, realm and limit mistakes name the key', (t) => {
  const up = (extra: Record<string, unknown>) => ({ upstreams: [{ host: 'r.test', ...extra }] });
  const cases: [Record<string, unknown>, RegExp][] = [
    [up({ egress: { allowCidrs: ['10.0.0.0/33'] } }), /allowCidrs.*not an address range/],
    [up({ egress: { allowHosts: ['https://x.test/'] } }), /allowHosts.*not a host name/],
    [up({ egress: { allowAll: true } }), /allowAll/],
    [up({ tokenRealms: ['auth.test/token'] }), /tokenRealms.*no scheme or path/],
    [up({ timeouts: { headersMs: 30_000, totalMs: 10_000 } }), /totalMs.*at least headersMs/],
    [{ limits: { headersTimeoutMs: 30_000, requestTimeoutMs: 10_000 } }, /requestTimeoutMs.*at least headersTimeoutMs/],
    [{ limits: { maxConnections: 0 } }, /maxConnections/],
  ];
  for (const [doc, message] of cases) t.throws(() => load(doc), { message }, JSON.stringify(doc));
  const ok = load(up({ egress: { allowHosts: ['Minio.svc', '[fd00::1]:9000'], allowCidrs: ['fd00::/8'] } }));
  t.deepEqual(ok.upstreams[0]?.egress, { allowHosts: ['minio.svc', '[fd00::1]:9000'], allowCidrs: ['fd00::/8'] });
});
