// An in-process Docker token server (the `realm` of a registry in `auth: token` mode).
// GET /token?service=…&scope=repository:NAME:pull,push answers a JWT signed with an ES256 key whose
// certificate the registry trusts as its rootcertbundle. Anonymous callers get pull only; callers
// with the right Basic credentials get pull and push. Every /token request is counted, so tests
// can assert that clients cache tokens.
//
// distribution 2.8 finds the verification key by the JWT header's `kid`, which it compares with
// the libtrust fingerprint of each rootcertbundle certificate's key (see libtrustKeyId).
import { createHash, createPublicKey, randomUUID, sign, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

export interface TokenServerOptions {
  service: string;
  issuer: string;
  /** An EC P-256 private key; its certificate must be in the registry's rootcertbundle. */
  signingKey: KeyObject;
  username: string;
  password: string;
  ttlSeconds?: number;
  /** More users, each allowed to pull only repositories whose names start with one of `repositories`. */
  users?: LimitedUser[];
}

export interface LimitedUser {
  username: string;
  password: string;
  repositories: string[];
}

export interface TokenServer {
  /** The realm: http://127.0.0.1:PORT/token */
  url: string;
  /** /token requests served so far, including refused ones. */
  requests(): number;
  close(): Promise<void>;
}

export interface Access {
  type: string;
  name: string;
  actions: string[];
}

const AUTHENTICATED_ACTIONS = ['pull', 'push'];
const ANONYMOUS_ACTIONS = ['pull'];
// distribution 2.8 checks nbf without leeway, against its own second-resolution clock
const NOT_BEFORE_SKEW_S = 10;

/**
 * libtrust's key fingerprint: SHA-256 of the DER SubjectPublicKeyInfo, first 240 bits, base32
 * (RFC 4648, no padding) in colon-separated groups of four.
 */
export function libtrustKeyId(publicKey: KeyObject): string {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const b32 = base32(createHash('sha256').update(spki).digest().subarray(0, 30));
  return b32.match(/.{1,4}/g)!.join(':');
}

function base32(bytes: Uint8Array): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const byte of bytes) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += alphabet[(acc >>> bits) & 31];
    }
    acc &= (1 << bits) - 1;
  }
  return bits > 0 ? out + alphabet[(acc << (5 - bits)) & 31] : out;
}

/**
 * What a caller gets for the scopes it asked for: the requested actions on repositories that its
 * role allows, nothing on other resource types unless authenticated. Scopes are
 * `type:name:actions`; a parameter may hold several separated by spaces.
 */
export function grantedAccess(scopeParams: string[], authenticated: boolean, limitedTo?: string[]): Access[] {
  const granted: Access[] = [];
  for (const scope of scopeParams.flatMap((p) => p.split(' ')).filter(Boolean)) {
    const first = scope.indexOf(':');
    const last = scope.lastIndexOf(':');
    if (first < 0 || last === first) continue;
    const type = scope.slice(0, first);
    const name = scope.slice(first + 1, last);
    const requested = scope
      .slice(last + 1)
      .split(',')
      .filter(Boolean);
    const allowed =
      type === 'repository'
        ? authenticated
          ? AUTHENTICATED_ACTIONS
          : ANONYMOUS_ACTIONS
        : authenticated
          ? requested
          : [];
    const permitted = limitedTo === undefined || (type === 'repository' && limitedTo.some((p) => name.startsWith(p)));
    const actions = permitted ? requested.filter((a) => allowed.includes(a)) : [];
    granted.push({ type, name, actions });
  }
  return granted;
}

function signJwt(claims: object, key: KeyObject): string {
  const header = { typ: 'JWT', alg: 'ES256', kid: libtrustKeyId(createPublicKey(key)) };
  const input = `${b64url(header)}.${b64url(claims)}`;
  // JWS wants the raw r||s form, not DER
  const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

const b64url = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** undefined: no credentials; null: credentials that are not valid; else the user name. */
function basicUser(req: IncomingMessage, username: string, password: string): string | null | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const m = /^Basic\s+(\S+)$/i.exec(header);
  if (!m) return null;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon >= 0 && decoded.slice(0, colon) === username && decoded.slice(colon + 1) === password ? username : null;
}

function answer(res: ServerResponse, status: number, body: object, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

const tokenError = (code: string, message: string) => ({ errors: [{ code, message }] });

export async function startTokenServer(opts: TokenServerOptions): Promise<TokenServer> {
  const ttl = opts.ttlSeconds ?? 300;
  let count = 0;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://token.invalid');
    if (url.pathname !== '/token')
      return answer(res, 404, tokenError('NOT_FOUND', `no such endpoint ${url.pathname}; the realm is /token`));
    count++;
    // POST is OAuth2; answering 405 makes containerd fall back to the GET protocol
    if (req.method !== 'GET')
      return answer(res, 405, tokenError('UNSUPPORTED', `${req.method} /token is not supported; use GET`));
    const service = url.searchParams.get('service');
    if (service !== opts.service)
      return answer(res, 400, tokenError('INVALID_SERVICE', `service must be ${opts.service}, got ${service}`));
    let user = basicUser(req, opts.username, opts.password);
    let limitedTo: string[] | undefined;
    for (const u of opts.users ?? []) {
      if (user !== null) break;
      const other = basicUser(req, u.username, u.password);
      if (typeof other === 'string') {
        user = other;
        limitedTo = u.repositories;
      }
    }
    if (user === null) {
      return answer(res, 401, tokenError('UNAUTHORIZED', 'wrong username or password'), {
        'www-authenticate': 'Basic realm="pullgate-test-token"',
      });
    }
    const now = Math.floor(Date.now() / 1000);
    const token = signJwt(
      {
        iss: opts.issuer,
        sub: user ?? '',
        aud: opts.service,
        exp: now + ttl,
        nbf: now - NOT_BEFORE_SKEW_S,
        iat: now,
        jti: randomUUID(),
        access: grantedAccess(url.searchParams.getAll('scope'), user !== undefined, limitedTo),
      },
      opts.signingKey,
    );
    answer(res, 200, { token, access_token: token, expires_in: ttl, issued_at: new Date(now * 1000).toISOString() });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  if (address === null || typeof address === 'string')
    throw new Error(`token server: unexpected listen address ${String(address)}`);
  return {
    url: `http://127.0.0.1:${address.port}/token`,
    requests: () => count,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
