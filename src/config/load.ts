// Loads and validates the proxy configuration. With no file, the embedded defaults apply: the
// public registries allowlisted, SQLite state under ./data, and the embedded fail-closed policy.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { RevalidateConfig } from '../gate/revalidate.ts';
import type { AdminIdentity, BudgetsConfig, Config, StoreConfig, TimeoutsConfig, UpstreamConfig } from './types.ts';
import {
  DEFAULT_DECISION_LIMITS,
  DEFAULT_INDEX_MAX_MANIFESTS,
  DEFAULT_MANIFEST_MAX_LAYERS,
  DEFAULT_TAG_LIST_MAX_TAGS,
} from '../gate/limits.ts';
import { DEFAULT_UPSTREAM_FETCH_LIMITS } from '../oci/fetch-budget.ts';
import { DEFAULT_EVIDENCE_LIMITS } from '../verify/budget.ts';
import { AUTH_KEYS, readAuth } from './auth.ts';
import { parseListenAddress } from './listen.ts';
import { placeholderMarker } from './placeholder.ts';
import { ConfigError, Node } from './reader.ts';
import { STORE_PROBE_INTERVAL_MS } from '../store/health.ts';
import { parseCidr } from '../oci/egress.ts';
import { POSTGRES_DEFAULTS } from '../store/postgres.ts';
import { SQLITE_DEFAULTS } from '../store/sqlite.ts';

export { ConfigError } from './reader.ts';

const HOST_RE = /^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::[0-9]{1,5})?$/;

export const DEFAULT_UPSTREAMS: readonly { host: string; url: string; aliases?: string[] }[] = [
  { host: 'docker.io', url: 'https://registry-1.docker.io', aliases: ['index.docker.io', 'registry-1.docker.io'] },
  { host: 'ghcr.io', url: 'https://ghcr.io' },
  { host: 'quay.io', url: 'https://quay.io' },
  { host: 'registry.k8s.io', url: 'https://registry.k8s.io' },
  { host: 'gcr.io', url: 'https://gcr.io' },
  { host: 'mcr.microsoft.com', url: 'https://mcr.microsoft.com' },
  { host: 'public.ecr.aws', url: 'https://public.ecr.aws' },
];

/** 10 GiB: a few hundred typical images, on any disk that holds the proxy's state. */
const DEFAULT_BLOB_CACHE_BYTES = 10 * 1024 ** 3;

const DEFAULT_TIMEOUTS: TimeoutsConfig = {
  connectMs: 5_000,
  headersMs: 30_000,
  bodyMs: 60_000,
  // A manifest, token or signature is small: a minute is ample even for a slow registry.
  totalMs: 60_000,
  // A multi-GiB layer at a few MB/s; a trickling body cannot hold a fill longer than this.
  blobTotalMs: 3_600_000,
};

/**
 * Token realms of well-known registries on another host than their API (keyed by the upstream
 * URL's host): configured credentials may go there without listing them in `tokenRealms`.
 */
export const WELL_KNOWN_REALMS: Readonly<Record<string, readonly string[]>> = {
  'registry-1.docker.io': ['auth.docker.io'],
  'index.docker.io': ['auth.docker.io'],
  'docker.io': ['auth.docker.io'],
};

/** Client connection bounds: slowloris sockets close, idle sockets are capped. */
export const DEFAULT_CONNECTIONS = {
  maxConnections: 4096,
  headersTimeoutMs: 20_000,
  requestTimeoutMs: 60_000,
  // Above the 60 s idle timeout of common load balancers, so they, not the proxy, close idle connections.
  keepAliveTimeoutMs: 65_000,
} as const;

export interface LoadOptions {
  /** Refuse secrets that are placeholders (REPLACE-…, change-me, …): what `pullgate serve` does. */
  refusePlaceholders?: boolean;
}

/** A secret as read, with where it came from. */
interface ReadSecret {
  node: Node;
  value: string;
  /** The environment variable it came from, if any. */
  envName?: string;
}

/** Loads a config file, or the embedded defaults when `file` is undefined. */
export function loadConfig(
  file: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  opts: LoadOptions = {},
): Config {
  if (file === undefined) return buildConfig(new Node('<embedded defaults>', '', {}), process.cwd(), env, opts);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, '', `cannot read the file: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError(file, '', `not valid YAML: ${(err as Error).message}`);
  }
  return buildConfig(new Node(file, '', doc), dirname(resolve(file)), env, opts);
}

/** Node.secret, remembering where the value came from for the placeholder check. */
function secret(
  parent: { get(key: string): Node },
  key: string,
  env: NodeJS.ProcessEnv,
  secrets: ReadSecret[],
  fallbackEnv?: string,
): string | undefined {
  let value = Node.secret(parent, key, env);
  let from = parent.get(`${key}Env`).optionalString();
  if (value === undefined && fallbackEnv !== undefined && env[fallbackEnv] !== undefined && env[fallbackEnv] !== '') {
    value = env[fallbackEnv];
    from = fallbackEnv;
  }
  if (value !== undefined)
    secrets.push({ node: parent.get(key), value, ...(from !== undefined ? { envName: from } : {}) });
  return value;
}

function refusePlaceholders(secrets: ReadSecret[]): void {
  for (const { node, value, envName } of secrets) {
    const marker = placeholderMarker(value);
    if (marker === undefined) continue;
    const where = envName ? `the value of environment variable ${envName}` : 'the value';
    node.fail(
      `${where} is a placeholder (it contains "${marker}"), not a secret: put the real value in${envName ? ` ${envName} (in Kubernetes: the pullgate-secrets Secret)` : ''}; for a token, generate one with: openssl rand -hex 32`,
    );
  }
}

function buildConfig(root: Node, baseDir: string, env: NodeJS.ProcessEnv, opts: LoadOptions): Config {
  const secrets: ReadSecret[] = [];
  const top = root.object([
    'listen',
    'auth',
    'admin',
    'metrics',
    'upstreams',
    'defaultUpstream',
    'limits',
    'policy',
    'store',
    'cache',
    'staleGraceSeconds',
    'tagRecheckSeconds',
    'revalidate',
    'log',
  ]);
  const path = (p: string) => resolve(baseDir, p);

  const listen = top.get('listen').object(['host', 'port', 'tls']);
  const tls = listen.get('tls').object(['cert', 'key']);
  const tlsCert = tls.get('cert').optionalString();
  const tlsKey = tls.get('key').optionalString();
  if ((tlsCert === undefined) !== (tlsKey === undefined))
    tls.get(tlsCert ? 'key' : 'cert').fail('tls needs both cert and key');

  const admin = top.get('admin').object(['host', 'port', 'token', 'tokenEnv', 'tokens']);
  const adminToken = secret(admin, 'token', env, secrets, 'PULLGATE_ADMIN_TOKEN');
  const tokenEnv = adminToken === undefined ? undefined : secrets.at(-1)?.envName;
  if (adminToken !== undefined && adminToken.length < 16)
    admin
      .get('token')
      .fail(`must be at least 16 characters${tokenEnv ? ` (the value of environment variable ${tokenEnv})` : ''}`);
  const identities = readAdminIdentities(admin.get('tokens'), env, secrets);
  if (adminToken !== undefined) {
    if (identities.some((i) => i.name === 'admin'))
      admin.get('token').fail('admin.tokens already names an identity "admin"');
    identities.unshift({ name: 'admin', token: adminToken, readOnly: false });
  }

  const upstreamNodes = top.get('upstreams');
  const upstreams: UpstreamConfig[] = upstreamNodes.present
    ? upstreamNodes.list().map((n) => readUpstream(n, env, path, secrets))
    : DEFAULT_UPSTREAMS.map((u) => ({
        host: u.host,
        url: u.url,
        aliases: u.aliases ?? [],
        insecure: false,
        timeouts: DEFAULT_TIMEOUTS,
        egress: { allowHosts: [], allowCidrs: [] },
        tokenRealms: [...(WELL_KNOWN_REALMS[new URL(u.url).host] ?? [])],
      }));
  if (upstreams.length === 0)
    upstreamNodes.fail('at least one upstream is needed: the proxy contacts no registry that is not listed');
  const names = new Set<string>();
  for (const [i, u] of upstreams.entries()) {
    for (const name of [u.host, ...u.aliases]) {
      if (names.has(name)) upstreamNodes.list()[i]?.fail(`"${name}" is already the host or alias of another upstream`);
      names.add(name);
    }
  }
  const defaultNode = top.get('defaultUpstream');
  const defaultUpstream = defaultNode.present ? defaultNode.string() : upstreamNodes.present ? undefined : 'docker.io';
  if (defaultUpstream !== undefined && !names.has(defaultUpstream))
    defaultNode.fail(`"${defaultUpstream}" is not the host or alias of a configured upstream`);

  const limits = top
    .get('limits')
    .object([
      'manifestMaxBytes',
      'clientWriteTimeoutMs',
      'maxConnections',
      'headersTimeoutMs',
      'requestTimeoutMs',
      'keepAliveTimeoutMs',
      'manifestMaxLayers',
      'indexMaxManifests',
      'concurrentDecisions',
      'decisionQueue',
      'driftAuditSeconds',
      'tagListMaxTags',
      'upstreamRequests',
      'upstreamBlobRequests',
      'upstreamQueue',
      'evidence',
    ]);
  const policy = top.get('policy').object(['file']);
  const policyFile = policy.get('file').optionalString();
  const cache = top.get('cache').object(['maxEntries', 'allowTtlSeconds', 'denyTtlSeconds', 'blobs']);
  const blobs = cache.get('blobs').object(['path', 'maxBytes', 'directWrites']);
  const store = readStore(top.get('store'), env, path, secrets);
  // The embedded default keeps blobs beside the SQLite state; with PostgreSQL, under ./data.
  const blobsDefault = store.kind === 'sqlite' ? join(dirname(store.path), 'blobs') : path('data/blobs');
  const log = top.get('log').object(['level']);
  const auth = readAuth(top.get('auth'), path);
  const authNode = top.get('auth').object(AUTH_KEYS);
  const passThrough = upstreams.filter((u) => u.passThrough);
  if (passThrough.length > 0 && !auth)
    upstreamNodes.fail(
      `passThrough on ${passThrough[0]?.host} needs client authentication (auth.enabled: true): clients hand their credentials to the token endpoint`,
    );
  if (auth && !auth.htpasswd && !auth.kubernetes && passThrough.length === 0)
    authNode.get('enabled').fail('auth is on but no client can authenticate: configure htpasswd and/or kubernetes');
  if (auth && !auth.token.keyFile && store.kind === 'postgres')
    authNode
      .get('token')
      .fail(
        'keyFile is required with the PostgreSQL store: replicas must share the token signing key, or each refuses the tokens of the others',
      );
  const metrics = top.get('metrics').object(['listener']);

  const config: Config = {
    ...(auth ? { auth } : {}),
    metrics: { listener: metrics.get('listener').oneOf(['registry', 'admin'] as const, 'registry') },
    listen: {
      host: listen.get('host').string('127.0.0.1'),
      port: listen.get('port').integer(5050, 0, 65535),
      ...(tlsCert && tlsKey ? { tlsCert: path(tlsCert), tlsKey: path(tlsKey) } : {}),
    },
    admin: {
      host: admin.get('host').string('127.0.0.1'),
      port: admin.get('port').integer(5051, 0, 65535),
      ...(adminToken ? { token: adminToken } : {}),
      identities,
    },
    upstreams,
    manifestMaxBytes: limits.get('manifestMaxBytes').integer(4 * 1024 * 1024, 1024, 64 * 1024 * 1024),
    budgets: readBudgets(limits),
    store,
    cache: {
      maxEntries: cache.get('maxEntries').integer(100_000, 1, 10_000_000),
      allowTtlSeconds: cache.get('allowTtlSeconds').integer(3600, 0, 7 * 86400),
      denyTtlSeconds: cache.get('denyTtlSeconds').integer(60, 0, 86400),
      blobs: {
        path: blobs.get('path').present ? path(blobs.get('path').string()) : blobsDefault,
        maxBytes: blobs.get('maxBytes').bytes(DEFAULT_BLOB_CACHE_BYTES, 0, 2 ** 50),
        directWrites: blobs.get('directWrites').oneOf(['auto', 'always', 'never'] as const, 'auto'),
      },
    },
    staleGraceSeconds: top.get('staleGraceSeconds').integer(86400, 0, 30 * 86400),
    tagRecheckSeconds: top.get('tagRecheckSeconds').integer(30, 0, 86400),
    revalidate: readRevalidate(top.get('revalidate')),
    clientWriteTimeoutMs: limits.get('clientWriteTimeoutMs').integer(60_000, 1_000, 3_600_000),
    connections: readConnections(limits),
    log: {
      level: log.get('level').oneOf(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const, 'info'),
    },
  };
  if (defaultUpstream !== undefined) config.defaultUpstream = defaultUpstream;
  if (policyFile !== undefined) config.policyFile = path(policyFile);
  const listenEnv = env.PULLGATE_LISTEN;
  if (listenEnv !== undefined && listenEnv !== '') {
    const address = parseListenAddress(listenEnv);
    if (typeof address === 'string')
      throw new ConfigError('environment', 'PULLGATE_LISTEN', `${address}; it overrides listen.host and listen.port`);
    config.listen.host = address.host;
    config.listen.port = address.port;
  }
  if (opts.refusePlaceholders) refusePlaceholders(secrets);
  return config;
}

/** `limits.*` budgets; the defaults are the documented safe ones (src/verify/budget.ts, src/gate/decider.ts). */
function readBudgets(limits: { get(key: string): Node }): BudgetsConfig {
  const e = limits
    .get('evidence')
    .object([
      'manifests',
      'layers',
      'blobBytes',
      'referrers',
      'signaturesPerEnvelope',
      'bytes',
      'verifyMs',
      'concurrency',
    ]);
  const d = DEFAULT_EVIDENCE_LIMITS;
  const f = DEFAULT_UPSTREAM_FETCH_LIMITS;
  return {
    evidence: {
      manifests: e.get('manifests').integer(d.manifests, 1, 1024),
      layers: e.get('layers').integer(d.layers, 1, 4096),
      blobBytes: e.get('blobBytes').bytes(d.blobBytes, 1024, 16 * 1024 * 1024),
      referrers: e.get('referrers').integer(d.referrers, 1, 100_000),
      signaturesPerEnvelope: e.get('signaturesPerEnvelope').integer(d.signaturesPerEnvelope, 1, 1024),
      bytes: e.get('bytes').bytes(d.bytes, 1024, 256 * 1024 * 1024),
      verifyMs: e.get('verifyMs').integer(d.verifyMs, 100, 300_000),
      concurrency: e.get('concurrency').integer(d.concurrency, 1, 64),
    },
    concurrentDecisions: limits.get('concurrentDecisions').integer(DEFAULT_DECISION_LIMITS.concurrentDecisions, 1, 256),
    decisionQueue: limits.get('decisionQueue').integer(DEFAULT_DECISION_LIMITS.decisionQueue, 0, 10_000),
    manifestMaxLayers: limits.get('manifestMaxLayers').integer(DEFAULT_MANIFEST_MAX_LAYERS, 1, 100_000),
    indexMaxManifests: limits.get('indexMaxManifests').integer(DEFAULT_INDEX_MAX_MANIFESTS, 1, 100_000),
    driftAuditSeconds: limits.get('driftAuditSeconds').integer(3600, 0, 7 * 86400),
    tagListMaxTags: limits.get('tagListMaxTags').integer(DEFAULT_TAG_LIST_MAX_TAGS, 1, 1_000_000),
    upstreamRequests: limits.get('upstreamRequests').integer(f.requests, 1, 4096),
    upstreamBlobRequests: limits.get('upstreamBlobRequests').integer(f.blobRequests, 1, 4096),
    upstreamQueue: limits.get('upstreamQueue').integer(f.queue, 0, 100_000),
  };
}

function readRevalidate(n: Node): RevalidateConfig {
  const r = n.object(['intervalSeconds', 'servedWithinSeconds', 'maxPerRun', 'enforce']);
  return {
    intervalSeconds: r.get('intervalSeconds').integer(21_600, 0, 30 * 86400),
    servedWithinSeconds: r.get('servedWithinSeconds').integer(7 * 86400, 60, 90 * 86400),
    maxPerRun: r.get('maxPerRun').integer(1000, 1, 100_000),
    enforce: r.get('enforce').boolean(false),
  };
}

/** `admin.tokens`: each `{name, token | tokenEnv, readOnly}`; names and tokens unique. */
function readAdminIdentities(n: Node, env: NodeJS.ProcessEnv, secrets: ReadSecret[]): AdminIdentity[] {
  const identities: AdminIdentity[] = [];
  for (const item of n.list()) {
    const t = item.object(['name', 'token', 'tokenEnv', 'readOnly']);
    const name = t.get('name').string();
    if (!/^[\w.@-]{1,64}$/.test(name)) t.get('name').fail('must be 1-64 letters, digits, ".", "_", "-" or "@"');
    const token = secret(t, 'token', env, secrets) ?? t.get('token').fail('a token is required (token or tokenEnv)');
    if (token.length < 16) t.get('token').fail('must be at least 16 characters');
    if (identities.some((i) => i.name === name)) t.get('name').fail(`"${name}" is named twice`);
    if (identities.some((i) => i.token === token)) t.get('token').fail('is the token of another identity');
    identities.push({ name, token, readOnly: t.get('readOnly').boolean(false) });
  }
  return identities;
}

function readUpstream(
  n: Node,
  env: NodeJS.ProcessEnv,
  path: (p: string) => string,
  secrets: ReadSecret[],
): UpstreamConfig {
  const u = n.object([
    'host',
    'url',
    'aliases',
    'insecure',
    'caFile',
    'username',
    'usernameEnv',
    'password',
    'passwordEnv',
    'timeouts',
    'egress',
    'tokenRealms',
    'passThrough',
  ]);
  const host = u.get('host').string().toLowerCase();
  if (!HOST_RE.test(host))
    u.get('host').fail(`"${host}" is not a registry host name (like docker.io or registry.example:5000)`);
  const aliases = u
    .get('aliases')
    .list()
    .map((a) => {
      const alias = a.string().toLowerCase();
      if (!HOST_RE.test(alias)) a.fail(`"${alias}" is not a host name`);
      return alias;
    });
  const insecure = u.get('insecure').boolean(false);
  const urlText = u.get('url').string(`https://${host}`);
  const url = URL.parse(urlText) ?? u.get('url').fail(`"${urlText}" is not a URL`);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && insecure)) {
    u.get('url').fail('must be https:// (plain http:// only with insecure: true)');
  }
  if (url.pathname !== '/' || url.search || url.username)
    u.get('url').fail('must be a bare origin like https://registry.example (no path, query or credentials)');
  const username = secret(u, 'username', env, secrets);
  const password = secret(u, 'password', env, secrets);
  if ((username === undefined) !== (password === undefined))
    u.get(username ? 'password' : 'username').fail('username and password go together');
  const t = u.get('timeouts').object(['connectMs', 'headersMs', 'bodyMs', 'totalMs', 'blobTotalMs']);
  const headersMs = t.get('headersMs').integer(DEFAULT_TIMEOUTS.headersMs, 100, 600_000);
  const totalMs = t.get('totalMs').integer(Math.max(DEFAULT_TIMEOUTS.totalMs, headersMs), 100, 3_600_000);
  if (totalMs < headersMs)
    t.get('totalMs').fail(`must be at least headersMs (${headersMs}): the deadline covers the wait for headers`);
  const caFile = u.get('caFile').optionalString();
  const pt = u.get('passThrough');
  const ptObject = pt.object(['cacheSeconds']);
  return {
    host,
    aliases,
    url: url.origin,
    insecure,
    ...(caFile ? { caFile: path(caFile) } : {}),
    ...(username !== undefined && password !== undefined ? { username, password } : {}),
    timeouts: {
      connectMs: t.get('connectMs').integer(DEFAULT_TIMEOUTS.connectMs, 100, 600_000),
      headersMs,
      bodyMs: t.get('bodyMs').integer(DEFAULT_TIMEOUTS.bodyMs, 100, 3_600_000),
      totalMs,
      blobTotalMs: t.get('blobTotalMs').integer(DEFAULT_TIMEOUTS.blobTotalMs, 1_000, 86_400_000),
    },
    egress: readEgress(u.get('egress')),
    tokenRealms: u.get('tokenRealms').present
      ? u
          .get('tokenRealms')
          .list()
          .map((r) => realmHost(r))
      : [...(WELL_KNOWN_REALMS[url.host] ?? [])],
    ...(pt.present ? { passThrough: { cacheSeconds: ptObject.get('cacheSeconds').integer(30, 0, 600) } } : {}),
  };
}

/** A host name or host:port, as `egress.allowHosts` and `tokenRealms` take them. */
function realmHost(n: Node): string {
  const text = n.string().toLowerCase();
  if (!HOST_RE.test(text) && !/^\[[0-9a-f:.]+\](?::[0-9]{1,5})?$/.test(text))
    n.fail(`"${text}" is not a host name or host:port (no scheme or path: auth.example.com, 10.0.0.5:9000)`);
  return text;
}

function readEgress(n: Node): UpstreamConfig['egress'] {
  const e = n.object(['allowHosts', 'allowCidrs']);
  return {
    allowHosts: e
      .get('allowHosts')
      .list()
      .map((h) => realmHost(h)),
    allowCidrs: e
      .get('allowCidrs')
      .list()
      .map((c) => {
        const text = c.string();
        if (!parseCidr(text)) c.fail(`"${text}" is not an address range like 10.20.0.0/16 or fd00::/8`);
        return text;
      }),
  };
}

function readConnections(limits: { get(key: string): Node }): Config['connections'] {
  const d = DEFAULT_CONNECTIONS;
  const headersTimeoutMs = limits.get('headersTimeoutMs').integer(d.headersTimeoutMs, 1_000, 600_000);
  const requestTimeoutMs = limits
    .get('requestTimeoutMs')
    .integer(Math.max(d.requestTimeoutMs, headersTimeoutMs), 1_000, 3_600_000);
  if (requestTimeoutMs < headersTimeoutMs)
    limits.get('requestTimeoutMs').fail(`must be at least headersTimeoutMs (${headersTimeoutMs})`);
  return {
    maxConnections: limits.get('maxConnections').integer(d.maxConnections, 1, 1_000_000),
    headersTimeoutMs,
    requestTimeoutMs,
    keepAliveTimeoutMs: limits.get('keepAliveTimeoutMs').integer(d.keepAliveTimeoutMs, 1_000, 600_000),
  };
}

function readStore(n: Node, env: NodeJS.ProcessEnv, path: (p: string) => string, secrets: ReadSecret[]): StoreConfig {
  const s = n.object(['sqlite', 'postgres', 'probeIntervalMs']);
  const probeIntervalMs = s.get('probeIntervalMs').integer(STORE_PROBE_INTERVAL_MS, 100, 600_000);
  const pg = s.get('postgres');
  if (pg.present) {
    if (s.get('sqlite').present) n.fail('choose one of sqlite or postgres');
    const p = pg.object([
      'url',
      'urlEnv',
      'schema',
      'statementTimeoutMs',
      'lockTimeoutMs',
      'connectTimeoutMs',
      'poolSize',
    ]);
    const url = secret(p, 'url', env, secrets, 'PULLGATE_POSTGRES_URL');
    if (!url) return p.get('url').fail('a PostgreSQL URL is required (url, urlEnv or PULLGATE_POSTGRES_URL)');
    const schema = p.get('schema').string('pullgate');
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) p.get('schema').fail('must be a lowercase SQL identifier');
    const statementTimeoutMs = p.get('statementTimeoutMs').integer(POSTGRES_DEFAULTS.statementTimeoutMs, 100, 600_000);
    const lockTimeoutMs = p
      .get('lockTimeoutMs')
      .integer(Math.min(POSTGRES_DEFAULTS.lockTimeoutMs, statementTimeoutMs), 100, 600_000);
    if (lockTimeoutMs > statementTimeoutMs)
      p.get('lockTimeoutMs').fail(
        `must not exceed statementTimeoutMs (${statementTimeoutMs}), or lock waits are reported as slow statements`,
      );
    return {
      kind: 'postgres',
      url,
      schema,
      probeIntervalMs,
      statementTimeoutMs,
      lockTimeoutMs,
      connectTimeoutMs: p.get('connectTimeoutMs').integer(POSTGRES_DEFAULTS.connectTimeoutMs, 100, 600_000),
      poolSize: p.get('poolSize').integer(POSTGRES_DEFAULTS.poolSize, 1, 1000),
    };
  }
  const sqlite = s.get('sqlite').object(['path', 'busyTimeoutMs']);
  return {
    kind: 'sqlite',
    path: path(sqlite.get('path').string('data/pullgate.db')),
    probeIntervalMs,
    busyTimeoutMs: sqlite.get('busyTimeoutMs').integer(SQLITE_DEFAULTS.busyTimeoutMs, 0, 10_000),
  };
}
