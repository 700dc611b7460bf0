// Notation trust policy semantics (trust-store-trust-policy.md): statements with registry scopes,
// a verification level and its per-check actions, trust stores and trusted identities. Parsed
// strictly at policy load so that a mistake is an error there, never a surprise at pull time.
import { DnError, parseDn, type Dn } from './dn.ts';
import { isObject } from './json.ts';
import { STORE_TYPES, type StoreType } from './trust-store.ts';

export const CHECKS = ['integrity', 'authenticity', 'authenticTimestamp', 'expiry', 'revocation'] as const;
export type Check = (typeof CHECKS)[number];
export type Action = 'enforce' | 'log' | 'skip';
export const LEVELS = ['strict', 'permissive', 'audit', 'skip'] as const;
export type Level = (typeof LEVELS)[number];

const LEVEL_ACTIONS: Record<Level, Record<Check, Action>> = {
  strict: {
    integrity: 'enforce',
    authenticity: 'enforce',
    authenticTimestamp: 'enforce',
    expiry: 'enforce',
    revocation: 'enforce',
  },
  permissive: {
    integrity: 'enforce',
    authenticity: 'enforce',
    authenticTimestamp: 'log',
    expiry: 'log',
    revocation: 'log',
  },
  audit: { integrity: 'enforce', authenticity: 'log', authenticTimestamp: 'log', expiry: 'log', revocation: 'log' },
  skip: { integrity: 'skip', authenticity: 'skip', authenticTimestamp: 'skip', expiry: 'skip', revocation: 'skip' },
};
const OVERRIDABLE: Record<string, readonly Action[]> = {
  authenticity: ['enforce', 'log'],
  authenticTimestamp: ['enforce', 'log'],
  expiry: ['enforce', 'log'],
  revocation: ['enforce', 'log', 'skip'],
};

export interface TrustedIdentity {
  readonly text: string;
  readonly dn: Dn;
}

export interface TrustPolicyStatement {
  readonly name: string;
  readonly registryScopes: readonly string[];
  readonly level: Level;
  readonly actions: Readonly<Record<Check, Action>>;
  readonly verifyTimestamp: 'always' | 'afterCertExpiry';
  readonly trustStores: readonly { readonly type: StoreType; readonly name: string }[];
  /** `'*'` trusts any signer chaining to the stores. */
  readonly trustedIdentities: '*' | readonly TrustedIdentity[];
}

export interface TrustPolicyDocument {
  readonly statements: readonly TrustPolicyStatement[];
}

export class TrustPolicyError extends Error {
  /** Where in the document, e.g. `trustPolicies[0].trustedIdentities[1]`. */
  readonly where: string;
  constructor(where: string, problem: string) {
    super(`${where}: ${problem}`);
    this.name = 'TrustPolicyError';
    this.where = where;
  }
}

export function actionsFor(
  level: Level,
  override?: Readonly<Record<string, unknown>>,
  where = 'override',
): Record<Check, Action> {
  const actions = { ...LEVEL_ACTIONS[level] };
  if (override === undefined) return actions;
  if (level === 'skip') throw new TrustPolicyError(where, 'level skip cannot be overridden');
  for (const [key, value] of Object.entries(override)) {
    const allowed = OVERRIDABLE[key];
    if (!allowed)
      throw new TrustPolicyError(
        `${where}.${key}`,
        key === 'integrity'
          ? 'integrity cannot be overridden'
          : `unknown check; overridable: ${Object.keys(OVERRIDABLE).join(', ')}`,
      );
    if (typeof value !== 'string' || !allowed.includes(value as Action))
      throw new TrustPolicyError(`${where}.${key}`, `must be one of ${allowed.join(', ')}`);
    actions[key as Check] = value as Action;
  }
  return actions;
}

/** One statement, from the object form Notation uses (also how pullgate's policy spells it inline). */
export function parseStatement(raw: unknown, where: string, opts: { requireScopes: boolean }): TrustPolicyStatement {
  if (!isObject(raw)) throw new TrustPolicyError(where, 'must be an object');
  const known = ['name', 'registryScopes', 'signatureVerification', 'trustStores', 'trustedIdentities'];
  for (const k of Object.keys(raw))
    if (!known.includes(k)) throw new TrustPolicyError(`${where}.${k}`, 'unknown field');
  const name = raw.name;
  if (typeof name !== 'string' || name === '')
    throw new TrustPolicyError(`${where}.name`, 'must be a non-empty string');
  let registryScopes: string[] = [];
  if (opts.requireScopes || raw.registryScopes !== undefined) {
    const scopes = raw.registryScopes;
    if (!Array.isArray(scopes) || scopes.length === 0 || !scopes.every((s) => typeof s === 'string' && s !== ''))
      throw new TrustPolicyError(`${where}.registryScopes`, 'must be a non-empty list of repository URIs or ["*"]');
    registryScopes = scopes as string[];
    if (registryScopes.includes('*') && registryScopes.length > 1)
      throw new TrustPolicyError(`${where}.registryScopes`, 'the global scope "*" must be the only scope');
    for (const s of registryScopes)
      if (s !== '*' && (s.includes('*') || !s.includes('/') || /[@:]/.test(s.slice(s.indexOf('/')))))
        throw new TrustPolicyError(
          `${where}.registryScopes`,
          `${JSON.stringify(s)} is not a fully qualified repository URI (registry/namespace/repository, no tag, digest or wildcard)`,
        );
  }
  const sv = raw.signatureVerification;
  if (!isObject(sv)) throw new TrustPolicyError(`${where}.signatureVerification`, 'must be an object with a level');
  for (const k of Object.keys(sv))
    if (!['level', 'override', 'verifyTimestamp'].includes(k))
      throw new TrustPolicyError(`${where}.signatureVerification.${k}`, 'unknown field');
  const level = sv.level;
  if (typeof level !== 'string' || !(LEVELS as readonly string[]).includes(level))
    throw new TrustPolicyError(`${where}.signatureVerification.level`, `must be one of ${LEVELS.join(', ')}`);
  if (sv.override !== undefined && !isObject(sv.override))
    throw new TrustPolicyError(`${where}.signatureVerification.override`, 'must be a map of check to action');
  const actions = actionsFor(
    level as Level,
    sv.override as Record<string, unknown> | undefined,
    `${where}.signatureVerification.override`,
  );
  const vt = sv.verifyTimestamp ?? 'always';
  if (vt !== 'always' && vt !== 'afterCertExpiry')
    throw new TrustPolicyError(`${where}.signatureVerification.verifyTimestamp`, 'must be always or afterCertExpiry');

  if (level === 'skip') {
    for (const k of ['trustStores', 'trustedIdentities'] as const)
      if (raw[k] !== undefined && !(Array.isArray(raw[k]) && (raw[k] as unknown[]).length === 0))
        throw new TrustPolicyError(`${where}.${k}`, 'must be absent when the level is skip');
    return {
      name,
      registryScopes,
      level: 'skip',
      actions,
      verifyTimestamp: vt,
      trustStores: [],
      trustedIdentities: [],
    };
  }
  const stores = raw.trustStores;
  if (!Array.isArray(stores) || stores.length === 0)
    throw new TrustPolicyError(`${where}.trustStores`, 'must list at least one "{type}:{name}" store');
  const trustStores = stores.map((s, i) => {
    const at = `${where}.trustStores[${i}]`;
    if (typeof s !== 'string') throw new TrustPolicyError(at, 'must be a string "{type}:{name}"');
    const colon = s.indexOf(':');
    const type = s.slice(0, colon);
    const storeName = s.slice(colon + 1);
    if (colon <= 0 || !(STORE_TYPES as readonly string[]).includes(type) || !/^[A-Za-z0-9_.-]+$/.test(storeName))
      throw new TrustPolicyError(at, `${JSON.stringify(s)} is not "{type}:{name}" with type ${STORE_TYPES.join(', ')}`);
    return { type: type as StoreType, name: storeName };
  });
  if (!trustStores.some((s) => s.type !== 'tsa'))
    throw new TrustPolicyError(
      `${where}.trustStores`,
      'needs a ca or signingAuthority store (tsa stores only anchor timestamps)',
    );
  return {
    name,
    registryScopes,
    level: level as Level,
    actions,
    verifyTimestamp: vt,
    trustStores,
    trustedIdentities: parseIdentities(raw.trustedIdentities, `${where}.trustedIdentities`, name),
  };
}

function parseIdentities(raw: unknown, where: string, policyName: string): '*' | TrustedIdentity[] {
  if (!Array.isArray(raw) || raw.length === 0)
    throw new TrustPolicyError(where, 'must list "*" or one or more "x509.subject: <DN>" identities');
  if (raw.includes('*')) {
    if (raw.length > 1) throw new TrustPolicyError(where, '"*" must be the only trusted identity');
    return '*';
  }
  const out: TrustedIdentity[] = [];
  raw.forEach((identity, i) => {
    const at = `${where}[${i}]`;
    if (typeof identity !== 'string') throw new TrustPolicyError(at, 'must be a string');
    const colon = identity.indexOf(':');
    if (colon < 0) throw new TrustPolicyError(at, `${JSON.stringify(identity)} has no "x509.subject:" prefix`);
    const prefix = identity.slice(0, colon).trim();
    const value = identity.slice(colon + 1).trim();
    if (prefix !== 'x509.subject')
      throw new TrustPolicyError(at, `identity type ${JSON.stringify(prefix)} is not supported (only x509.subject)`);
    if (value === '') throw new TrustPolicyError(at, 'x509.subject has no distinguished name');
    try {
      out.push({ text: value, dn: parseDn(value) });
    } catch (err) {
      if (err instanceof DnError) throw new TrustPolicyError(at, err.message);
      throw err;
    }
  });
  for (let a = 0; a < out.length; a++)
    for (let b = a + 1; b < out.length; b++)
      if (
        subset(out[a] as TrustedIdentity, out[b] as TrustedIdentity) ||
        subset(out[b] as TrustedIdentity, out[a] as TrustedIdentity)
      )
        throw new TrustPolicyError(
          where,
          `trust policy ${JSON.stringify(policyName)} has overlapping identities ${JSON.stringify((out[a] as TrustedIdentity).text)} and ${JSON.stringify((out[b] as TrustedIdentity).text)}`,
        );
  return out;
}

function subset(a: TrustedIdentity, b: TrustedIdentity): boolean {
  for (const [k, v] of a.dn) if (b.dn.get(k) !== v) return false;
  return true;
}

/** A whole Notation trust policy document (`version` "1.0"). */
export function parseTrustPolicyDocument(raw: unknown, what: string): TrustPolicyDocument {
  if (!isObject(raw)) throw new TrustPolicyError(what, 'must be a JSON object');
  for (const k of Object.keys(raw))
    if (k !== 'version' && k !== 'trustPolicies') throw new TrustPolicyError(`${what}.${k}`, 'unknown field');
  if (raw.version !== '1.0') throw new TrustPolicyError(`${what}.version`, 'must be "1.0"');
  const list = raw.trustPolicies;
  if (!Array.isArray(list) || list.length === 0 || list.length > 1000)
    throw new TrustPolicyError(`${what}.trustPolicies`, 'must be a non-empty list of statements');
  const statements = list.map((s, i) => parseStatement(s, `${what}.trustPolicies[${i}]`, { requireScopes: true }));
  const names = new Set<string>();
  const scopes = new Map<string, string>();
  for (const s of statements) {
    if (names.has(s.name))
      throw new TrustPolicyError(`${what}.trustPolicies`, `two statements are named ${JSON.stringify(s.name)}`);
    names.add(s.name);
    for (const scope of s.registryScopes) {
      const other = scopes.get(scope);
      if (other !== undefined)
        throw new TrustPolicyError(
          `${what}.trustPolicies`,
          `scope ${JSON.stringify(scope)} is in both ${JSON.stringify(other)} and ${JSON.stringify(s.name)}`,
        );
      scopes.set(scope, s.name);
    }
  }
  return { statements };
}

/** The statement for a repository URI (`registry/repository`): exact scope first, then the global `*`. */
export function selectStatement(doc: TrustPolicyDocument, repositoryUri: string): TrustPolicyStatement | undefined {
  return (
    doc.statements.find((s) => s.registryScopes.includes(repositoryUri)) ??
    doc.statements.find((s) => s.registryScopes.includes('*'))
  );
}
