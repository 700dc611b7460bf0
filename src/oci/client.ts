// A small OCI distribution client on undici, bound to one allowlisted upstream. It negotiates
// upstream auth (bearer token flow, basic), follows blob redirects without leaking credentials,
// and reads manifests once, bounded and hashed.
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import type { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import { LRUCache } from 'lru-cache';
import { SingleFlight } from '../util/single-flight.ts';
import type { UpstreamConfig } from '../config/types.ts';
import { parseChallenges, type Challenge } from './challenge.ts';
import { discard, readLimited, TooLargeError, upstreamStatusError } from './body.ts';
import { isNotFound, RegistryError, type ErrorCode } from './errors.ts';
import { matchesDigest, sha256Digest } from './digest.ts';
import { isDigest } from './reference.ts';
import { INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES, MediaType, type FetchedManifest, type ImageIndex } from './types.ts';

export type Method = 'GET' | 'HEAD';

export interface UpstreamResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable;
}

export interface ClientObserver {
  /** Called once per upstream round trip (auth and redirects included). */
  upstreamRequest(upstream: string, op: string, status: number | 'error', seconds: number): void;
}

const MAX_REDIRECTS = 5;
/** Larger body chunks: fewer hops per GiB through hashing and the client socket. */
const BODY_HIGH_WATER_MARK = 1024 * 1024;
const MAX_ERROR_BODY = 64 * 1024;
const MAX_TOKEN_BODY = 256 * 1024;
const DEFAULT_TOKEN_SECONDS = 60;
/** Renew a token this long before the upstream says it expires, so a request never carries a dead one. */
const TOKEN_MARGIN_SECONDS = 10;

const ALL_MANIFEST_TYPES = [...MANIFEST_MEDIA_TYPES].join(', ');

/**
 * The Accept header sent upstream: the client's, when it names manifest types; otherwise (absent,
 * or only wildcards like curl's) every type this proxy serves, since registries answer a bare
 * wildcard with Docker schema 2 or a 404 for OCI content.
 */
function manifestAccept(accept: string | undefined): string {
  return accept && MANIFEST_MEDIA_TYPES.some((t) => accept.includes(t)) ? accept : ALL_MANIFEST_TYPES;
}

interface Credential {
  header: string;
}

function headerValue(h: UpstreamResponse['headers'], name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The upstream's own name for what went wrong on the network, mapped to 502/504 naming the upstream. */
export function networkError(host: string, err: unknown, timeouts: UpstreamConfig['timeouts']): RegistryError {
  const code = (err as { code?: string }).code ?? '';
  const timeoutMs: Record<string, number> = {
    UND_ERR_CONNECT_TIMEOUT: timeouts.connectMs,
    UND_ERR_HEADERS_TIMEOUT: timeouts.headersMs,
    UND_ERR_BODY_TIMEOUT: timeouts.bodyMs,
  };
  const ms = timeoutMs[code];
  if (ms !== undefined) {
    return new RegistryError('timeout', 'UNAVAILABLE', `upstream ${host} did not answer within ${ms} ms (${code})`, {
      cause: err,
    });
  }
  const why = code || (err instanceof Error ? err.message : String(err));
  return new RegistryError('upstream', 'UNAVAILABLE', `upstream ${host} is unreachable: ${why}`, { cause: err });
}

export class RegistryClient {
  readonly upstream: UpstreamConfig;
  readonly #base: URL;
  readonly #agent: Agent;
  /** Blob fetches have connections of their own: long transfers never starve manifest and token requests. */
  readonly #blobAgent: Agent;
  /** For hosts an allowlisted upstream sends us to (token realm, blob storage): never given upstream credentials. */
  readonly #external: Agent;
  readonly #tokens = new LRUCache<string, string>({ max: 10_000, ttlAutopurge: false });
  readonly #pendingTokens = new SingleFlight<string>();
  /** Set once the upstream asks for basic auth: then every request carries it up front. */
  #basic = false;
  readonly #observer: ClientObserver | undefined;

  constructor(upstream: UpstreamConfig, observer?: ClientObserver) {
    this.upstream = upstream;
    this.#base = new URL(upstream.url);
    const ca = upstream.caFile ? [...rootCertificates, readFileSync(upstream.caFile, 'utf8')] : undefined;
    const options: Agent.Options = {
      connect: { timeout: upstream.timeouts.connectMs, ...(ca ? { ca } : {}) },
      headersTimeout: upstream.timeouts.headersMs,
      bodyTimeout: upstream.timeouts.bodyMs,
      keepAliveTimeout: 30_000,
      connections: 128,
    };
    this.#agent = new Agent(options);
    this.#blobAgent = new Agent({ ...options, connections: 64 });
    this.#external = new Agent({ ...options, connections: 32 });
    this.#observer = observer;
  }

  get host(): string {
    return this.upstream.host;
  }

  async close(): Promise<void> {
    await Promise.all([this.#agent.close(), this.#blobAgent.close(), this.#external.close()]);
  }

  /** One request to the upstream registry API, authenticated as the upstream demands. */
  async send(
    method: Method,
    path: string,
    repository: string,
    headers: Record<string, string>,
    op: string,
  ): Promise<UpstreamResponse> {
    const scope = `repository:${repository}:pull`;
    const url = new URL(path, this.#base);
    const agent = op === 'blob' ? this.#blobAgent : this.#agent;
    const first = await this.#roundTrip(agent, method, url, { ...headers, ...this.#cachedAuth(scope) }, op);
    if (first.status !== 401) return first;
    const challengeHeader = headerValue(first.headers, 'www-authenticate');
    await drain(first.body);
    const credential = challengeHeader ? await this.#answer(parseChallenges(challengeHeader), scope) : undefined;
    if (!credential) return this.#roundTrip(agent, method, url, headers, op); // the upstream's 401 goes back as is
    return this.#roundTrip(agent, method, url, { ...headers, authorization: credential.header }, op);
  }

  /** Fetches a manifest once: size-limited, digest computed over the exact bytes, media type checked. */
  async manifest(
    repository: string,
    reference: string,
    accept: string | undefined,
    maxBytes: number,
  ): Promise<FetchedManifest> {
    const res = await this.send(
      'GET',
      `/v2/${repository}/manifests/${reference}`,
      repository,
      { accept: manifestAccept(accept) },
      'manifest',
    );
    if (res.status !== 200) throw await this.statusError(res, 'MANIFEST_UNKNOWN');
    const declared = Number(headerValue(res.headers, 'content-length'));
    if (declared > maxBytes) {
      discard(res.body);
      throw this.#tooLarge(repository, reference, maxBytes);
    }
    let bytes: Buffer;
    try {
      bytes = await readLimited(res.body, maxBytes);
    } catch (err) {
      if (err instanceof TooLargeError) throw this.#tooLarge(repository, reference, maxBytes);
      throw networkError(this.host, err, this.upstream.timeouts);
    }
    const where = `${this.host}/${repository}:${reference}`;
    if (isDigest(reference)) {
      if (!matchesDigest(bytes, reference)) {
        throw new RegistryError(
          'upstream',
          'MANIFEST_INVALID',
          `upstream ${this.host} returned a manifest for ${reference} whose content does not hash to that digest; refusing it`,
        );
      }
    }
    const digest = isDigest(reference) ? reference : sha256Digest(bytes);
    const claimed = headerValue(res.headers, 'docker-content-digest');
    if (!isDigest(reference) && claimed?.startsWith('sha256:') && claimed !== digest) {
      throw new RegistryError(
        'upstream',
        'MANIFEST_INVALID',
        `upstream ${this.host} claims ${where} is ${claimed} but its content hashes to ${digest}; refusing it`,
      );
    }
    const mediaType = manifestMediaType(bytes, headerValue(res.headers, 'content-type'), where, this.host);
    return { bytes, mediaType, digest };
  }

  /**
   * The digest a tag points at upstream, by HEAD (registries do not count HEADs against pull limits).
   * Only used to notice that a tag moved: what is served is always content the proxy hashed itself.
   */
  async resolveTag(repository: string, tag: string, accept: string | undefined, maxBytes: number): Promise<string> {
    const res = await this.send(
      'HEAD',
      `/v2/${repository}/manifests/${tag}`,
      repository,
      { accept: manifestAccept(accept) },
      'resolve',
    );
    if (res.status !== 200) throw await this.statusError(res, 'MANIFEST_UNKNOWN');
    await drain(res.body);
    // Pins, revocations and stored manifests are keyed by sha256: another algorithm is not believed.
    const claimed = headerValue(res.headers, 'docker-content-digest');
    if (claimed?.startsWith('sha256:') && isDigest(claimed)) return claimed;
    return (await this.manifest(repository, tag, accept, maxBytes)).digest;
  }

  /** A whole blob, following upstream redirects to object storage. */
  async blob(method: Method, repository: string, digest: string): Promise<UpstreamResponse> {
    let res = await this.send(method, `/v2/${repository}/blobs/${digest}`, repository, {}, 'blob');
    for (let hop = 0; isRedirect(res.status); hop++) {
      const location = headerValue(res.headers, 'location');
      await drain(res.body);
      if (!location)
        throw new RegistryError(
          'upstream',
          'UNAVAILABLE',
          `upstream ${this.host} redirected ${digest} without a Location`,
        );
      if (hop >= MAX_REDIRECTS)
        throw new RegistryError(
          'upstream',
          'UNAVAILABLE',
          `upstream ${this.host} redirected ${digest} more than ${MAX_REDIRECTS} times`,
        );
      const target = new URL(location, this.#base);
      if (target.protocol !== 'https:' && !(this.upstream.insecure && target.protocol === 'http:')) {
        throw new RegistryError(
          'upstream',
          'UNAVAILABLE',
          `upstream ${this.host} redirected ${digest} to a non-HTTPS location; refusing to follow`,
        );
      }
      const sameOrigin = target.origin === this.#base.origin;
      // Object storage URLs carry their own signature: upstream credentials must not travel there.
      res = sameOrigin
        ? await this.send(method, target.pathname + target.search, repository, {}, 'blob')
        : await this.#roundTrip(this.#external, method, target, {}, 'blob-redirect');
    }
    return res;
  }

  /** Reads a small blob fully and checks it against its digest (signature payloads, bundles). */
  async smallBlob(repository: string, digest: string, maxBytes: number): Promise<Buffer> {
    const res = await this.blob('GET', repository, digest);
    if (res.status !== 200) throw await this.statusError(res, 'BLOB_UNKNOWN');
    let bytes: Buffer;
    try {
      bytes = await readLimited(res.body, maxBytes);
    } catch (err) {
      if (err instanceof TooLargeError)
        throw new RegistryError(
          'upstream',
          'SIZE_INVALID',
          `blob ${digest} in ${this.host}/${repository} is larger than ${maxBytes} bytes`,
        );
      throw networkError(this.host, err, this.upstream.timeouts);
    }
    if (!matchesDigest(bytes, digest)) {
      throw new RegistryError(
        'upstream',
        'DIGEST_INVALID',
        `upstream ${this.host} returned content for blob ${digest} that does not hash to it`,
      );
    }
    return bytes;
  }

  /** The upstream's referrers of a digest; on 404 (no referrers API) the tag schema fallback `sha256-<hex>`. */
  async referrers(
    repository: string,
    digest: string,
    maxBytes: number,
  ): Promise<{ index: ImageIndex; source: 'api' | 'tag' | 'none' }> {
    const res = await this.send(
      'GET',
      `/v2/${repository}/referrers/${digest}`,
      repository,
      { accept: MediaType.ociIndex },
      'referrers',
    );
    if (res.status === 200) {
      const bytes = await this.#readBody(res, maxBytes, `referrers of ${digest}`);
      return { index: parseIndex(bytes, `${this.host} referrers of ${digest}`), source: 'api' };
    }
    if (res.status !== 404 && res.status !== 405 && res.status !== 400)
      throw await this.statusError(res, 'MANIFEST_UNKNOWN');
    await drain(res.body);
    const fallbackTag = digest.replace(':', '-');
    try {
      const m = await this.manifest(repository, fallbackTag, MediaType.ociIndex, maxBytes);
      if (!INDEX_MEDIA_TYPES.includes(m.mediaType)) return { index: emptyIndex(), source: 'none' };
      return { index: parseIndex(m.bytes, `${this.host}/${repository}:${fallbackTag}`), source: 'tag' };
    } catch (err) {
      if (isNotFound(err)) return { index: emptyIndex(), source: 'none' };
      throw err;
    }
  }

  /** One page of the tag list, body as the upstream sent it (bounded) plus its Link header. */
  async tags(repository: string, query: URLSearchParams, maxBytes: number): Promise<{ body: Buffer; link?: string }> {
    const qs = query.size ? `?${query}` : '';
    const res = await this.send(
      'GET',
      `/v2/${repository}/tags/list${qs}`,
      repository,
      { accept: 'application/json' },
      'tags',
    );
    if (res.status !== 200) throw await this.statusError(res, 'NAME_UNKNOWN');
    const body = await this.#readBody(res, maxBytes, `tag list of ${repository}`);
    const link = headerValue(res.headers, 'link');
    return { body, ...(link ? { link } : {}) };
  }

  async #readBody(res: UpstreamResponse, maxBytes: number, what: string): Promise<Buffer> {
    try {
      return await readLimited(res.body, maxBytes);
    } catch (err) {
      if (err instanceof TooLargeError)
        throw new RegistryError(
          'upstream',
          'SIZE_INVALID',
          `upstream ${this.host}: ${what} is larger than ${maxBytes} bytes`,
        );
      throw networkError(this.host, err, this.upstream.timeouts);
    }
  }

  async statusError(res: UpstreamResponse, notFound: ErrorCode): Promise<RegistryError> {
    const body = await readLimited(res.body, MAX_ERROR_BODY).catch(() => Buffer.alloc(0));
    return upstreamStatusError(this.host, res.status, body, notFound, headerValue(res.headers, 'retry-after'));
  }

  #tooLarge(repository: string, reference: string, maxBytes: number): RegistryError {
    return new RegistryError(
      'upstream',
      'MANIFEST_INVALID',
      `manifest ${this.host}/${repository}:${reference} is larger than the proxy's limit of ${maxBytes} bytes (manifestMaxBytes)`,
    );
  }

  #cachedAuth(scope: string): Record<string, string> {
    if (this.#basic) {
      const basic = this.#basicHeader();
      return basic ? { authorization: basic } : {};
    }
    const token = this.#tokens.get(scope);
    return token ? { authorization: `Bearer ${token}` } : {};
  }

  #basicHeader(): string | undefined {
    const { username, password } = this.upstream;
    if (username === undefined || password === undefined) return undefined;
    return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  }

  async #answer(challenges: Challenge[], scope: string): Promise<Credential | undefined> {
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer) {
      const token = await this.#token(bearer, scope);
      return { header: `Bearer ${token}` };
    }
    if (challenges.some((c) => c.scheme === 'basic')) {
      const basic = this.#basicHeader();
      if (!basic) return undefined;
      this.#basic = true;
      return { header: basic };
    }
    return undefined;
  }

  /** Concurrent requests for one scope share one token request. */
  #token(challenge: Challenge, scope: string): Promise<string> {
    return this.#pendingTokens.run(scope, () => this.#fetchToken(challenge, scope));
  }

  async #fetchToken(challenge: Challenge, scope: string): Promise<string> {
    const realm = challenge.params.realm;
    if (!realm)
      throw new RegistryError(
        'upstream',
        'UNAVAILABLE',
        `upstream ${this.host} sent a Bearer challenge without a realm`,
      );
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryError(
        'upstream',
        'UNAVAILABLE',
        `upstream ${this.host} sent an invalid token realm "${realm}"`,
      );
    }
    if (url.protocol !== 'https:' && !(this.upstream.insecure && url.protocol === 'http:')) {
      throw new RegistryError(
        'upstream',
        'UNAVAILABLE',
        `upstream ${this.host} names a non-HTTPS token realm ${url.origin}; set insecure: true only for test registries`,
      );
    }
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
    url.searchParams.append('scope', challenge.params.scope || scope);
    const basic = this.#basicHeader();
    const dispatcher = url.origin === this.#base.origin ? this.#agent : this.#external;
    const res = await this.#roundTrip(dispatcher, 'GET', url, basic ? { authorization: basic } : {}, 'token');
    if (res.status !== 200) {
      await drain(res.body);
      throw new RegistryError(
        res.status === 401 || res.status === 403 ? 'unauthorized' : 'upstream',
        res.status === 401 || res.status === 403 ? 'UNAUTHORIZED' : 'UNAVAILABLE',
        `token service ${url.origin} of upstream ${this.host} answered ${res.status}${basic ? ' to the configured credentials' : ' to an anonymous request'}`,
      );
    }
    const body = await this.#readBody(res, MAX_TOKEN_BODY, 'token response');
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      throw new RegistryError(
        'upstream',
        'UNAVAILABLE',
        `token service ${url.origin} of upstream ${this.host} answered with invalid JSON`,
      );
    }
    const token =
      typeof parsed.token === 'string'
        ? parsed.token
        : typeof parsed.access_token === 'string'
          ? parsed.access_token
          : undefined;
    if (!token)
      throw new RegistryError(
        'upstream',
        'UNAVAILABLE',
        `token service ${url.origin} of upstream ${this.host} answered without a token`,
      );
    const seconds =
      typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : DEFAULT_TOKEN_SECONDS;
    const ttl = Math.max(1, seconds - TOKEN_MARGIN_SECONDS) * 1000;
    this.#tokens.set(scope, token, { ttl });
    return token;
  }

  async #roundTrip(
    dispatcher: Dispatcher,
    method: Method,
    url: URL,
    headers: Record<string, string>,
    op: string,
  ): Promise<UpstreamResponse> {
    const started = performance.now();
    try {
      const res = await request(url, {
        dispatcher,
        method,
        headers: { 'user-agent': 'pullgate', ...headers },
        highWaterMark: BODY_HIGH_WATER_MARK,
      });
      this.#observer?.upstreamRequest(this.host, op, res.statusCode, (performance.now() - started) / 1000);
      return { status: res.statusCode, headers: res.headers, body: res.body };
    } catch (err) {
      this.#observer?.upstreamRequest(this.host, op, 'error', (performance.now() - started) / 1000);
      throw networkError(this.host, err, this.upstream.timeouts);
    }
  }
}

function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

async function drain(body: Readable): Promise<void> {
  // Small bodies are read off so the connection returns to the pool; large ones are cut.
  await readLimited(body, MAX_ERROR_BODY).catch(() => undefined);
}

function emptyIndex(): ImageIndex {
  return { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
}

function parseIndex(bytes: Buffer, where: string): ImageIndex {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new RegistryError('upstream', 'MANIFEST_INVALID', `${where} is not valid JSON`);
  }
  const index = doc as Partial<ImageIndex>;
  if (!index || typeof index !== 'object' || !Array.isArray(index.manifests)) {
    throw new RegistryError('upstream', 'MANIFEST_INVALID', `${where} is not an OCI index`);
  }
  return { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: index.manifests };
}

/**
 * The media type a manifest is served with. The upstream's Content-Type must be a manifest type and
 * agree with the document's own `mediaType` field, so that the proxy and the client read the same
 * bytes as the same kind of document.
 */
function manifestMediaType(bytes: Buffer, contentType: string | undefined, where: string, host: string): string {
  let doc: { mediaType?: unknown; manifests?: unknown; schemaVersion?: unknown };
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new RegistryError(
      'upstream',
      'MANIFEST_INVALID',
      `upstream ${host} returned a manifest for ${where} that is not valid JSON`,
    );
  }
  if (!doc || typeof doc !== 'object' || doc.schemaVersion !== 2) {
    throw new RegistryError(
      'upstream',
      'MANIFEST_INVALID',
      `upstream ${host} returned a manifest for ${where} that is not schemaVersion 2 (Docker schema 1 is not supported)`,
    );
  }
  const header = contentType?.split(';')[0]?.trim();
  const declared = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  const mediaType =
    header && MANIFEST_MEDIA_TYPES.includes(header)
      ? header
      : (declared ?? (Array.isArray(doc.manifests) ? MediaType.ociIndex : MediaType.ociManifest));
  if (!MANIFEST_MEDIA_TYPES.includes(mediaType)) {
    throw new RegistryError(
      'upstream',
      'MANIFEST_INVALID',
      `upstream ${host} returned ${where} as unsupported media type "${mediaType}"`,
    );
  }
  if (declared !== undefined && declared !== mediaType) {
    throw new RegistryError(
      'upstream',
      'MANIFEST_INVALID',
      `upstream ${host} served ${where} as ${mediaType} but the document says it is ${declared}; refusing ambiguous content`,
    );
  }
  return mediaType;
}
