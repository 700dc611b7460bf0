// One Notation signature judged against one trust policy statement, in the specification's
// order: integrity (always enforced), authenticity (trust store + trusted identity), expiry,
// authentic timestamp, revocation; each check's failure is enforced or logged per the level.
// Pure apart from the clock it is given: no network, no file system.
import { constants, verify as cryptoVerify } from 'node:crypto';
import { Base64Error } from './base64url.ts';
import { chainProblem, validityProblem } from './chain.ts';
import { parseCose } from './cose.ts';
import { certificateDn, formatPolicyDn, isSubsetDn } from './dn.ts';
import { EnvelopeError, MEDIA_TYPE_COSE, MEDIA_TYPE_JWS, SCHEME_X509, type ParsedEnvelope } from './envelope.ts';
import { isObject, parseStrictJson, StrictJsonError } from './json.ts';
import { parseJws } from './jws.ts';
import { chainRevocation, type Crl } from './revocation.ts';
import { TimestampError, verifyTimestampToken, type TimestampResult } from './timestamp.ts';
import type { Action, Check, TrustPolicyStatement } from './trust-policy.ts';
import { storeKey, type StoreType, type TrustStores } from './trust-store.ts';
import { CertificateError, parseCertificate, type Certificate } from './x509.ts';

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
}

export interface NotationInput {
  readonly envelope: Buffer;
  /** The signature manifest's layer media type: it decides the envelope format. */
  readonly envelopeMediaType: string;
  /** The manifest being served: the payload must name exactly it. */
  readonly subject: Descriptor;
  readonly statement: TrustPolicyStatement;
  readonly trustStores: TrustStores;
  readonly crls?: readonly Crl[];
  readonly now: Date;
}

export interface CheckResult {
  readonly check: Check;
  readonly action: Action;
  readonly ok: boolean;
  readonly message?: string;
}

export interface NotationOutcome {
  readonly verdict: 'pass' | 'fail' | 'skipped';
  /** The enforced failure that decided a `fail`. */
  readonly failure?: CheckResult;
  /** Failures the level only logs (the signature still passes). */
  readonly logged: readonly CheckResult[];
  readonly results: readonly CheckResult[];
  /** What was verified, for reasons: `JWS by "CN=…" (sha256 ab12…)`. */
  readonly signer?: string;
  readonly format?: 'JWS' | 'COSE';
  /** The trusted time range when a timestamp was verified. */
  readonly timestamp?: { readonly lower: Date; readonly upper: Date; readonly tsa: string };
}

export function verifyNotationSignature(input: NotationInput): NotationOutcome {
  const { statement } = input;
  if (statement.level === 'skip') return { verdict: 'skipped', logged: [], results: [] };
  const results: CheckResult[] = [];
  const logged: CheckResult[] = [];
  const done = (extra: Partial<NotationOutcome> = {}): NotationOutcome => ({
    verdict: 'pass',
    logged,
    results,
    ...extra,
  });
  const record = (check: Check, problem: string | undefined): CheckResult | undefined => {
    const action = statement.actions[check];
    const result: CheckResult =
      problem === undefined ? { check, action, ok: true } : { check, action, ok: false, message: problem };
    results.push(result);
    if (result.ok) return undefined;
    if (action === 'enforce') return result;
    logged.push(result);
    return undefined;
  };

  // 1. Integrity
  const integrity = checkIntegrity(input);
  if ('problem' in integrity) {
    const failure = record('integrity', integrity.problem) as CheckResult;
    return { verdict: 'fail', failure, logged, results };
  }
  record('integrity', undefined);
  const { envelope, chain } = integrity;
  const leaf = chain[0] as Certificate;
  const who = {
    format: envelope.format,
    signer: `${envelope.format} signature by "${leaf.subject}" (sha256 ${leaf.sha256.slice(0, 12)}…)`,
  };
  const fail = (failure: CheckResult): NotationOutcome => ({ verdict: 'fail', failure, logged, results, ...who });

  // 2. Authenticity: trust store, then trusted identity
  let f = record('authenticity', authenticityProblem(envelope, chain, input));
  if (f) return fail(f);

  // 3. Expiry
  f = record(
    'expiry',
    envelope.expiry && input.now >= envelope.expiry
      ? `digital signature has expired on ${envelope.expiry.toISOString()}`
      : undefined,
  );
  if (f) return fail(f);

  // 4. Authentic timestamp
  const ts = authenticTimestamp(envelope, chain, input);
  f = record('authenticTimestamp', ts.problem);
  if (f) return fail(f);

  // 5. Revocation: the signing chain, and the TSA chain when a timestamp was relied on
  if (statement.actions.revocation !== 'skip') {
    const trustedTime = ts.timestamp?.lower ?? envelope.authenticSigningTime;
    const crls = input.crls ?? [];
    const signing = chainRevocation(chain, crls, input.now, trustedTime, 'signing');
    const tsa = ts.timestamp
      ? chainRevocation(ts.timestamp.chain, crls, input.now, undefined, 'timestamping')
      : undefined;
    const worst =
      [signing, tsa].find((r) => r?.result === 'revoked') ?? [signing, tsa].find((r) => r?.result === 'unknown');
    f = record('revocation', worst?.message);
    if (f) return fail(f);
  }
  return done({
    ...who,
    ...(ts.timestamp
      ? {
          timestamp: {
            lower: ts.timestamp.lower,
            upper: ts.timestamp.upper,
            tsa: (ts.timestamp.chain[0] as Certificate).subject,
          },
        }
      : {}),
  });
}

type Integrity = { envelope: ParsedEnvelope; chain: Certificate[] } | { problem: string };

function checkIntegrity(input: NotationInput): Integrity {
  let envelope: ParsedEnvelope;
  try {
    if (input.envelopeMediaType === MEDIA_TYPE_JWS) envelope = parseJws(input.envelope);
    else if (input.envelopeMediaType === MEDIA_TYPE_COSE) envelope = parseCose(input.envelope);
    else
      return {
        problem: `signature layer media type ${JSON.stringify(input.envelopeMediaType)} is not a Notation envelope (${MEDIA_TYPE_JWS} or ${MEDIA_TYPE_COSE})`,
      };
  } catch (err) {
    if (err instanceof EnvelopeError || err instanceof Base64Error || err instanceof StrictJsonError)
      return { problem: `unable to parse the signature envelope: ${err.message}` };
    throw err;
  }
  let chain: Certificate[];
  try {
    chain = envelope.certificates.map((der, i) => parseCertificate(der, `${envelope.format} certificate #${i}`));
  } catch (err) {
    if (err instanceof CertificateError) return { problem: err.message };
    throw err;
  }
  const leaf = chain[0] as Certificate;
  const alg = envelope.algorithm;
  const expectedKind = alg.kind === 'rsa-pss' ? 'rsa' : 'ec';
  if (leaf.keyType !== expectedKind || leaf.keyBits !== alg.keyBits)
    return {
      problem: `${envelope.format} algorithm ${alg.name} does not match the signing certificate's ${leaf.keyDescription} key (algorithm substitution)`,
    };
  const key =
    alg.kind === 'rsa-pss'
      ? { key: leaf.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }
      : { key: leaf.publicKey, dsaEncoding: 'ieee-p1363' as const };
  let valid: boolean;
  try {
    valid = cryptoVerify(alg.hash, envelope.signingInput, key, envelope.signature);
  } catch {
    valid = false;
  }
  if (!valid)
    return { problem: `${envelope.format} signature is invalid: it does not verify with the key of "${leaf.subject}"` };
  const problem = chainProblem(chain, 'codeSigning');
  if (problem) return { problem: `certificate chain: ${problem}` };
  const payloadProblem = checkPayload(envelope.payload, input.subject);
  if (payloadProblem) return { problem: payloadProblem };
  return { envelope, chain };
}

function checkPayload(payload: Buffer, subject: Descriptor): string | undefined {
  let json: unknown;
  try {
    json = parseStrictJson(payload.toString('utf8'), 'signature payload');
  } catch (err) {
    return (err as Error).message;
  }
  const target = isObject(json) ? json.targetArtifact : undefined;
  if (!isObject(target)) return 'signature payload has no targetArtifact descriptor';
  const mismatch: string[] = [];
  if (target.digest !== subject.digest)
    mismatch.push(`digest ${JSON.stringify(target.digest)} is not the served ${subject.digest}`);
  if (target.mediaType !== subject.mediaType)
    mismatch.push(`media type ${JSON.stringify(target.mediaType)} is not the served ${subject.mediaType}`);
  if (target.size !== subject.size)
    mismatch.push(`size ${JSON.stringify(target.size)} is not the served ${subject.size}`);
  return mismatch.length > 0 ? `the signature signs another artifact: ${mismatch.join('; ')}` : undefined;
}

function storeCertificates(input: NotationInput, type: StoreType): { certs: Certificate[]; missing: string[] } {
  const certs: Certificate[] = [];
  const missing: string[] = [];
  for (const s of input.statement.trustStores) {
    if (s.type !== type) continue;
    const store = input.trustStores.stores.get(storeKey(s.type, s.name));
    if (!store) missing.push(storeKey(s.type, s.name));
    else certs.push(...store.certificates);
  }
  return { certs, missing };
}

function authenticityProblem(envelope: ParsedEnvelope, chain: Certificate[], input: NotationInput): string | undefined {
  const type: StoreType = envelope.signingScheme === SCHEME_X509 ? 'ca' : 'signingAuthority';
  const { certs, missing } = storeCertificates(input, type);
  if (missing.length > 0) return `trust store ${missing.join(', ')} named by the policy does not exist`;
  if (certs.length === 0)
    return `signing scheme ${envelope.signingScheme} needs a trust store of type ${type}; the policy statement ${JSON.stringify(input.statement.name)} names none`;
  if (!chain.some((c) => certs.some((t) => t.der.equals(c.der))))
    return `the signature's certificate chain does not contain any trusted certificate (type ${type} stores: ${input.statement.trustStores
      .filter((s) => s.type === type)
      .map((s) => s.name)
      .join(', ')})`;
  const identities = input.statement.trustedIdentities;
  if (identities === '*') return undefined;
  const leaf = chain[0] as Certificate;
  const subject = certificateDn(leaf.subjectAttributes);
  if (!subject) return `signing certificate subject "${leaf.subject}" repeats an attribute and cannot be matched`;
  if (identities.some((id) => isSubsetDn(id.dn, subject))) return undefined;
  return `signing certificate "${leaf.subject}" does not match the trusted identities [${identities
    .map((i) => formatPolicyDn(i.dn))
    .join('; ')}] of trust policy ${JSON.stringify(input.statement.name)}`;
}

function authenticTimestamp(
  envelope: ParsedEnvelope,
  chain: Certificate[],
  input: NotationInput,
): { problem?: string; timestamp?: TimestampResult } {
  if (envelope.signingScheme !== SCHEME_X509) {
    const at = envelope.authenticSigningTime as Date;
    const p = validityProblem(chain, at, `the authentic signing time ${at.toISOString()}`);
    return p ? { problem: p } : {};
  }
  const { certs: tsaRoots, missing } = storeCertificates(input, 'tsa');
  const tsaConfigured = input.statement.trustStores.some((s) => s.type === 'tsa');
  let perform = tsaConfigured && input.statement.actions.authenticTimestamp !== 'skip';
  if (perform && input.statement.verifyTimestamp === 'afterCertExpiry')
    perform = chain.some((c) => input.now > c.notAfter);
  if (!perform) {
    const p = validityProblem(chain, input.now, 'verification time');
    return p ? { problem: `${p} (no trusted timestamp is used)` } : {};
  }
  if (missing.length > 0) return { problem: `trust store ${missing.join(', ')} named by the policy does not exist` };
  if (!envelope.timestampToken) return { problem: 'no timestamp countersignature was found in the signature envelope' };
  let timestamp: TimestampResult;
  try {
    timestamp = verifyTimestampToken(envelope.timestampToken, envelope.signature, tsaRoots);
  } catch (err) {
    if (err instanceof TimestampError)
      return { problem: `failed to verify the timestamp countersignature: ${err.message}` };
    throw err;
  }
  for (const cert of chain) {
    if (timestamp.lower < cert.notBefore)
      return {
        problem: `timestamp can be before certificate "${cert.subject}" validity period, it will be valid from ${cert.notBefore.toISOString()}`,
        timestamp,
      };
    if (timestamp.upper > cert.notAfter)
      return {
        problem: `timestamp can be after certificate "${cert.subject}" validity period, it was expired at ${cert.notAfter.toISOString()}`,
        timestamp,
      };
  }
  return { timestamp };
}
