// Parses WWW-Authenticate challenges (RFC 7235) as registries send them.

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

const TOKEN = /[!#$%&'*+.^_`|~0-9A-Za-z-]+/y;

/**
 * Parses one or more challenges. Bearer challenges from registries look like
 * `Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"`.
 */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const skipSpace = () => {
    while (i < header.length && (header[i] === ' ' || header[i] === '\t')) i++;
  };
  const token = (): string | undefined => {
    TOKEN.lastIndex = i;
    const m = TOKEN.exec(header);
    if (!m) return undefined;
    i = TOKEN.lastIndex;
    return m[0];
  };
  const quoted = (): string | undefined => {
    if (header[i] !== '"') return undefined;
    let value = '';
    for (i++; i < header.length; i++) {
      const c = header[i];
      if (c === '\\' && i + 1 < header.length) {
        value += header[++i];
        continue;
      }
      if (c === '"') {
        i++;
        return value;
      }
      value += c;
    }
    return undefined;
  };
  // Lenient for unquoted values (some registries send realm=https://... without quotes).
  const bare = (): string => {
    const start = i;
    while (i < header.length && header[i] !== ',' && header[i] !== ' ' && header[i] !== '\t') i++;
    return header.slice(start, i);
  };
  while (i < header.length) {
    skipSpace();
    if (header[i] === ',') {
      i++;
      continue;
    }
    const scheme = token();
    if (!scheme) break;
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(challenge);
    for (;;) {
      skipSpace();
      const start = i;
      const name = token();
      if (!name) break;
      skipSpace();
      if (header[i] !== '=') {
        i = start;
        break;
      } // the next challenge's scheme
      i++;
      skipSpace();
      const value = quoted() ?? bare();
      challenge.params[name.toLowerCase()] = value;
      skipSpace();
      if (header[i] === ',') i++;
    }
  }
  return out;
}

/** The largest token-service answer read. */
export const MAX_TOKEN_BODY = 256 * 1024;
const DEFAULT_TOKEN_SECONDS = 60;
/** Renew a token this long before the upstream says it expires, so a request never carries a dead one. */
const TOKEN_MARGIN_SECONDS = 10;

/**
 * A token service's answer (distribution's token spec: `token`, or OAuth2's `access_token`, and
 * `expires_in`), with how long to keep the token; 'invalid' when it is not JSON. Pure.
 */
export function parseTokenResponse(body: Buffer): { token?: string; ttlMs: number } | 'invalid' {
  let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return 'invalid';
  }
  if (typeof parsed !== 'object' || parsed === null) return { ttlMs: 0 };
  const token =
    typeof parsed.token === 'string'
      ? parsed.token
      : typeof parsed.access_token === 'string'
        ? parsed.access_token
        : undefined;
  const seconds =
    typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : DEFAULT_TOKEN_SECONDS;
  return { ...(token ? { token } : {}), ttlMs: Math.max(1, seconds - TOKEN_MARGIN_SECONDS) * 1000 };
}
