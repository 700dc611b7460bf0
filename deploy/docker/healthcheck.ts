// The image's HEALTHCHECK: GET /healthz of the proxy running in this container, read from the same
// configuration the proxy runs with, so that a config with another port or with TLS stays healthy.
// (The image has no curl; node is all there is.)
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/types.ts';

export const DEFAULT_CONFIG = '/etc/pullgate/pullgate.yaml';
const TIMEOUT_MS = 2_000;

/** The `--config`/`-c` value in a command line (the container's PID 1: `node src/cli/main.ts serve --config F`). */
export function configArgument(argv: readonly string[]): string | undefined {
  for (const [i, arg] of argv.entries()) {
    if (arg === '--config' || arg === '-c') return argv[i + 1];
    if (arg.startsWith('--config=')) return arg.slice('--config='.length);
  }
  return undefined;
}

/** Where the proxy's /healthz answers from inside its own container. */
export function healthUrl(listen: Config['listen']): string {
  const wildcard = listen.host === '0.0.0.0' || listen.host === '::' || listen.host === '';
  const host = wildcard ? '127.0.0.1' : listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  return `${listen.tlsCert ? 'https' : 'http'}://${host}:${listen.port}/healthz`;
}

function pid1Argv(): string[] {
  try {
    return readFileSync('/proc/1/cmdline', 'utf8').split('\0');
  } catch {
    return [];
  }
}

/** Resolves to the HTTP status; rejects on connection errors and after TIMEOUT_MS. */
function get(url: string): Promise<number> {
  const request = url.startsWith('https:') ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    // Liveness of the local process, over loopback: the certificate names the service, not 127.0.0.1.
    const req = request(url, { rejectUnauthorized: false, timeout: TIMEOUT_MS }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end();
  });
}

async function main(): Promise<number> {
  const file = process.env.PULLGATE_CONFIG ?? configArgument(pid1Argv()) ?? DEFAULT_CONFIG;
  let url: string;
  try {
    url = healthUrl(loadConfig(file).listen);
  } catch (err) {
    process.stderr.write(`healthcheck: cannot read the configuration ${file}: ${(err as Error).message}\n`);
    return 1;
  }
  try {
    const status = await get(url);
    if (status === 200) return 0;
    process.stderr.write(`healthcheck: ${url} answered ${status}\n`);
  } catch (err) {
    process.stderr.write(`healthcheck: ${url}: ${(err as Error).message}\n`);
  }
  return 1;
}

if (import.meta.main) process.exitCode = await main();
