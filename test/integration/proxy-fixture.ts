// Starts a real pullgate in-process on a free loopback port, configured through a real config file
// and policy file, with its logs captured so tests can assert the decision lines.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/ops/log.ts';
import { startProxy, type RunningProxy } from '../../src/server.ts';

export interface TestProxy {
  proxy: RunningProxy;
  url: string;
  /** host:port, for clients that take a registry name. */
  host: string;
  dir: string;
  logs: Record<string, unknown>[];
  /** Log lines with this `msg`. */
  lines(msg: string): Record<string, unknown>[];
  writePolicy(yaml: string): void;
  close(): Promise<void>;
}

export interface TestProxyOptions {
  /** Raw config mapping (YAML-shaped); listen and store default to a free port and a temp SQLite file. */
  config: Record<string, unknown>;
  policy: string;
}

export const ALLOW_ALL = 'apiVersion: pullgate.dev/v1\nkind: Policy\ndefaultRule: {evaluationMode: alwaysAllow}\n';

export async function startTestProxy(opts: TestProxyOptions): Promise<TestProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'pullgate-it-'));
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, opts.policy);
  const configFile = join(dir, 'pullgate.yaml');
  writeFileSync(
    configFile,
    stringify({
      listen: { host: '127.0.0.1', port: 0 },
      store: { sqlite: { path: join(dir, 'state.db') } },
      policy: { file: policyFile },
      ...opts.config,
    }),
  );
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n'))
        if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const proxy = await startProxy(loadConfig(configFile, {}), {
    logger: createLogger('debug', sink),
    revocationRefreshMs: 1_000,
  });
  return {
    proxy,
    url: proxy.url,
    host: proxy.url.replace(/^https?:\/\//, ''),
    dir,
    logs,
    lines: (msg) => logs.filter((l) => l.msg === msg),
    writePolicy: (yaml) => writeFileSync(policyFile, yaml),
    async close() {
      await proxy.close(2_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
