// Pass-through: a client's own credentials for an upstream, checked there for every request
// before pullgate answers it from anything it holds (stored manifests, the blob cache). The
// upstream is asked with HEAD, as that client, for the object the request names; its answer is
// cached per credential (a hash of it, never the credential) and object for `cacheSeconds`.
// One client's credentials are only ever sent for that client's own requests, and only to the
// upstream the request names (and the token realm it sends us to).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { Agent, request, type Dispatcher, type ResponseData } from '../oci/undici.ts';
import type { UpstreamConfig } from '../config/types.ts';
import { discard, readLimited } from '../oci/body.ts';
import { MAX_TOKEN_BODY, parseChallenges, parseTokenResponse } from '../oci/challenge.ts';
import { egressFailure, networkError, type ClientObserver } from '../oci/client.ts';
import { releaseWith, type UpstreamFetchBudget } from '../oci/fetch-budget.ts';
import { guardedConnector, originOnlyConnector, parseCidr, type Cidr } from '../oci/egress.ts';
import { RegistryError } from '../oci/errors.ts';
import { MANIFEST_MEDIA_TYPES } from '../oci/types.ts';
import type { Endpoint } from '../proxy/route.ts';
import { Lru } from '../util/lru.ts';
import { SingleFlight } from '../util/single-flight.ts';
import type { UpstreamAuthorizer } from './client-auth.ts';
import type { Credentials } from './types.ts';

export type UpstreamAnswer = 'allowed' | 'refused' | 'missing' | 'rate-limited' | 'failed';

/** What the upstream's status to the client's own HEAD means for the request. Pure. */
export function upstreamAnswer(status: number): UpstreamAnswer {
  if (status === 200 || status === 307 || status === 302 || status === 303 || status === 301 || status === 308)
    return 'allowed';
  if (status === 401 || status === 403) return 'refused';
  if (status === 404) return 'missing';
  if (status === 429) return 'rate-limited';
  return 'failed';
}

/** The upstream request that proves access to what an endpoint names. */
export function probeFor(repository: string, endpoint: Endpoint): { path: string; what: string } {
  switch (endpoint.kind) {
    case 'manifest':
      return { path: `/v2/${repository}/manifests/${endpoint.reference}`, what: `manifest ${endpoint.reference}` };
    case 'blob':
      return { path: `/v2/${repository}/blobs/${endpoint.digest}`, what: `blob ${endpoint.digest}` };
    case 'referrers':
      return { path: `/v2/${repository}/manifests/${endpoint.digest}`, what: `manifest ${endpoint.digest}` };
    case 'tags':
      return { path: `/v2/${repository}/tags/list?n=1`, what: 'the tag list' };
  }
}

const MAX_DRAIN = 64 * 1024;
const ACCEPT = [...MANIFEST_MEDIA_TYPES].join(', ');

interface Upstream {
  config: UpstreamConfig;
  base: URL;
  agent: Agent;
  /** For token realms on other hosts: internal addresses refused unless allowlisted (src/oci/egress.ts). */
  realmAgent: Agent;
  cacheMs: number;
}

export class PassThroughChecker implements UpstreamAuthorizer {
  readonly #upstreams = new Map<string, Upstream>();
  /** `credential|upstream/repository|object` → the upstream's answer. */
  readonly #answers = new Lru<string, UpstreamAnswer>({ max: 50_000 });
  /** `credential|upstream/repository` → proven readable (a manifest check passed): blobs need no HEAD each. */
  readonly #readable = new Lru<string, true>({ max: 50_000 });
  /** `credential|scope` → the upstream's bearer token for that client. */
  readonly #tokens = new Lru<string, string>({ max: 50_000 });
  readonly #flights = new SingleFlight<UpstreamAnswer>();
  readonly #observer: ClientObserver | undefined;
  readonly #budgetFor: ((host: string) => UpstreamFetchBudget) | undefined;

  /** `budgetFor`: the upstream's fetch budget (limits.upstreamRequests), which these checks share with the registry client. */
  constructor(
    upstreams: readonly UpstreamConfig[],
    observer?: ClientObserver,
    budgetFor?: (host: string) => UpstreamFetchBudget,
  ) {
    this.#observer = observer;
    this.#budgetFor = budgetFor;
    for (const u of upstreams) {
      if (!u.passThrough) continue;
      const ca = u.caFile ? [...rootCertificates, readFileSync(u.caFile, 'utf8')] : undefined;
      const connect = { timeout: u.timeouts.connectMs, ...(ca ? { ca } : {}) };
      const base = new URL(u.url);
      const options = { headersTimeout: u.timeouts.headersMs, bodyTimeout: u.timeouts.bodyMs, connections: 16 };
      const egress = {
        allowHosts: [...u.egress.allowHosts, ...u.tokenRealms],
        allowCidrs: u.egress.allowCidrs.map((c) => parseCidr(c)).filter((c): c is Cidr => c !== undefined),
      };
      this.#upstreams.set(u.host, {
        config: u,
        base,
        cacheMs: u.passThrough.cacheSeconds * 1000,
        agent: new Agent({ ...options, connect: originOnlyConnector(base, connect) }),
        realmAgent: new Agent({ ...options, connect: guardedConnector(egress, connect) }),
      });
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.#upstreams.values()].flatMap((u) => [u.agent.close(), u.realmAgent.close()]));
  }

  async check(c: Credentials, repo: { upstream: string; repository: string }, endpoint: Endpoint): Promise<void> {
    const u = this.#upstreams.get(repo.upstream);
    if (!u) throw new RegistryError('denied', 'DENIED', `${repo.upstream} does not take pass-through credentials`);
    const who = createHash('sha256').update(`${c.username}\0${c.password}`).digest('base64url');
    const repoKey = `${who}|${repo.upstream}/${repo.repository}`;
    // A repository the client was just let into by a manifest check: its blobs are that image's.
    if (endpoint.kind === 'blob' && this.#readable.get(repoKey)) return;
    const probe = probeFor(repo.repository, endpoint);
    const key = `${repoKey}|${probe.path}`;
    let answer = this.#answers.get(key);
    if (answer === undefined) {
      answer = await this.#flights.run(key, () => this.#ask(u, c, who, repo.repository, probe.path));
      if (answer === 'allowed' || answer === 'refused' || answer === 'missing')
        this.#answers.set(key, answer, { ttl: Math.max(1, u.cacheMs) });
    }
    const where = `${repo.upstream}/${repo.repository}`;
    switch (answer) {
      case 'allowed':
        if (endpoint.kind !== 'blob' && u.cacheMs > 0) this.#readable.set(repoKey, true, { ttl: u.cacheMs });
        return;
      case 'refused':
        throw new RegistryError(
          'denied',
          'DENIED',
          `upstream ${repo.upstream} refuses the credentials of "${c.username}" for ${probe.what} in ${where} (pass-through: the upstream decides who may pull)`,
        );
      case 'missing':
        throw new RegistryError(
          'not-found',
          endpoint.kind === 'blob' ? 'BLOB_UNKNOWN' : 'MANIFEST_UNKNOWN',
          `upstream ${repo.upstream} has no ${probe.what} in ${where} for "${c.username}"`,
        );
      case 'rate-limited':
        throw new RegistryError(
          'rate-limited',
          'TOOMANYREQUESTS',
          `upstream ${repo.upstream} is rate limiting "${c.username}"`,
          {
            retryAfter: '10',
          },
        );
      case 'failed':
        throw new RegistryError(
          'upstream',
          'UNAVAILABLE',
          `upstream ${repo.upstream} did not answer the pass-through check for ${probe.what} in ${where}; refusing (fail closed)`,
        );
    }
  }

  async #ask(u: Upstream, c: Credentials, who: string, repository: string, path: string): Promise<UpstreamAnswer> {
    const scope = `repository:${repository}:pull`;
    const url = new URL(path, u.base);
    const cached = this.#tokens.get(`${who}|${u.config.host}|${scope}`);
    const first = await this.#head(u, url, cached ? `Bearer ${cached}` : basic(c));
    if (first.status !== 401) return upstreamAnswer(first.status);
    const bearer = parseChallenges(first.challenge ?? '').find((ch) => ch.scheme === 'bearer');
    if (!bearer) return 'refused'; // Basic was sent up front and refused
    const token = await this.#token(u, c, who, bearer.params, scope);
    if (token === undefined) return 'refused';
    const second = await this.#head(u, url, `Bearer ${token}`);
    return upstreamAnswer(second.status);
  }

  async #head(u: Upstream, url: URL, authorization: string): Promise<{ status: number; challenge?: string }> {
    const res = await this.#send(u, u.agent, url, { accept: ACCEPT, authorization }, 'HEAD', 'pass-through');
    discard(res.body);
    const challenge = res.headers['www-authenticate'];
    return { status: res.statusCode, ...(typeof challenge === 'string' ? { challenge } : {}) };
  }

  async #token(
    u: Upstream,
    c: Credentials,
    who: string,
    params: Record<string, string>,
    scope: string,
  ): Promise<string | undefined> {
    const realm = URL.parse(params.realm ?? '');
    if (!realm || (realm.protocol !== 'https:' && !(u.config.insecure && realm.protocol === 'http:'))) return undefined;
    const own = realm.origin === u.base.origin;
    // A client's credentials go to the upstream and the realms allowlisted for it, nowhere else.
    if (!own && !u.config.tokenRealms.includes(realm.host))
      throw new RegistryError(
        'upstream',
        'UNAVAILABLE',
        `upstream ${u.config.host} names a token realm on ${realm.host}, which is not allowlisted for credentials (upstreams[].tokenRealms); refusing (fail closed)`,
      );
    if (params.service) realm.searchParams.set('service', params.service);
    realm.searchParams.append('scope', scope);
    const dispatcher = own ? u.agent : u.realmAgent;
    const res = await this.#send(u, dispatcher, realm, { authorization: basic(c) }, 'GET', 'pass-through-token');
    if (res.statusCode !== 200) {
      await readLimited(res.body, MAX_DRAIN).catch(() => undefined);
      if (res.statusCode === 401 || res.statusCode === 403) return undefined;
      throw new RegistryError(
        'upstream',
        'UNAVAILABLE',
        `token service of upstream ${u.config.host} answered ${res.statusCode}`,
      );
    }
    const parsed = parseTokenResponse(await readLimited(res.body, MAX_TOKEN_BODY));
    if (parsed === 'invalid')
      throw new RegistryError(
        'upstream',
        'UNAVAILABLE',
        `token service of upstream ${u.config.host} answered with invalid JSON`,
      );
    if (!parsed.token) return undefined;
    this.#tokens.set(`${who}|${u.config.host}|${scope}`, parsed.token, { ttl: parsed.ttlMs });
    return parsed.token;
  }

  async #send(
    u: Upstream,
    dispatcher: Dispatcher,
    url: URL,
    headers: Record<string, string>,
    method: 'GET' | 'HEAD',
    op: string,
  ): Promise<ResponseData> {
    const signal = AbortSignal.timeout(u.config.timeouts.totalMs);
    let release: (() => void) | undefined;
    try {
      release = await this.#budgetFor?.(u.config.host).acquire('requests', signal);
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'TOOMANYREQUESTS')
        this.#observer?.upstreamBusy?.(u.config.host, 'requests');
      if (signal.aborted) throw passThroughTimeout(u);
      throw err;
    }
    const started = performance.now();
    try {
      const res = await request(url, {
        dispatcher,
        method,
        headers: { 'user-agent': 'pullgate', ...headers },
        signal,
      });
      this.#observer?.upstreamRequest(u.config.host, op, res.statusCode, (performance.now() - started) / 1000);
      if (release) releaseWith(res.body, release);
      return res;
    } catch (err) {
      release?.();
      this.#observer?.upstreamRequest(u.config.host, op, 'error', (performance.now() - started) / 1000);
      if (dispatcher === u.realmAgent) throw egressFailure(u.config.host, op, url, err);
      if (signal.aborted) throw passThroughTimeout(u);
      throw networkError(u.config.host, err, u.config.timeouts);
    }
  }
}

function passThroughTimeout(u: Upstream): RegistryError {
  return new RegistryError(
    'timeout',
    'UNAVAILABLE',
    `upstream ${u.config.host} did not answer the pass-through check within ${u.config.timeouts.totalMs} ms (timeouts.totalMs)`,
  );
}

function basic(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}
