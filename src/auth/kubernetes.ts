// Kubernetes service-account tokens (also the tokens the kubelet hands its credential providers),
// verified offline against the cluster's JWKS: signature, issuer, audience, expiry and the
// service-account subject. Pure: the keys and the clock come in.
import { audiences, timeProblem, verifyJwt, type ParsedJwt } from './jwt.ts';
import type { Jwk } from './jwks.ts';
import type { Identity } from './types.ts';

export interface KubernetesTokenRules {
  /** The API server's `--service-account-issuer`, compared exactly. */
  issuer: string;
  /** Accepted audiences: the token's `aud` must name one. */
  audiences: readonly string[];
  /** Seconds of clock skew tolerated on exp, nbf and iat. */
  leewaySeconds: number;
}

const SUBJECT_RE =
  /^system:serviceaccount:([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?):([a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?)$/;

/** The service account a token proves, or why it proves nothing. */
export function serviceAccountIdentity(
  jwt: ParsedJwt,
  keys: readonly Jwk[],
  rules: KubernetesTokenRules,
  now: number,
): Identity | string {
  const candidates = keys.filter((k) => k.alg === jwt.alg && (jwt.kid === undefined || k.kid === jwt.kid));
  if (candidates.length === 0)
    return `no ${jwt.alg} key${jwt.kid === undefined ? '' : ` with kid "${jwt.kid.slice(0, 64)}"`} in the cluster's JWKS (auth.kubernetes.jwksFile): has the cluster rotated its signing key?`;
  if (!candidates.some((k) => verifyJwt(jwt, k.key))) return 'the signature does not verify with the cluster JWKS';
  const p = jwt.payload;
  if (p.iss !== rules.issuer)
    return `issuer ${JSON.stringify(p.iss).slice(0, 200)} is not the configured ${JSON.stringify(rules.issuer)} (auth.kubernetes.issuer)`;
  const aud = audiences(p);
  if (!aud.some((a) => rules.audiences.includes(a)))
    return `audience ${JSON.stringify(aud).slice(0, 200)} names none of ${JSON.stringify(rules.audiences)} (auth.kubernetes.audiences)`;
  const time = timeProblem(p, now, rules.leewaySeconds);
  if (time) return time;
  const m = typeof p.sub === 'string' ? SUBJECT_RE.exec(p.sub) : null;
  if (!m)
    return `subject ${JSON.stringify(p.sub).slice(0, 200)} is not a service account (system:serviceaccount:NAMESPACE:NAME)`;
  const namespace = m[1] as string;
  const name = m[3] as string;
  // Bound tokens repeat the subject under "kubernetes.io": a mismatch is a forged or broken token.
  const k8s = p['kubernetes.io'] as { namespace?: unknown; serviceaccount?: { name?: unknown } } | undefined;
  if (k8s !== undefined && (typeof k8s !== 'object' || k8s === null)) return '"kubernetes.io" claim is not an object';
  if (k8s?.namespace !== undefined && k8s.namespace !== namespace)
    return 'the "kubernetes.io" namespace does not match the subject';
  if (k8s?.serviceaccount?.name !== undefined && k8s.serviceaccount.name !== name)
    return 'the "kubernetes.io" service account does not match the subject';
  return {
    name: p.sub as string,
    kind: 'serviceaccount',
    groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
    serviceAccount: { namespace, name },
  };
}
