// Who presented these credentials: an htpasswd user (bcrypt, checked off the event loop), or a
// Kubernetes service account whose token is the password. Results are cached briefly by a hash
// of the credentials, so a client fetching a token per pull costs one bcrypt check per few minutes.
import { createHash } from 'node:crypto';
import { Lru } from '../util/lru.ts';
import type { AuthConfig } from '../config/types.ts';
import type { Logger } from '../ops/log.ts';
import type { PasswordChecker } from './bcrypt-pool.ts';
import { HTPASSWD_MAX_BYTES, parseHtpasswd } from './htpasswd.ts';
import { JWKS_MAX_BYTES, parseJwks, type Jwk } from './jwks.ts';
import { looksLikeJwt, parseJwt } from './jwt.ts';
import { serviceAccountIdentity } from './kubernetes.ts';
import type { Credentials, Identity } from './types.ts';
import { WatchedFile } from './watched-file.ts';

const OK_TTL_MS = 5 * 60_000;
const FAIL_TTL_MS = 60_000;
/** Compared when the user is unknown, so that timing does not tell which users exist. */
const DUMMY_HASH = '$2b$10$wTPeSl1dhv/.XpiOZcZC2uFbty5PQoZ8TmNHQ7oUkHhxPJEq6K9ya';
const K8S_LEEWAY_SECONDS = 30;

export type Verdict = { identity: Identity } | { reason: string };

export class Authenticator {
  readonly #config: AuthConfig;
  readonly #checker: PasswordChecker;
  readonly #htpasswd: WatchedFile<Map<string, string>> | undefined;
  readonly #jwks: WatchedFile<Jwk[]> | undefined;
  readonly #results = new Lru<string, boolean>({ max: 10_000 });
  readonly #groupsOf = new Map<string, string[]>();
  readonly #now: () => number;

  constructor(config: AuthConfig, checker: PasswordChecker, logger: Logger, now: () => number = Date.now) {
    this.#config = config;
    this.#checker = checker;
    this.#now = now;
    if (config.htpasswd)
      this.#htpasswd = new WatchedFile({
        path: config.htpasswd.file,
        what: 'htpasswd file (auth.htpasswd.file)',
        parse: parseHtpasswd,
        maxBytes: HTPASSWD_MAX_BYTES,
        logger,
      });
    if (config.kubernetes)
      this.#jwks = new WatchedFile({
        path: config.kubernetes.jwksFile,
        what: 'cluster JWKS (auth.kubernetes.jwksFile)',
        parse: parseJwks,
        maxBytes: JWKS_MAX_BYTES,
        logger,
      });
    for (const [group, users] of Object.entries(config.groups))
      for (const user of users) this.#groupsOf.set(user, [...(this.#groupsOf.get(user) ?? []), group]);
  }

  /** Whether identities of this kind can be checked at all (what a token request may be). */
  get sources(): { htpasswd: boolean; kubernetes: boolean } {
    return { htpasswd: this.#htpasswd !== undefined, kubernetes: this.#jwks !== undefined };
  }

  async identify(c: Credentials): Promise<Verdict> {
    const k8s = this.#config.kubernetes;
    if (this.#jwks && k8s && looksLikeJwt(c.password)) {
      const jwt = parseJwt(c.password);
      if (typeof jwt === 'string') return { reason: `service-account token: ${jwt}` };
      const id = serviceAccountIdentity(
        jwt,
        this.#jwks.current(),
        { issuer: k8s.issuer, audiences: k8s.audiences, leewaySeconds: K8S_LEEWAY_SECONDS },
        Math.floor(this.#now() / 1000),
      );
      return typeof id === 'string' ? { reason: `service-account token: ${id}` } : { identity: id };
    }
    if (!this.#htpasswd) return { reason: 'not a service-account token, and no htpasswd file is configured' };
    const hash = this.#htpasswd.current().get(c.username);
    const ok = await this.#compare(c, hash ?? DUMMY_HASH);
    if (!ok || hash === undefined) return { reason: 'unknown user or wrong password' };
    return {
      identity: {
        name: c.username,
        kind: 'user',
        groups: [...(this.#groupsOf.get(c.username) ?? []), 'system:authenticated'],
      },
    };
  }

  async #compare(c: Credentials, hash: string): Promise<boolean> {
    const key = createHash('sha256').update(`${c.username}\0${c.password}\0${hash}`).digest('base64');
    const known = this.#results.get(key);
    if (known !== undefined) return known;
    const ok = await this.#checker.compare(c.password, hash);
    this.#results.set(key, ok, { ttl: ok ? OK_TTL_MS : FAIL_TTL_MS });
    return ok;
  }
}
