// Client authentication at the registry edge: the distribution token-auth flow. /v2 requests
// without a valid pullgate token get 401 with a Bearer challenge naming /token; /token checks
// credentials (Basic on GET, the OAuth2 password grant on POST) and issues a short-lived token
// with the access the rules give; each /v2 request is then checked against its token's access.
import type { Request, Response } from 'express';
import type { AuthConfig } from '../config/types.ts';
import { RegistryError } from '../oci/errors.ts';
import type { Logger } from '../ops/log.ts';
import type { UpstreamNames } from '../oci/upstreams.ts';
import type { Endpoint } from '../proxy/route.ts';
import { resolveName } from '../proxy/route.ts';
import type { Authenticator } from './authenticate.ts';
import { checkCredentials, parseBasic } from './basic.ts';
import { grantsFor, type Holder, type ResolvedScope } from './grants.ts';
import { parseRepositoryPattern, parseSubjectPattern, type AccessRule, type SubjectPattern } from './rules.ts';
import { parseScopes, pullScope } from './scope.ts';
import { issueToken, unseal, verifyToken, type Session, type TokenKey } from './token.ts';
import type { Credentials, Grant } from './types.ts';
import type { Glob } from '../policy/glob.ts';

/** Checks a pass-through client's own credentials at the upstream for one request. */
export interface UpstreamAuthorizer {
  check(credentials: Credentials, repo: { upstream: string; repository: string }, endpoint: Endpoint): Promise<void>;
}

export interface ClientAuthDeps {
  config: AuthConfig;
  upstreams: UpstreamNames;
  /** Canonical hosts of the upstreams with `passThrough`. */
  passThroughHosts: ReadonlySet<string>;
  passThrough?: UpstreamAuthorizer;
  key: TokenKey;
  authenticator: Authenticator;
  logger: Logger;
  /** Counts token requests and refused /v2 requests by outcome. */
  count?(outcome: 'issued' | 'refused' | 'unauthenticated' | 'denied'): void;
  /** Whether the registry listener terminates TLS (the derived realm is then https). */
  tls: boolean;
  now?: () => number;
}

const BEARER_MAX = 16 * 1024;
const FORM_MAX_BYTES = 32 * 1024;
const HOST_RE = /^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;
const NAME_RE = /^[a-z0-9._:/-]{1,512}$/;
const NS_RE = /^[a-z0-9.-]{1,253}(?::\d{1,5})?$/;

/** What the edge needs to know of an authenticated request. */
export interface ClientSession {
  session: Session;
  /** The name decision records carry. */
  identity: string;
}

export class ClientAuth {
  readonly #deps: ClientAuthDeps;
  readonly #rules: AccessRule[];
  readonly #now: () => number;

  constructor(deps: ClientAuthDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
    this.#rules = deps.config.rules.map((r) => ({
      subjects: r.identities.map((i) => parseSubjectPattern(i) as SubjectPattern),
      repositories: r.repositories.map((p) => parseRepositoryPattern(p) as Glob),
    }));
  }

  get service(): string {
    return this.#deps.config.service;
  }

  // ---- /v2 --------------------------------------------------------------------------------

  /**
   * The session of a /v2 request's bearer token; a 401 with the challenge otherwise. `name` is the
   * repository as the client addressed it (undefined for /v2/ itself), `ns` containerd's parameter.
   */
  session(req: Request, name: string | undefined, ns: string | undefined): ClientSession {
    const header = req.get('authorization');
    const m = header !== undefined && header.length <= BEARER_MAX ? /^Bearer +(\S+) *$/i.exec(header) : null;
    if (!m) {
      this.#deps.count?.('unauthenticated');
      throw this.#unauthorized(
        req,
        name,
        ns,
        undefined,
        'authentication required: log in to this registry (docker login, podman login, or node credentials)',
      );
    }
    const session = verifyToken(this.#deps.key, this.service, m[1] as string, Math.floor(this.#now() / 1000));
    if (typeof session === 'string') {
      this.#deps.count?.('unauthenticated');
      throw this.#unauthorized(req, name, ns, 'invalid_token', `the bearer token is not valid: ${session}`);
    }
    return { session, identity: session.identity.name };
  }

  /** Whether the session may pull this repository: 401 for a scope the token lacks, 403 for a refused one. */
  async authorize(
    req: Request,
    cs: ClientSession,
    target: { upstream: string; repository: string; clientName: string; ns?: string; endpoint: Endpoint },
  ): Promise<void> {
    const { session } = cs;
    const name = `${target.upstream}/${target.repository}`;
    const grant = session.access.find((g) => g.name === name);
    if (!grant) {
      // Not asked for when the token was issued: the client asks again for this scope.
      throw this.#unauthorized(
        req,
        target.clientName,
        target.ns,
        'insufficient_scope',
        `the token does not cover ${name}`,
      );
    }
    if (session.identity.kind === 'upstream') {
      cs.identity = `${session.identity.name}@${target.upstream}`;
      const credentials = session.sealed ? unseal(this.#deps.key, session.sealed, session.identity.name) : undefined;
      if (
        !grant.actions.includes('pull') ||
        !credentials ||
        !this.#deps.passThroughHosts.has(target.upstream) ||
        !this.#deps.passThrough
      ) {
        this.#deps.count?.('denied');
        throw new RegistryError(
          'denied',
          'DENIED',
          `"${session.identity.name}" is not a pullgate identity, and ${target.upstream} does not take pass-through credentials: ${name} is refused`,
        );
      }
      try {
        await this.#deps.passThrough.check(credentials, target, target.endpoint);
      } catch (err) {
        if (err instanceof RegistryError && err.failure === 'denied') this.#deps.count?.('denied');
        throw err;
      }
      return;
    }
    if (!grant.actions.includes('pull')) {
      this.#deps.count?.('denied');
      throw new RegistryError(
        'denied',
        'DENIED',
        `identity "${session.identity.name}" may not pull ${name}: no rule in auth.rules lets it (ask the proxy's admin)`,
      );
    }
  }

  #realm(req: Request, ns: string | undefined): string {
    let realm = this.#deps.config.realm;
    if (realm === undefined) {
      const host = req.get('host');
      const where = host && HOST_RE.test(host) ? host : `${req.socket.localAddress}:${req.socket.localPort}`;
      realm = `${this.#deps.tls ? 'https' : 'http'}://${where}/token`;
    }
    // containerd's mirror requests name the registry in ?ns=; the token request must know it too
    // to tell ghcr.io/acme/app from docker.io/acme/app.
    if (ns !== undefined && NS_RE.test(ns.toLowerCase())) {
      const u = new URL(realm);
      u.searchParams.set('ns', ns.toLowerCase());
      realm = u.toString();
    }
    return realm;
  }

  #unauthorized(
    req: Request,
    name: string | undefined,
    ns: string | undefined,
    error: 'invalid_token' | 'insufficient_scope' | undefined,
    message: string,
  ): RegistryError {
    const params = [`realm="${this.#realm(req, ns)}"`, `service="${this.service}"`];
    if (name !== undefined && NAME_RE.test(name)) params.push(`scope="${pullScope(name)}"`);
    if (error) params.push(`error="${error}"`);
    return new RegistryError('unauthorized', 'UNAUTHORIZED', message, { challenge: `Bearer ${params.join(',')}` });
  }

  // ---- /token -----------------------------------------------------------------------------

  /** GET (Basic credentials) and POST (OAuth2 password grant, as docker and containerd send). */
  async token(req: Request, res: Response): Promise<void> {
    const url = new URL(req.originalUrl, 'http://proxy.invalid');
    const post = req.method === 'POST';
    if (!post && req.method !== 'GET' && req.method !== 'HEAD') {
      res.set('allow', 'GET, POST');
      throw new RegistryError('method', 'UNSUPPORTED', `${req.method} /token is not supported: use GET or POST`);
    }
    let form: URLSearchParams | undefined;
    if (post) form = await readForm(req);
    const param = (k: string) => form?.get(k) ?? url.searchParams.get(k) ?? undefined;
    const service = param('service');
    if (service !== undefined && service !== this.service)
      throw oauthError(
        post,
        'invalid',
        'invalid_request',
        `service must be "${this.service}", got "${service.slice(0, 100)}"`,
      );
    if (post && form?.get('grant_type') !== 'password')
      throw oauthError(
        post,
        'invalid',
        'unsupported_grant_type',
        `grant_type ${JSON.stringify(form?.get('grant_type') ?? null)} is not supported: use "password" (refresh tokens are not issued)`,
      );
    let credentials: Credentials | string | undefined;
    if (post && form?.has('username')) {
      credentials = checkCredentials({ username: form.get('username') ?? '', password: form.get('password') ?? '' });
    } else credentials = parseBasic(req.get('authorization'));
    if (credentials === undefined || typeof credentials === 'string') {
      this.#deps.count?.('refused');
      throw new RegistryError(
        'unauthorized',
        'UNAUTHORIZED',
        credentials ??
          'credentials are required: log in to this registry (docker login / podman login, or node credentials)',
        { challenge: `Basic realm="${this.service}"` },
      );
    }
    const scopeParams = post ? [form?.get('scope') ?? ''] : url.searchParams.getAll('scope');
    const scopes = parseScopes(scopeParams);
    if (typeof scopes === 'string') throw oauthError(post, 'invalid', 'invalid_scope', scopes);
    const ns = url.searchParams.get('ns') ?? undefined;
    const resolved: ResolvedScope[] = [];
    for (const s of scopes) {
      if (s.type !== 'repository') continue;
      try {
        const r = resolveName(s.name, ns, this.#deps.upstreams);
        resolved.push({ name: `${r.upstream}/${r.repository}`, upstream: r.upstream, actions: s.actions });
      } catch {
        // Not an allowlisted repository: nothing to grant; the request itself is refused by routing.
      }
    }

    const verdict = await this.#deps.authenticator.identify(credentials);
    let holder: Holder;
    let sealed: Credentials | undefined;
    let identity: { name: string; kind: 'user' | 'serviceaccount' | 'upstream' };
    if ('identity' in verdict) {
      holder = { kind: 'identity', identity: verdict.identity };
      identity = { name: verdict.identity.name, kind: verdict.identity.kind };
    } else if (
      this.#deps.passThroughHosts.size > 0 &&
      (resolved.length === 0 || resolved.some((s) => this.#deps.passThroughHosts.has(s.upstream)))
    ) {
      // Not ours: perhaps the upstream's own credentials, which the upstream checks per request.
      holder = { kind: 'pass-through' };
      sealed = credentials;
      identity = { name: credentials.username, kind: 'upstream' };
    } else {
      this.#deps.count?.('refused');
      this.#deps.logger.info({ user: credentials.username.slice(0, 64), why: verdict.reason }, 'token refused');
      throw new RegistryError(
        'unauthorized',
        'UNAUTHORIZED',
        'authentication failed: unknown user, wrong password or an invalid token',
        {
          challenge: `Basic realm="${this.service}"`,
        },
      );
    }
    const access: Grant[] = grantsFor(this.#rules, holder, resolved, this.#deps.passThroughHosts);
    const now = Math.floor(this.#now() / 1000);
    const ttl = this.#deps.config.token.ttlSeconds;
    const token = issueToken(this.#deps.key, {
      identity,
      access,
      ...(sealed ? { credentials: sealed } : {}),
      service: this.service,
      ttlSeconds: ttl,
      now,
    });
    this.#deps.count?.('issued');
    this.#deps.logger.info(
      {
        identity: identity.name,
        kind: identity.kind,
        granted: access.filter((g) => g.actions.length > 0).map((g) => g.name),
        refused: access.filter((g) => g.actions.length === 0).map((g) => g.name),
      },
      'token issued',
    );
    const issuedAt = new Date(now * 1000).toISOString();
    res.status(200).set({ 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(
      JSON.stringify(
        post
          ? {
              access_token: token,
              token_type: 'Bearer',
              expires_in: ttl,
              issued_at: issuedAt,
              scope: scopeParams.join(' '),
            }
          : { token, access_token: token, expires_in: ttl, issued_at: issuedAt },
      ),
    );
  }
}

/** An OAuth2-style refusal for POST (`error`), the registry style for GET. */
function oauthError(post: boolean, failure: 'invalid', code: string, message: string): RegistryError {
  return new RegistryError(failure, 'UNSUPPORTED', message, post ? { detail: { error: code } } : {});
}

/** The form body of a POST, bounded. */
async function readForm(req: Request): Promise<URLSearchParams> {
  const type = req.get('content-type') ?? '';
  if (!type.toLowerCase().startsWith('application/x-www-form-urlencoded'))
    throw new RegistryError('invalid', 'UNSUPPORTED', 'POST /token takes an application/x-www-form-urlencoded form');
  const declared = Number(req.get('content-length') ?? 0);
  if (declared > FORM_MAX_BYTES) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > FORM_MAX_BYTES) throw tooLarge();
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function tooLarge(): RegistryError {
  return new RegistryError(
    'too-large',
    'SIZE_INVALID',
    `the token request form is larger than ${FORM_MAX_BYTES} bytes`,
  );
}
