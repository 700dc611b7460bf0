// A private containerd daemon (its own root, state and socket in a temp dir, CRI disabled) and
// `ctr images pull` through a hosts.toml, the way a cluster node pulls.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCommand, startProcess, type CommandResult } from './process.ts';

export interface HostsConfig {
  /** The registry name images are pulled as (the hosts.toml folder). */
  registry: string;
  /** `server` in hosts.toml: where containerd goes when no mirror is left. */
  server: string;
  /**
   * Hosts tried before the server, each with pull and resolve capabilities; containerd adds
   * `?ns=<registry>` to requests to them. None: containerd goes to the server directly.
   */
  mirrors?: string[];
}

/** A hosts.toml given verbatim (e.g. a shipped deployment file). */
export interface RawHosts {
  registry: string;
  toml: string;
}

export interface Containerd {
  address: string;
  /** `user`: "USER:PASSWORD" for registries that ask for credentials (ctr --user). */
  pull(
    image: string,
    hosts: HostsConfig | RawHosts,
    opts?: { timeoutMs?: number; user?: string },
  ): Promise<CommandResult>;
  /** The digest of an image in containerd's store, as `ctr images ls` shows it. */
  imageDigest(ref: string): Promise<string | undefined>;
  stop(): Promise<void>;
}

const PULL_TIMEOUT_MS = 90_000;

function hostsToml(hosts: HostsConfig): string {
  const lines = [`server = "${hosts.server}"`, ''];
  for (const m of hosts.mirrors ?? []) lines.push(`[host."${m}"]`, '  capabilities = ["pull", "resolve"]', '');
  return lines.join('\n');
}

export async function startContainerd(): Promise<Containerd> {
  // a short path: the socket path must fit in sun_path (108 bytes)
  const dir = await mkdtemp(join(tmpdir(), 'pg-ctrd-'));
  const address = join(dir, 'c.sock');
  await writeFile(
    join(dir, 'config.toml'),
    [
      'version = 2',
      `root = "${join(dir, 'root')}"`,
      `state = "${join(dir, 'state')}"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${address}"`,
      '[ttrpc]',
      `  address = "${join(dir, 't.sock')}"`,
      '',
    ].join('\n'),
  );
  const ctr = (args: string[], timeoutMs = 15_000) => runCommand('ctr', ['--address', address, ...args], { timeoutMs });
  const proc = await startProcess({
    cmd: 'containerd',
    args: ['--config', join(dir, 'config.toml')],
    logFile: join(dir, 'containerd.log'),
    ready: async () => (await ctr(['version'], 5_000)).code === 0,
    readyTimeoutMs: 30_000,
    readyIntervalMs: 200,
  });
  let hostsCount = 0;
  return {
    address,
    async pull(image, hosts, opts = {}) {
      const hostsDir = join(dir, `hosts-${++hostsCount}`);
      await mkdir(join(hostsDir, hosts.registry), { recursive: true });
      await writeFile(join(hostsDir, hosts.registry, 'hosts.toml'), 'toml' in hosts ? hosts.toml : hostsToml(hosts));
      const user = opts.user === undefined ? [] : ['--user', opts.user];
      return ctr(
        ['images', 'pull', '--plain-http', '--hosts-dir', hostsDir, ...user, image],
        opts.timeoutMs ?? PULL_TIMEOUT_MS,
      );
    },
    async imageDigest(ref) {
      const r = await ctr(['images', 'ls']);
      for (const line of r.stdout.split('\n')) {
        const [name, , digest] = line.split(/\s+/);
        if (name === ref) return digest;
      }
      return undefined;
    },
    async stop() {
      await proc.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
