// A small OCI distribution client on undici, bound to one allowlisted upstream. It negotiates
// upstream auth (bearer token flow, basic), follows blob redirects without leaking credentials,
// and reads manifests once, bounded and hashed.
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import type { Readable } from 'node:stream';
import { Agent, request, type AgentOptions, type BuildOptions, type Dispatcher } from './undici.ts';
import { OwnConnections, ownSocketOptions } from './own-connections.ts';
import { Lru } from '../util/lru.ts';
import { SingleFlight } from '../util/single-flight.ts';
import type { UpstreamConfig } from '../config/types.ts';
import { MAX_TOKEN_BODY, parseChallenges, parseTokenResponse, type Challenge } from './challenge.ts';
import { discard, feedLimited, readLimited, TooLargeError, upstreamStatusError } from './body.ts';
import { isNotFound, RegistryError, type ErrorCode } from './errors.ts';
import { digestHasher, matchesDigest, sha256Digest } from './digest.ts';
import { isDigest } from './reference.ts';
import { guardedConnector, originOnlyConnector, parseCidr, type Cidr, type EgressRule } from './egress.ts';
import {
  DEFAULT_UPSTREAM_FETCH_LIMITS,
  releaseWith,
  UpstreamFetchBudget,
  type UpstreamFetchLimits,
} from './fetch-budget.ts';
import type { SharedSlots } from '../util/shared-admission-queue.ts';
import {
  INDEX_MEDIA_TYPES,
  MANIFEST_MEDIA_TYPES,
  MediaType,
  type Descriptor,
  type FetchedManifest,
  type ImageIndex,
} from './types.ts';

export type Method = 'GET' | 'HEAD';

export interface UpstreamResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable;
  /** From a host the upstream sent us to (a redirect target), not the upstream: its body is never echoed. */
  external?: boolean;
}

/** One upstream operation's overall deadline, joined with the signal of the client it is for. */
class Deadline {
  readonly signal: AbortSignal;
  readonly #timer: NodeJS.Timeout;

  constructor(ms: number, reason: () => RegistryError, client?: AbortSignal) {
    const controller = new AbortController();
    this.#timer = setTimeout(() => controller.abort(reason()), ms).unref();
    this.signal = client ? AbortSignal.any([client, controller.signal]) : controller.signal;
  }

  clear(): void {
    clearTimeout(this.#timer);
  }

  /** The deadline's or the client's reason when the operation was aborted, else the error itself. */
  failure(err: unknown): unknown {
    return this.signal.aborted && !(err instanceof RegistryError) ? this.signal.reason : err;
  }
}

/** The error a client's own abort carries through the layers (the edge has nobody to tell). */
export function clientGone(): RegistryError {
  return new RegistryError('unavailable', 'UNAVAILABLE', 'the client closed the connection before the answer');
}

export interface ClientObserver {
  /** Called once per upstream round trip (auth and redirects included). */
  upstreamRequest(upstream: string, op: string, status: number | 'error', seconds: number): void;
  /** Called when a request is refused because the upstream's fetch budget and its queue are full. */
  upstreamBusy?(upstream: string, budget: 'requests' | 'blobs'): void;
}

const MAX_REDIRECTS = 5;
/** How long an idle upstream connection is kept, undici's and the fill thread's own alike. */
const KEEP_ALIVE_MS = 30_000;
/** Larger body chunks: fewer hops per GiB through hashing and the client socket. */
const BODY_HIGH_WATER_MARK = 1024 * 1024;
const MAX_ERROR_BODY = 64 * 1024;

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

/** The Content-Length an upstream declared, when it is one. */
function declaredLength(h: UpstreamResponse['headers']): number | undefined {
  const v = headerValue(h, 'content-length')?.trim();
  return v !== undefined && /^[0-9]{1,15}$/.test(v) ? Number(v) : undefined;
}

/** The upstream's own name for what went wrong on the network, mapped to 502/504 naming the upstream. */
export function networkError(host: string, err: unknown, timeouts: UpstreamConfig['timeouts']): RegistryError {
  if (err instanceof RegistryError) return err; // a deadline's or a leaving client's reason
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
  /**
   * For hosts an allowlisted upstream sends us to (token realm, blob storage): internal addresses
   * refused unless allowlisted (src/oci/egress.ts); credentials only for allowlisted realms.
   */
  readonly #external: Agent;
  readonly #egress: EgressRule;
  /** Blob GETs on connections of this client's own (the fill thread's client: own-connections.ts). */
  readonly #own: { upstream: OwnConnections; external: OwnConnections } | undefined;
  readonly #tokens = new Lru<string, string>({ max: 10_000 });
  readonly #pendingTokens = new SingleFlight<string>();
  /** Set once the upstream asks for basic auth: then every request carries it up front. */
  #basic = false;
  readonly #observer: ClientObserver | undefined;
  /** Concurrent requests to this upstream, and the bounded queue behind them (src/oci/fetch-budget.ts). */
  readonly budget: UpstreamFetchBudget;

  constructor(
    upstream: UpstreamConfig,
    observer?: ClientObserver,
    limits: UpstreamFetchLimits = DEFAULT_UPSTREAM_FETCH_LIMITS,
    /** The blob budget's count, shared with the fill thread's client of the same upstream. */
    sharedBlobSlots?: SharedSlots,
    /** Blob GETs on connections of the client's own, whose bodies a fill reads from one buffer (own-connections.ts). */
    choices: { ownBlobConnections?: boolean } = {},
  ) {
    this.upstream = upstream;
    this.budget = new UpstreamFetchBudget(upstream.host, limits, sharedBlobSlots);
    this.#base = new URL(upstream.url);
    const ca = upstream.caFile ? [...rootCertificates, readFileSync(upstream.caFile, 'utf8')] : undefined;
    const connect = { timeout: upstream.timeouts.connectMs, ...(ca ? { ca } : {}) };
    const options: AgentOptions = {
      connect: originOnlyConnector(this.#base, connect),
      headersTimeout: upstream.timeouts.headersMs,
      bodyTimeout: upstream.timeouts.bodyMs,
      keepAliveTimeout: KEEP_ALIVE_MS,
      // As many connections as the budget lets requests through: undici's own queue stays empty.
      connections: limits.requests,
    };
    // Realms allowlisted for credentials are trusted enough to be connected to wherever they are.
    this.#egress = {
      allowHosts: [...upstream.egress.allowHosts, ...upstream.tokenRealms],
      allowCidrs: upstream.egress.allowCidrs.map((c) => parseCidr(c)).filter((c): c is Cidr => c !== undefined),
    };
    this.#agent = new Agent(options);
    this.#blobAgent = new Agent({ ...options, connections: limits.blobRequests });
    this.#external = new Agent({ ...options, connect: guardedConnector(this.#egress, connect), connections: 32 });
    if (choices.ownBlobConnections) {
      const own = { ...connect, ...ownSocketOptions() } as BuildOptions;
      const timeouts = {
        headersTimeoutMs: upstream.timeouts.headersMs,
        bodyTimeoutMs: upstream.timeouts.bodyMs,
        keepAliveMs: KEEP_ALIVE_MS,
        maxIdle: limits.blobRequests,
      };
      this.#own = {
        upstream: new OwnConnections(originOnlyConnector(this.#base, own), timeouts),
        external: new OwnConnections(guardedConnector(this.#egress, own), { ...timeouts, maxIdle: 4 }),
      };
    }
    this.#observer = observer;
  }

  get host(): string {
    return this.upstream.host;
  }

  async close(): Promise<void> {
    this.#own?.upstream.close();
    this.#own?.external.close();
    await Promise.all([this.#agent.close(), this.#blobAgent.close(), this.#external.close()]);
  }

  /** One request to the upstream registry API, authenticated as the upstream demands. */
  async send(
    method: Method,
    path: string | URL,
    repository: string,
    headers: Record<string, string>,
    op: string,
    signal?: AbortSignal,
  ): Promise<UpstreamResponse> {
    const scope = `repository:${repository}:pull`;
    // Paths are built by this client and always start with /v2/; a URL is a same-origin redirect target.
    const url = typeof path === 'string' ? new URL(path, this.#base) : path;
    if (url.origin !== this.#base.origin) throw new Error(`internal: ${url.origin} is not upstream ${this.host}`);
    const agent = op === 'blob' ? this.#blobAgent : this.#agent;
    const first = await this.#roundTrip(agent, method, url, { ...headers, ...this.#cachedAuth(scope) }, op, signal);
    if (first.status !== 401) return first;
    const challengeHeader = headerValue(first.headers, 'www-authenticate');
    await drain(first.body);
    const credential = challengeHeader
      ? await this.#answer(parseChallenges(challengeHeader), scope, signal)
      : undefined;
    if (!credential) return this.#roundTrip(agent, method, url, headers, op, signal); // the upstream's 401 goes back as is
    return this.#roundTrip(agent, method, url, { ...headers, authorization: credential.header }, op, signal);
  }

  /** The overall deadline of one operation (timeouts.totalMs, or blobTotalMs for blob transfers). */
  #deadline(what: string, signal: AbortSignal | undefined, blob = false): Deadline {
    const ms = blob ? this.upstream.timeouts.blobTotalMs : this.upstream.timeouts.totalMs;
    const key = blob ? 'timeouts.blobTotalMs' : 'timeouts.totalMs';
    return new Deadline(
      ms,
      () =>
        new RegistryError(
          'timeout',
          'UNAVAILABLE',
          `upstream ${this.host} did not complete ${what} within ${ms} ms (${key})`,
        ),
      signal,
    );
  }

  /** Fetches a manifest once: size-limited, digest computed over the exact bytes, media type checked. */
  async manifest(
    repository: string,
    reference: string,
    accept: string | undefined,
    maxBytes: number,
    signal?: AbortSignal,
  ): Promise<FetchedManifest> {
    const deadline = this.#deadline(`manifest ${repository}:${reference}`, signal);
    try {
      return await this.#manifest(repository, reference, accept, maxBytes, deadline);
    } catch (err) {
      throw networkError(this.host, deadline.failure(err), this.upstream.timeouts);
    } finally {
      deadline.clear();
    }
  }

  async #manifest(
    repository: string,
    reference: string,
    accept: string | undefined,
    maxBytes: number,
    deadline: Deadline,
  ): Promise<FetchedManifest> {
    const res = await this.send(
      'GET',
      `/v2/${repository}/manifests/${reference}`,
      repository,
      { accept: manifestAccept(accept) },
      'manifest',
      deadline.signal,
    );
    if (res.status !== 200) throw await this.statusError(res, 'MANIFEST_UNKNOWN');
    const declared = declaredLength(res.headers);
    if (declared !== undefined && declared > maxBytes) {
      discard(res.body);
      throw this.#tooLarge(repository, reference, maxBytes);
    }
    let bytes: Buffer;
    try {
      bytes = await readLimited(res.body, maxBytes, declared);
    } catch (err) {
      if (err instanceof TooLargeError) throw this.#tooLarge(repository, reference, maxBytes);
      throw networkError(this.host, deadline.failure(err), this.upstream.timeouts);
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
    // A tag the upstream names by another algorithm (sha512:…) or a malformed digest is refused, as
    // resolveTag refuses it: were it served and pinned by the sha256 computed here, every later
    // re-check of the tag would fail and the pin would never see the tag move.
    if (!isDigest(reference) && claimed !== undefined && !(claimed.startsWith('sha256:') && isDigest(claimed)))
      throw sha256Only(this.host, repository, reference, claimed);
    if (!isDigest(reference) && claimed !== undefined && claimed !== digest) {
      throw new RegistryError(
        'upstream',
        'MANIFEST_INVALID',
        `upstream ${this.host} claims ${where} is ${claimed} but its content hashes to ${digest}; refusing it`,
      );
    }
    const { mediaType, doc } = readManifest(bytes, headerValue(res.headers, 'content-type'), where, this.host);
    return { bytes, mediaType, digest, doc };
  }

  /**
   * The digest a tag points at upstream, by HEAD (registries do not count HEADs against pull limits).
   * Only used to notice that a tag moved: what is served is always content the proxy hashed itself.
   */
  async resolveTag(
    repository: string,
    tag: string,
    accept: string | undefined,
    maxBytes: number,
    signal?: AbortSignal,
  ): Promise<string> {
    const deadline = this.#deadline(`HEAD ${repository}:${tag}`, signal);
    let res: UpstreamResponse;
    try {
      res = await this.send(
        'HEAD',
        `/v2/${repository}/manifests/${tag}`,
        repository,
        { accept: manifestAccept(accept) },
        'resolve',
        deadline.signal,
      );
      if (res.status !== 200) throw await this.statusError(res, 'MANIFEST_UNKNOWN');
      await drain(res.body);
    } catch (err) {
      throw networkError(this.host, deadline.failure(err), this.upstream.timeouts);
    } finally {
      deadline.clear();
    }
    // Pins, revocations and stored manifests are keyed by sha256: another algorithm is not believed.
    const claimed = headerValue(res.headers, 'docker-content-digest');
    if (claimed?.startsWith('sha256:') && isDigest(claimed)) return claimed;
    // Another algorithm (sha512:…) or a malformed digest is not believed, and not looked past either:
    // an upstream that names its tags so is refused rather than re-fetched on every check.
    if (claimed !== undefined) throw sha256Only(this.host, repository, tag, claimed);
    return (await this.manifest(repository, tag, accept, maxBytes, signal)).digest;
  }

  /** A whole blob, following upstream redirects to object storage. */
  async blob(method: Method, repository: string, digest: string, signal?: AbortSignal): Promise<UpstreamResponse> {
    // The deadline travels with the body: undici destroys it with the deadline's reason when it fires.
    const deadline = this.#deadline(`blob ${digest}`, signal, method === 'GET');
    try {
      const res = await this.#blob(method, repository, digest, deadline.signal);
      res.body.once('close', () => deadline.clear());
      return res;
    } catch (err) {
      deadline.clear();
      throw networkError(this.host, deadline.failure(err), this.upstream.timeouts);
    }
  }

  async #blob(method: Method, repository: string, digest: string, signal: AbortSignal): Promise<UpstreamResponse> {
    let res = await this.send(method, `/v2/${repository}/blobs/${digest}`, repository, {}, 'blob', signal);
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
        ? await this.send(method, target, repository, {}, 'blob', signal)
        : await this.#roundTrip(this.#external, method, target, {}, 'blob-redirect', signal);
    }
    return res;
  }

  /**
   * Reads a small blob fully and checks it against its digest (signature payloads, bundles): into
   * one buffer of its declared size, hashed as it arrives.
   */
  async smallBlob(repository: string, digest: string, maxBytes: number, signal?: AbortSignal): Promise<Buffer> {
    return (await this.smallBlobUnless(repository, digest, maxBytes, undefined, signal)) as Buffer;
  }

  /**
   * smallBlob, each chunk shown to `stop` as it arrives: once it returns true the rest is not read
   * (nor the digest checked) and the answer is undefined. Without `stop`, always the blob.
   */
  async smallBlobUnless(
    repository: string,
    digest: string,
    maxBytes: number,
    stop: ((chunk: Buffer) => boolean) | undefined,
    signal?: AbortSignal,
  ): Promise<Buffer | undefined> {
    const deadline = this.#deadline(`blob ${digest}`, signal);
    const hasher = digestHasher(digest);
    let bytes: Buffer | undefined;
    try {
      const res = await this.#blob('GET', repository, digest, deadline.signal);
      if (res.status !== 200) throw await this.statusError(res, 'BLOB_UNKNOWN');
      const declared = declaredLength(res.headers);
      bytes = stop
        ? await readLimited(res.body, maxBytes, declared, hasher?.hash, stop)
        : await readLimited(res.body, maxBytes, declared, hasher?.hash);
    } catch (err) {
      if (err instanceof TooLargeError)
        throw new RegistryError(
          'upstream',
          'SIZE_INVALID',
          `blob ${digest} in ${this.host}/${repository} is larger than ${maxBytes} bytes`,
        );
      throw networkError(this.host, deadline.failure(err), this.upstream.timeouts);
    } finally {
      deadline.clear();
    }
    if (bytes === undefined) return undefined;
    if (!hasher?.matches()) {
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
    signal?: AbortSignal,
  ): Promise<{ index: ImageIndex; source: 'api' | 'tag' | 'none' }> {
    const deadline = this.#deadline(`referrers of ${digest}`, signal);
    try {
      const res = await this.send(
        'GET',
        `/v2/${repository}/referrers/${digest}`,
        repository,
        { accept: MediaType.ociIndex },
        'referrers',
        deadline.signal,
      );
      if (res.status === 200) {
        const bytes = await this.#readBody(res, maxBytes, `referrers of ${digest}`);
        return { index: parseIndex(bytes, `${this.host} referrers of ${digest}`), source: 'api' };
      }
      if (res.status !== 404 && res.status !== 405 && res.status !== 400)
        throw await this.statusError(res, 'MANIFEST_UNKNOWN');
      await drain(res.body);
    } catch (err) {
      throw networkError(this.host, deadline.failure(err), this.upstream.timeouts);
    } finally {
      deadline.clear();
    }
    const fallbackTag = digest.replace(':', '-');
    try {
      const m = await this.manifest(repository, fallbackTag, MediaType.ociIndex, maxBytes, signal);
      if (!INDEX_MEDIA_TYPES.includes(m.mediaType)) return { index: emptyIndex(), source: 'none' };
      return { index: parseIndex(m.bytes, `${this.host}/${repository}:${fallbackTag}`), source: 'tag' };
    } catch (err) {
      if (isNotFound(err)) return { index: emptyIndex(), source: 'none' };
      throw err;
    }
  }

  /**
   * One page of the tag list, fed to `take` as it arrives (at most `maxBytes`, never held whole;
   * `take` returns true once it has seen enough), and the upstream's Link header.
   */
  async tags(
    repository: string,
    query: URLSearchParams,
    maxBytes: number,
    take: (piece: Buffer) => boolean,
    signal?: AbortSignal,
  ): Promise<{ link?: string }> {
    const qs = query.size ? `?${query}` : '';
    const what = `tag list of ${repository}`;
    const deadline = this.#deadline(`the ${what}`, signal);
    try {
      const res = await this.send(
        'GET',
        `/v2/${repository}/tags/list${qs}`,
        repository,
        { accept: 'application/json' },
        'tags',
        deadline.signal,
      );
      if (res.status !== 200) throw await this.statusError(res, 'NAME_UNKNOWN');
      try {
        await feedLimited(res.body, maxBytes, take, declaredLength(res.headers));
      } catch (err) {
        throw err instanceof TooLargeError ? this.#bodyTooLarge(what, maxBytes) : err;
      }
      const link = headerValue(res.headers, 'link');
      return link ? { link } : {};
    } catch (err) {
      throw networkError(this.host, deadline.failure(err), this.upstream.timeouts);
    } finally {
      deadline.clear();
    }
  }

  async #readBody(res: UpstreamResponse, maxBytes: number, what: string): Promise<Buffer> {
    try {
      return await readLimited(res.body, maxBytes, declaredLength(res.headers));
    } catch (err) {
      if (err instanceof TooLargeError) throw this.#bodyTooLarge(what, maxBytes);
      throw networkError(this.host, err, this.upstream.timeouts);
    }
  }

  #bodyTooLarge(what: string, maxBytes: number): RegistryError {
    return new RegistryError(
      'upstream',
      'SIZE_INVALID',
      `upstream ${this.host}: ${what} is larger than ${maxBytes} bytes`,
    );
  }

  async statusError(res: UpstreamResponse, notFound: ErrorCode): Promise<RegistryError> {
    // What a redirect target says is not the upstream's word, and may be an internal service's: never echoed.
    const body = res.external
      ? (discard(res.body), Buffer.alloc(0))
      : await readLimited(res.body, MAX_ERROR_BODY).catch(() => Buffer.alloc(0));
    const where = res.external ? `${this.host} (at the location it redirected to)` : this.host;
    return upstreamStatusError(where, res.status, body, notFound, headerValue(res.headers, 'retry-after'));
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

  async #answer(challenges: Challenge[], scope: string, signal?: AbortSignal): Promise<Credential | undefined> {
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer) {
      const token = await this.#token(bearer, scope, signal);
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

  /** Concurrent requests for one scope share one token request, given up only when all of them left. */
  #token(challenge: Challenge, scope: string, signal?: AbortSignal): Promise<string> {
    return this.#pendingTokens.run(scope, (shared) => this.#fetchToken(challenge, scope, shared), signal);
  }

  /** Whether configured credentials may go to a token realm: the upstream's own origin, or allowlisted. */
  #realmTrusted(url: URL): boolean {
    return url.origin === this.#base.origin || this.upstream.tokenRealms.includes(url.host);
  }

  async #fetchToken(challenge: Challenge, scope: string, signal: AbortSignal): Promise<string> {
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
    // A realm the admin did not allowlist may hand out anonymous tokens, never receive the credentials.
    const basic = this.#realmTrusted(url) ? this.#basicHeader() : undefined;
    const dispatcher = url.origin === this.#base.origin ? this.#agent : this.#external;
    const res = await this.#roundTrip(dispatcher, 'GET', url, basic ? { authorization: basic } : {}, 'token', signal);
    if (res.status !== 200) {
      await drain(res.body);
      throw new RegistryError(
        res.status === 401 || res.status === 403 ? 'unauthorized' : 'upstream',
        res.status === 401 || res.status === 403 ? 'UNAUTHORIZED' : 'UNAVAILABLE',
        `token service ${url.origin} of upstream ${this.host} answered ${res.status}${basic ? ' to the configured credentials' : ' to an anonymous request'}`,
      );
    }
    const body = await this.#readBody(res, MAX_TOKEN_BODY, 'token response');
    const parsed = parseTokenResponse(body);
    if (parsed === 'invalid')
      throw new RegistryError(
        'upstream',
        'UNAVAILABLE',
        `token service ${url.origin} of upstream ${this.host} answered with invalid JSON`,
      );
    if (!parsed.token)
      throw new RegistryError(
        'upstream',
        'UNAVAILABLE',
        `token service ${url.origin} of upstream ${this.host} answered without a token`,
      );
    this.#tokens.set(scope, parsed.token, { ttl: parsed.ttlMs });
    return parsed.token;
  }

  async #roundTrip(
    dispatcher: Dispatcher,
    method: Method,
    url: URL,
    headers: Record<string, string>,
    op: string,
    signal?: AbortSignal,
  ): Promise<UpstreamResponse> {
    const external = dispatcher === this.#external;
    // One slot per round trip, held until its body closes; blob transfers (and where their redirects
    // lead) have a budget of their own, so that long streams never starve manifests and tokens.
    const kind = op === 'blob' || op === 'blob-redirect' ? 'blobs' : 'requests';
    let release: () => void;
    try {
      release = await this.budget.acquire(kind, signal);
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'TOOMANYREQUESTS')
        this.#observer?.upstreamBusy?.(this.host, kind);
      throw err;
    }
    const started = performance.now();
    const own = method === 'GET' && kind === 'blobs' ? this.#own?.[external ? 'external' : 'upstream'] : undefined;
    const sent = { 'user-agent': 'pullgate', ...headers };
    try {
      const res = own
        ? await own.get(url, sent, signal)
        : await request(url, {
            dispatcher,
            method,
            headers: sent,
            highWaterMark: BODY_HIGH_WATER_MARK,
            ...(signal ? { signal } : {}),
          }).then((r) => ({ status: r.statusCode, headers: r.headers, body: r.body }));
      this.#observer?.upstreamRequest(this.host, op, res.status, (performance.now() - started) / 1000);
      releaseWith(res.body, release);
      return { ...res, ...(external ? { external } : {}) };
    } catch (err) {
      release();
      this.#observer?.upstreamRequest(this.host, op, 'error', (performance.now() - started) / 1000);
      if (signal?.aborted) throw signal.reason;
      if (external) throw egressFailure(this.host, op, url, err);
      throw networkError(this.host, err, this.upstream.timeouts);
    }
  }
}

/**
 * A host the upstream sent us to could not be used. One message whatever happened (refused by the
 * egress policy, connection refused, timed out), so that answers cannot map internal ports; the
 * detail is the cause, for the proxy's log.
 */
export function egressFailure(host: string, op: string, url: URL, err: unknown): RegistryError {
  const what = op.includes('token') ? 'token realm' : 'redirect location';
  return new RegistryError(
    'upstream',
    'UNAVAILABLE',
    `upstream ${host} sent the proxy to a ${what} it cannot use: refused by the egress policy or unreachable (the proxy's log has the detail)`,
    { cause: new Error(`${url.origin}: ${(err as { code?: string }).code ?? ''} ${(err as Error).message}`) },
  );
}

/** An upstream named a tag's manifest by a digest that is not a sha256 one. */
function sha256Only(host: string, repository: string, tag: string, claimed: string): RegistryError {
  return new RegistryError(
    'upstream',
    'DIGEST_INVALID',
    `upstream ${host} answered ${repository}:${tag} with digest ${JSON.stringify(claimed.slice(0, 80))}; pullgate resolves tags by sha256 digests only`,
  );
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

export function parseIndex(bytes: Buffer, where: string): ImageIndex {
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
  // Entries anyone with push rights can write: what is not a descriptor (an object naming a digest)
  // is dropped here, so that neither the referrers endpoint nor evidence discovery trips over it.
  const manifests = (index.manifests as unknown[]).filter(isDescriptor);
  return { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests };
}

function isDescriptor(d: unknown): d is Descriptor {
  const desc = d as Partial<Descriptor> | null;
  return typeof desc === 'object' && desc !== null && typeof desc.digest === 'string' && isDigest(desc.digest);
}

/**
 * The media type a manifest is served with. The upstream's Content-Type must be a manifest type and
 * agree with the document's own `mediaType` field, so that the proxy and the client read the same
 * bytes as the same kind of document.
 */
export function manifestMediaType(bytes: Buffer, contentType: string | undefined, where: string, host: string): string {
  return readManifest(bytes, contentType, where, host).mediaType;
}

/** manifestMediaType, with the document it parsed (the one parse of a manifest's bytes per fetch). */
export function readManifest(
  bytes: Buffer,
  contentType: string | undefined,
  where: string,
  host: string,
): { mediaType: string; doc: unknown } {
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
  // The lists the gate walks (an index's platform manifests, an image's layers) must be lists.
  const list = INDEX_MEDIA_TYPES.includes(mediaType) ? 'manifests' : 'layers';
  const value = (doc as Record<string, unknown>)[list];
  if ((list === 'manifests' || value !== undefined) && !Array.isArray(value)) {
    throw new RegistryError(
      'upstream',
      'MANIFEST_INVALID',
      `upstream ${host} returned ${where} as ${mediaType} but its "${list}" is not a list; refusing it`,
    );
  }
  if (declared !== undefined && declared !== mediaType) {
    throw new RegistryError(
      'upstream',
      'MANIFEST_INVALID',
      `upstream ${host} served ${where} as ${mediaType} but the document says it is ${declared}; refusing ambiguous content`,
    );
  }
  return { mediaType, doc };
}
