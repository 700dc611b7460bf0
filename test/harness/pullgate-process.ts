// A real `pullgate serve` as a child process, run as shipped (package.json's start script's node
// flags and environment), so that what a test measures (RSS from /proc, whether it is still alive)
// is the proxy's own as users run it, and not the test runner's.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { stringify } from 'yaml';
import { freePort } from './ports.ts';
import { startProcess, type RunningProcess } from './process.ts';
import { shippedRuntime } from './shipped-runtime.ts';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface PullgateProcess {
  url: string;
  pid: number;
  dir: string;
  logFile: string;
  /** Whether the process still runs (not crashed). */
  alive(): boolean;
  /** Resident set size now and its peak since start (or since resetPeak), in MiB, from /proc/<pid>/status. */
  rss(): { nowMiB: number; peakMiB: number };
  /** Resets the peak RSS the kernel keeps (VmHWM), so the next reading is the peak of what follows. */
  resetPeak(): void;
  stop(): Promise<void>;
}

/** `config` is merged over a free loopback port and a SQLite store in a temp directory. */
export async function startPullgate(config: Record<string, unknown>, policy: string): Promise<PullgateProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'pullgate-proc-'));
  writeFileSync(join(dir, 'policy.yaml'), policy);
  const port = await freePort();
  const configFile = join(dir, 'pullgate.yaml');
  writeFileSync(
    configFile,
    stringify({
      listen: { host: '127.0.0.1', port },
      store: { sqlite: { path: join(dir, 'state.db') } },
      policy: { file: 'policy.yaml' },
      log: { level: 'info' },
      ...config,
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  const logFile = join(dir, 'proxy.log');
  const shipped = shippedRuntime();
  let proc: RunningProcess;
  try {
    proc = await startProcess({
      cmd: process.execPath,
      args: [...shipped.nodeArgs, CLI, 'serve', '--config', configFile],
      env: shipped.env,
      logFile,
      ready: async () => {
        const res = await request(`${url}/readyz`, { headersTimeout: 2_000, bodyTimeout: 2_000 });
        await res.body.dump();
        return res.statusCode === 200;
      },
    });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const field = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'));
    return Number(m?.[1] ?? NaN) / 1024;
  };
  return {
    url,
    pid: proc.pid,
    dir,
    logFile,
    alive() {
      try {
        process.kill(proc.pid, 0);
        return true;
      } catch {
        return false;
      }
    },
    rss: () => ({ nowMiB: field('VmRSS'), peakMiB: field('VmHWM') }),
    resetPeak: () => writeFileSync(`/proc/${proc.pid}/clear_refs`, '5'),
    async stop() {
      await proc.stop();
      // PULLGATE_TEST_KEEP=1 keeps the directory (config, state, proxy.log) for a post-mortem.
      if (process.env.PULLGATE_TEST_KEEP) console.error(`kept ${dir}`);
      else rmSync(dir, { recursive: true, force: true });
    },
  };
}
