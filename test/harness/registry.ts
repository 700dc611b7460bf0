// A real distribution registry (Debian's docker-registry, 2.8) on a free loopback port, with
// filesystem storage in a temp dir and deletes enabled; optionally behind Basic auth (htpasswd)
// or bearer tokens from an in-process token server (auth: token, which also guards pulls).
import { createPrivateKey } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { stringify } from 'yaml';
import { freePort } from './ports.ts';
import { runChecked, startProcess, type RunningProcess } from './process.ts';
import { startTokenServer, type LimitedUser, type TokenServer } from './token-server.ts';

export type RegistryAuth = 'none' | 'htpasswd' | 'token';

export interface RegistryOptions {
  auth?: RegistryAuth;
  /** Credentials for htpasswd and token modes (default testuser / testpass). */
  username?: string;
  password?: string;
  /** Token mode: more users, each limited to repositories starting with one of its prefixes. */
  tokenUsers?: LimitedUser[];
  /** Lifetime of issued tokens (token mode). */
  tokenTtlSeconds?: number;
  /** Run distribution's own pull-through cache of this registry URL instead of a plain registry. */
  proxyOf?: string;
}

export interface Registry {
  /** "127.0.0.1:PORT" */
  host: string;
  /** "http://127.0.0.1:PORT" */
  url: string;
  /** The storage root (filesystem driver's rootdirectory). */
  dataDir: string;
  credentials?: { username: string; password: string };
  tokenServer?: { url: string; requests(): number };
  /** How many requests the registry's access log shows whose request line matches `pattern` (e.g. /^GET \/v2\/.+\/blobs\//). */
  requests(pattern: RegExp): Promise<number>;
  /** The registry process id, for resource readings. */
  pid: number | undefined;
  stop(): Promise<void>;
}

const REGISTRY_BIN = '/usr/bin/docker-registry';
const TOKEN_SERVICE = 'pullgate-test-registry';
const TOKEN_ISSUER = 'pullgate-test-token-issuer';
const PORT_ATTEMPTS = 3;
// bcrypt's minimum cost: the registry checks the hash on every request
const BCRYPT_COST = 4;

type AuthSection =
  { kind: 'none' } | { kind: 'htpasswd'; path: string } | { kind: 'token'; realm: string; certFile: string };

/** The registry's configuration document. */
export function registryConfig(
  port: number,
  dataDir: string,
  auth: AuthSection,
  proxyOf?: string,
): Record<string, unknown> {
  const config: Record<string, unknown> = {
    version: 0.1,
    log: { level: 'info', formatter: 'text' },
    storage: {
      filesystem: { rootdirectory: dataDir },
      delete: { enabled: true },
      // background upload purging only adds noise to short-lived test registries
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: { addr: `127.0.0.1:${port}` },
    ...(proxyOf ? { proxy: { remoteurl: proxyOf } } : {}),
  };
  if (auth.kind === 'htpasswd') config.auth = { htpasswd: { realm: 'pullgate-test', path: auth.path } };
  if (auth.kind === 'token') {
    config.auth = {
      token: { realm: auth.realm, service: TOKEN_SERVICE, issuer: TOKEN_ISSUER, rootcertbundle: auth.certFile },
    };
  }
  return config;
}

/** A self-signed EC P-256 certificate and key for signing tokens, made with the openssl CLI. */
async function makeTokenSigningCert(dir: string): Promise<{ keyFile: string; certFile: string }> {
  const keyFile = join(dir, 'token-key.pem');
  const certFile = join(dir, 'token-cert.pem');
  await runChecked(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '2',
      '-subj',
      `/CN=${TOKEN_ISSUER}`,
    ],
    { timeoutMs: 15_000 },
  );
  return { keyFile, certFile };
}

async function answersV2(url: string): Promise<boolean> {
  const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1_000) });
  await res.body?.cancel();
  return res.status === 200 || res.status === 401;
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<Registry> {
  const mode = opts.auth ?? 'none';
  const credentials = { username: opts.username ?? 'testuser', password: opts.password ?? 'testpass' };
  const root = await mkdtemp(join(tmpdir(), 'pullgate-registry-'));
  const dataDir = join(root, 'data');
  let tokenServer: TokenServer | undefined;
  let proc: RunningProcess | undefined;
  const cleanup = async () => {
    await proc?.stop();
    await tokenServer?.close();
    await rm(root, { recursive: true, force: true });
  };
  try {
    let auth: AuthSection = { kind: 'none' };
    if (mode === 'htpasswd') {
      const path = join(root, 'htpasswd');
      await writeFile(path, `${credentials.username}:${bcrypt.hashSync(credentials.password, BCRYPT_COST)}\n`);
      auth = { kind: 'htpasswd', path };
    } else if (mode === 'token') {
      const { keyFile, certFile } = await makeTokenSigningCert(root);
      tokenServer = await startTokenServer({
        service: TOKEN_SERVICE,
        issuer: TOKEN_ISSUER,
        signingKey: createPrivateKey(await readFile(keyFile)),
        ...credentials,
        ...(opts.tokenUsers ? { users: opts.tokenUsers } : {}),
        ...(opts.tokenTtlSeconds === undefined ? {} : { ttlSeconds: opts.tokenTtlSeconds }),
      });
      auth = { kind: 'token', realm: tokenServer.url, certFile };
    }

    // freePort releases the port before the registry binds it: retry if someone took it meanwhile
    let port = 0;
    for (let attempt = 1; proc === undefined; attempt++) {
      port = await freePort();
      const configFile = join(root, 'config.yml');
      await writeFile(configFile, stringify(registryConfig(port, dataDir, auth, opts.proxyOf)));
      try {
        proc = await startProcess({
          cmd: REGISTRY_BIN,
          args: ['serve', configFile],
          logFile: join(root, 'registry.log'),
          ready: () => answersV2(`http://127.0.0.1:${port}`),
          readyTimeoutMs: 15_000,
        });
      } catch (err) {
        if (attempt >= PORT_ATTEMPTS || !/address already in use/.test((err as Error).message)) throw err;
      }
    }
    const host = `127.0.0.1:${port}`;
    return {
      host,
      url: `http://${host}`,
      dataDir,
      ...(mode === 'none' ? {} : { credentials }),
      ...(tokenServer ? { tokenServer: { url: tokenServer.url, requests: tokenServer.requests } } : {}),
      async requests(pattern: RegExp): Promise<number> {
        const log = await readFile(join(root, 'registry.log'), 'utf8').catch(() => '');
        return [...log.matchAll(/"((?:GET|HEAD) [^"]+) HTTP\/1\.1"/g)].filter((m) => pattern.test(m[1] ?? '')).length;
      },
      pid: proc.pid,
      stop: cleanup,
    };
  } catch (err) {
    await cleanup().catch(() => undefined);
    throw new Error(`starting a ${mode} registry failed: ${(err as Error).message}`);
  }
}
