// Offline revocation. pullgate never reaches OCSP responders or CRL distribution points: it
// judges a certificate only from CRL files the admin configured (fetched by whatever process
// the admin trusts). A certificate that names revocation endpoints but is covered by no current,
// signature-verified CRL has status "unknown"; one naming none is "non-revocable", as in the spec.
import { constants, createHash, verify as cryptoVerify } from 'node:crypto';
import {
  bitString,
  boolean,
  checkDepth,
  children,
  contextTag,
  DerError,
  explicit,
  integer,
  octetString,
  oid,
  parseDer,
  sequence,
  TAG,
  time,
  type Der,
} from './der.ts';
import type { Certificate } from './x509.ts';

export const MAX_CRL_BYTES = 16 * 1024 * 1024;
const MAX_ENTRIES = 1_000_000;

const OIDS = {
  reasonCode: '2.5.29.21',
  invalidityDate: '2.5.29.24',
  crlNumber: '2.5.29.20',
  authorityKeyIdentifier: '2.5.29.35',
  deltaCrlIndicator: '2.5.29.27',
  issuingDistributionPoint: '2.5.29.28',
} as const;
/** Critical CRL extensions this reader processes; any other critical one makes the CRL unusable. */
const UNDERSTOOD_CRL_EXTENSIONS = new Set<string>([OIDS.crlNumber, OIDS.authorityKeyIdentifier]);
const CERTIFICATE_HOLD = 6;
const REMOVE_FROM_CRL = 8;

const SIG_ALGS: Record<string, { hash: string; pss?: boolean }> = {
  '1.2.840.113549.1.1.11': { hash: 'sha256' },
  '1.2.840.113549.1.1.12': { hash: 'sha384' },
  '1.2.840.113549.1.1.13': { hash: 'sha512' },
  '1.2.840.10045.4.3.2': { hash: 'sha256' },
  '1.2.840.10045.4.3.3': { hash: 'sha384' },
  '1.2.840.10045.4.3.4': { hash: 'sha512' },
};

export interface RevokedEntry {
  readonly revocationDate: Date;
  readonly reason: number | undefined;
  readonly invalidityDate: Date | undefined;
}

export interface Crl {
  /** Where it came from, for messages. */
  readonly source: string;
  readonly sha256: string;
  readonly issuerDer: Buffer;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date | undefined;
  readonly revoked: ReadonlyMap<bigint, RevokedEntry>;
  readonly tbs: Buffer;
  readonly signatureAlgorithm: string;
  readonly signature: Buffer;
}

export class CrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CrlError';
  }
}

/** Parses a DER or PEM (`X509 CRL`) CRL. Throws CrlError naming what is wrong. */
export function parseCrl(bytes: Buffer, source: string): Crl {
  if (bytes.length > MAX_CRL_BYTES)
    throw new CrlError(`${source}: CRL of ${bytes.length} bytes is over ${MAX_CRL_BYTES}`);
  let der = bytes;
  const text = bytes.subarray(0, 64).toString('latin1');
  if (text.includes('-----BEGIN')) {
    const m = /-----BEGIN X509 CRL-----([A-Za-z0-9+/=\s]+)-----END X509 CRL-----/.exec(bytes.toString('latin1'));
    if (!m) throw new CrlError(`${source}: PEM file without an X509 CRL block`);
    der = Buffer.from((m[1] ?? '').replace(/\s+/g, ''), 'base64');
  }
  try {
    return parse(der, source);
  } catch (err) {
    if (err instanceof DerError) throw new CrlError(`${source}: ${err.message}`);
    throw err;
  }
}

function parse(der: Buffer, source: string): Crl {
  const root = parseDer(der, source);
  const [tbsNode, algNode, sigNode] = sequence(root, source);
  if (!tbsNode || !algNode || !sigNode) throw new CrlError(`${source}: not a CertificateList`);
  const tbs = sequence(tbsNode, `${source} tbsCertList`);
  let i = 0;
  if (tbs[0]?.tag === TAG.INTEGER) i++;
  i++; // inner signature algorithm
  const issuer = tbs[i++] as Der;
  if (issuer?.tag !== TAG.SEQUENCE) throw new CrlError(`${source}: no issuer`);
  const thisUpdate = time(tbs[i++], `${source} thisUpdate`);
  let nextUpdate: Date | undefined;
  const maybeNext = tbs[i];
  if (maybeNext && (maybeNext.tag === TAG.UTC_TIME || maybeNext.tag === TAG.GENERALIZED_TIME)) {
    nextUpdate = time(maybeNext, `${source} nextUpdate`);
    i++;
  }
  const revoked = new Map<bigint, RevokedEntry>();
  if (tbs[i]?.tag === TAG.SEQUENCE) {
    const entries = children(tbs[i] as Der, `${source} revokedCertificates`);
    if (entries.length > MAX_ENTRIES) throw new CrlError(`${source}: more than ${MAX_ENTRIES} entries`);
    for (const entry of entries) {
      const parts = sequence(entry, `${source} entry`);
      const serial = integer(parts[0], `${source} entry serial`);
      const revocationDate = time(parts[1], `${source} revocationDate`);
      let reason: number | undefined;
      let invalidityDate: Date | undefined;
      if (parts[2]) {
        for (const ext of sequence(parts[2], `${source} entry extensions`)) {
          const e = sequence(ext, `${source} entry extension`);
          const id = oid(e[0], `${source} entry extension id`);
          const critical = e.length === 3 ? boolean(e[1], 'critical') : false;
          const value = parseDer(octetString(e[e.length - 1], `${source} entry extension`), source);
          if (id === OIDS.reasonCode) reason = value.value[0];
          else if (id === OIDS.invalidityDate) invalidityDate = time(value, `${source} invalidityDate`);
          else if (critical) throw new CrlError(`${source}: unknown critical entry extension ${id}`);
        }
      }
      revoked.set(serial, { revocationDate, reason, invalidityDate });
    }
    i++;
  }
  const extNode = tbs[i];
  if (extNode && contextTag(extNode) === 0) {
    checkDepth(extNode, source);
    for (const ext of sequence(explicit(extNode, `${source} extensions`), `${source} extensions`)) {
      const e = sequence(ext, `${source} extension`);
      const id = oid(e[0], `${source} extension id`);
      const critical = e.length === 3 ? boolean(e[1], 'critical') : false;
      if (id === OIDS.deltaCrlIndicator)
        throw new CrlError(`${source}: delta CRLs are not supported; give the base CRL`);
      if (critical && !UNDERSTOOD_CRL_EXTENSIONS.has(id))
        throw new CrlError(`${source}: unknown critical CRL extension ${id} (e.g. a partitioned or indirect CRL)`);
    }
  }
  return {
    source,
    sha256: createHash('sha256').update(der).digest('hex'),
    issuerDer: issuer.bytes,
    thisUpdate,
    nextUpdate,
    revoked,
    tbs: tbsNode.bytes,
    signatureAlgorithm: oid(sequence(algNode, `${source} signatureAlgorithm`)[0], `${source} signatureAlgorithm`),
    signature: bitString(sigNode, `${source} signature`).bytes,
  };
}

function crlSignedBy(crl: Crl, issuer: Certificate): boolean {
  const alg = SIG_ALGS[crl.signatureAlgorithm];
  try {
    if (crl.signatureAlgorithm === '1.2.840.113549.1.1.10')
      return cryptoVerify(
        null,
        crl.tbs,
        { key: issuer.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO },
        crl.signature,
      );
    if (!alg) return false;
    return cryptoVerify(alg.hash, crl.tbs, issuer.publicKey, crl.signature);
  } catch {
    return false;
  }
}

export type CertStatus =
  | { readonly status: 'good'; readonly crl: string }
  | { readonly status: 'non-revocable' }
  | { readonly status: 'revoked'; readonly crl: string; readonly at: Date; readonly reason: number | undefined }
  | { readonly status: 'unknown'; readonly why: string };

/**
 * The status of `cert` (issued by `issuer`) from the configured CRLs. `trustedTime` is an
 * authenticated signing time (timestamp lower bound, authentic signing time): a revocation whose
 * invalidity date is after it does not invalidate a signature made before it.
 */
export function certificateStatus(
  cert: Certificate,
  issuer: Certificate,
  crls: readonly Crl[],
  now: Date,
  trustedTime: Date | undefined,
): CertStatus {
  const candidates = crls.filter((c) => c.issuerDer.equals(cert.issuerDer) && crlSignedBy(c, issuer));
  const urls = [...cert.revocationUrls.ocsp, ...cert.revocationUrls.crl];
  if (candidates.length === 0) {
    if (urls.length === 0) return { status: 'non-revocable' };
    return {
      status: 'unknown',
      why: `certificate "${cert.subject}" names revocation endpoints (${urls.slice(0, 3).join(', ')}) and no configured CRL file from its issuer covers it; pullgate does not fetch revocation data`,
    };
  }
  // The freshest CRL decides.
  const crl = [...candidates].sort((a, b) => b.thisUpdate.getTime() - a.thisUpdate.getTime())[0] as Crl;
  const entry = crl.revoked.get(cert.serial);
  const stale = crl.nextUpdate !== undefined && now > crl.nextUpdate;
  if (crl.thisUpdate > now)
    return {
      status: 'unknown',
      why: `CRL ${crl.source} is not yet valid (thisUpdate ${crl.thisUpdate.toISOString()})`,
    };
  if (entry && entry.reason !== CERTIFICATE_HOLD && entry.reason !== REMOVE_FROM_CRL) {
    if (entry.invalidityDate && trustedTime && entry.invalidityDate > trustedTime && !stale)
      return { status: 'good', crl: crl.source };
    return { status: 'revoked', crl: crl.source, at: entry.revocationDate, reason: entry.reason };
  }
  if (stale)
    return {
      status: 'unknown',
      why: `CRL ${crl.source} for "${cert.subject}" expired at ${crl.nextUpdate?.toISOString()}; refresh the file`,
    };
  if (entry && entry.reason === CERTIFICATE_HOLD)
    return { status: 'unknown', why: `certificate "${cert.subject}" is on hold in CRL ${crl.source}` };
  return { status: 'good', crl: crl.source };
}

export interface ChainRevocation {
  readonly result: 'ok' | 'revoked' | 'unknown';
  readonly message: string | undefined;
}

/** The chain's status: revoked if any certificate is revoked, else unknown if any is unknown. */
export function chainRevocation(
  chain: readonly Certificate[],
  crls: readonly Crl[],
  now: Date,
  trustedTime: Date | undefined,
  label: string,
): ChainRevocation {
  let unknown: string | undefined;
  for (let i = chain.length - 1; i >= 0; i--) {
    const cert = chain[i] as Certificate;
    const issuer = chain[Math.min(i + 1, chain.length - 1)] as Certificate;
    const s = certificateStatus(cert, issuer, crls, now, trustedTime);
    if (s.status === 'revoked')
      return {
        result: 'revoked',
        message: `${label} certificate "${cert.subject}" is revoked (since ${s.at.toISOString()}${s.reason === undefined ? '' : `, reason ${s.reason}`}, per ${s.crl})`,
      };
    if (s.status === 'unknown') unknown ??= `${label} revocation status is unknown: ${s.why}`;
  }
  return unknown ? { result: 'unknown', message: unknown } : { result: 'ok', message: undefined };
}
