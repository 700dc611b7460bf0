// Builds client authentication from the config: the token signing key (from its file, or
// generated for a single replica), the password checker, the identity sources and the
// pass-through checker of each upstream that asks for one.
import { readFileSync } from 'node:fs';
import type { Config } from '../config/types.ts';
import type { Logger } from '../ops/log.ts';
import type { Metrics } from '../ops/metrics.ts';
import type { UpstreamNames } from '../oci/upstreams.ts';
import { Authenticator } from './authenticate.ts';
import { BcryptPool } from './bcrypt-pool.ts';
import { ClientAuth, type UpstreamAuthorizer } from './client-auth.ts';
import { generateTokenKey, tokenKeyFromPem, type TokenKey } from './token.ts';

export interface ClientAuthSetup {
  auth: ClientAuth;
  close(): Promise<void>;
}

export function setUpClientAuth(
  config: Config,
  upstreams: UpstreamNames,
  logger: Logger,
  metrics: Metrics,
  passThrough: UpstreamAuthorizer | undefined,
): ClientAuthSetup | undefined {
  const auth = config.auth;
  if (!auth) return undefined;
  let key: TokenKey;
  if (auth.token.keyFile) {
    try {
      key = tokenKeyFromPem(readFileSync(auth.token.keyFile));
    } catch (err) {
      throw new Error(`auth.token.keyFile ${auth.token.keyFile}: ${(err as Error).message}`);
    }
  } else {
    key = generateTokenKey();
    logger.warn(
      'auth.token.keyFile is not set: tokens are signed with a key generated at start, which only this process accepts (one replica only; clients log in again after a restart)',
    );
  }
  const pool = new BcryptPool();
  let authenticator: Authenticator;
  try {
    authenticator = new Authenticator(auth, pool, logger);
  } catch (err) {
    void pool.close();
    throw err;
  }
  const passThroughHosts = new Set(config.upstreams.filter((u) => u.passThrough).map((u) => u.host));
  const client = new ClientAuth({
    config: auth,
    upstreams,
    passThroughHosts,
    ...(passThrough ? { passThrough } : {}),
    key,
    authenticator,
    logger,
    count: (outcome) => metrics.clientAuth.inc({ outcome }),
    tls: config.listen.tlsCert !== undefined,
  });
  logger.info(
    {
      service: auth.service,
      key: key.source,
      kid: key.kid,
      htpasswd: auth.htpasswd?.file,
      kubernetes: auth.kubernetes?.issuer,
      rules: auth.rules.length,
      passThrough: [...passThroughHosts],
    },
    'client authentication on',
  );
  return { auth: client, close: () => pool.close() };
}
