// The proxy's configuration file (YAML) as loaded and validated. config/pullgate.example.yaml documents every key.
import type { RevalidateConfig } from '../gate/revalidate.ts';
import type { EvidenceLimits } from '../verify/budget.ts';

/** Budgets of decisions and requests (`limits.*`): every count an upstream or a pusher controls is bounded. */
export interface BudgetsConfig {
  /** What one decision may spend on evidence (`limits.evidence`). */
  evidence: EvidenceLimits;
  /** Decisions verifying evidence at once, and waiting for a slot; past both: 503 with Retry-After. */
  concurrentDecisions: number;
  decisionQueue: number;
  /** Layers of the widest image manifest, and manifests of the widest index, accepted. */
  manifestMaxLayers: number;
  indexMaxManifests: number;
  /** Drift of one tag is audited at most once per this many seconds (the open record counts every sighting). */
  driftAuditSeconds: number;
  /** Valid tags read from one upstream tag list; a list with more is refused (502 naming the key). */
  tagListMaxTags: number;
  /** Per upstream: requests (manifests, tags, referrers, tokens) and blob transfers in flight, and the queue of each. */
  upstreamRequests: number;
  upstreamBlobRequests: number;
  upstreamQueue: number;
}

export interface TimeoutsConfig {
  /** TCP/TLS connect timeout. */
  connectMs: number;
  /** Time to the upstream's response headers. */
  headersMs: number;
  /** Longest pause between two chunks of an upstream body. */
  bodyMs: number;
  /** Overall deadline of one upstream operation (auth round trips and the whole body included); blobs excepted. */
  totalMs: number;
  /** Overall deadline of one blob transfer from the upstream (or where it redirects). */
  blobTotalMs: number;
}

/** Hosts an upstream may send the proxy to although they resolve to internal addresses (src/oci/egress.ts). */
export interface EgressConfig {
  /** Host names (any port) or host:port. */
  allowHosts: string[];
  /** CIDR ranges, IPv4 or IPv6. */
  allowCidrs: string[];
}

export interface UpstreamConfig {
  /** Registry host clients name (`docker.io`, `ghcr.io`, `registry.example.test:5000`). */
  host: string;
  aliases: string[];
  /** Where the registry API is reached; https unless `insecure` allows http. */
  url: string;
  /** Allow plain HTTP (`http://` url). Off unless set. */
  insecure: boolean;
  /** PEM CA bundle file to trust for this upstream, in addition to the system roots. */
  caFile?: string;
  username?: string;
  password?: string;
  timeouts: TimeoutsConfig;
  egress: EgressConfig;
  /**
   * Token realm hosts (name or host:port) other than the upstream's own origin that may receive
   * credentials (configured ones, pass-through clients'); any other realm gets an anonymous request.
   */
  tokenRealms: string[];
  /**
   * Clients' own credentials for this registry are checked there for every request (a client the
   * upstream refuses is refused, cached content included). Only with client authentication on.
   */
  passThrough?: { cacheSeconds: number };
}

export interface ConnectionLimits {
  /** Open connections accepted per listener; more are closed at once. */
  maxConnections: number;
  /** Time a client has to send a request's headers (slowloris sockets close after it). */
  headersTimeoutMs: number;
  /** Time a client has to send a whole request. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long. */
  keepAliveTimeoutMs: number;
}

export interface ListenConfig {
  host: string;
  port: number;
  /** TLS termination: both set or neither. */
  tlsCert?: string;
  tlsKey?: string;
}

/** Bounds and probing of the store; unset fields take the documented defaults (src/store/open.ts). */
export interface StoreTuning {
  /** Health probe interval while the store is up (while down it is retried every second). */
  probeIntervalMs?: number;
}

export type StoreConfig =
  | ({ kind: 'sqlite'; path: string; busyTimeoutMs?: number } & StoreTuning)
  | ({
      kind: 'postgres';
      url: string;
      schema: string;
      statementTimeoutMs?: number;
      lockTimeoutMs?: number;
      connectTimeoutMs?: number;
      poolSize?: number;
    } & StoreTuning);

export interface BlobCacheConfig {
  /** Directory of the content-addressed blob cache. */
  path: string;
  /** The most bytes kept; least recently used blobs are evicted past it. */
  maxBytes: number;
  /**
   * Whether cold fills write past the page cache (O_DIRECT, blobs/direct-io.ts): `auto` where new
   * page-cache pages are dear (a VM that reports free memory to its host), `always`, or `never`.
   */
  directWrites: DirectWritesMode;
}

export type DirectWritesMode = 'auto' | 'always' | 'never';

export interface CacheConfig {
  maxEntries: number;
  allowTtlSeconds: number;
  denyTtlSeconds: number;
  blobs: BlobCacheConfig;
}

export interface AdminIdentity {
  /** Who acts, as the audit trail names it (`admin:<name>`). */
  name: string;
  token: string;
  /** May read (pins, drift, audit, checks) but not change anything. */
  readOnly: boolean;
}

/** `auth.rules[]`: identity patterns and the `upstream/repository` globs they may pull (src/auth/rules.ts). */
export interface AuthRuleConfig {
  identities: string[];
  repositories: string[];
}

/** Client authentication: the distribution token flow in front of every /v2 endpoint. */
export interface AuthConfig {
  /** `service` in challenges and the audience of pullgate's tokens. */
  service: string;
  /** The token endpoint's absolute URL; undefined: derived from each request's Host and the listener's scheme. */
  realm?: string;
  token: {
    /** EC P-256 private key (PEM) shared by replicas; undefined: generated at start (one replica only). */
    keyFile?: string;
    ttlSeconds: number;
  };
  htpasswd?: { file: string };
  /** Groups of htpasswd users, for rules. */
  groups: Record<string, string[]>;
  kubernetes?: { issuer: string; audiences: string[]; jwksFile: string };
  rules: AuthRuleConfig[];
}

export interface Config {
  listen: ListenConfig;
  /** Client authentication; undefined when off (the embedded default). */
  auth?: AuthConfig;
  /** Which listener serves /metrics: the registry port, or the admin listener. */
  metrics: { listener: 'registry' | 'admin' };
  admin: {
    host: string;
    port: number;
    /** The single token of `admin.token` / PULLGATE_ADMIN_TOKEN, if given (identity "admin"). */
    token?: string;
    /** Every identity that may use the admin API: `admin.tokens`, plus `admin.token` as "admin". */
    identities: AdminIdentity[];
  };
  upstreams: UpstreamConfig[];
  defaultUpstream?: string;
  manifestMaxBytes: number;
  budgets: BudgetsConfig;
  /** Path of the policy file; undefined means the embedded default policy. */
  policyFile?: string;
  store: StoreConfig;
  cache: CacheConfig;
  /** How long an admitted digest keeps being served when its upstream or evidence is unreachable. */
  staleGraceSeconds: number;
  revalidate: RevalidateConfig;
  /** A pinned tag is asked of its upstream at most once per this many seconds. */
  tagRecheckSeconds: number;
  /** A client that takes no bytes for this long while a response is waiting to be written is cut off. */
  clientWriteTimeoutMs: number;
  /** Bounds on client connections to the listeners (src/server.ts). */
  connections: ConnectionLimits;
  log: { level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent' };
}
