// X.509 certificates as Notation verification needs them: node:crypto does the signature math
// and key parsing; the DER reader supplies what node does not expose (extension criticality, key
// usage bits, basic constraints, signature algorithm, subject attributes in order).
import { createHash, X509Certificate, type KeyObject } from 'node:crypto';
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

export const MAX_CERT_BYTES = 64 * 1024;

export const OID = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  crlDistributionPoints: '2.5.29.31',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
  ocsp: '1.3.6.1.5.5.7.48.1',
  ekuAny: '2.5.29.37.0',
  ekuServerAuth: '1.3.6.1.5.5.7.3.1',
  ekuClientAuth: '1.3.6.1.5.5.7.3.2',
  ekuCodeSigning: '1.3.6.1.5.5.7.3.3',
  ekuEmailProtection: '1.3.6.1.5.5.7.3.4',
  ekuTimeStamping: '1.3.6.1.5.5.7.3.8',
} as const;

/** Key usage bit positions (RFC 5280 4.2.1.3). */
export const KU = {
  digitalSignature: 0,
  nonRepudiation: 1,
  keyEncipherment: 2,
  dataEncipherment: 3,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
  encipherOnly: 7,
  decipherOnly: 8,
} as const;

const ATTRIBUTE_NAMES: Record<string, string> = {
  '2.5.4.3': 'CN',
  '2.5.4.4': 'SN',
  '2.5.4.5': 'SERIALNUMBER',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.9': 'STREET',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.12': 'T',
  '2.5.4.42': 'GN',
  '2.5.4.17': 'POSTALCODE',
  '1.2.840.113549.1.9.1': 'E',
  '0.9.2342.19200300.100.1.25': 'DC',
  '0.9.2342.19200300.100.1.1': 'UID',
};

/** Certificate signature algorithms Notation accepts: SHA-2 RSA (PKCS#1 v1.5, PSS) and ECDSA; never SHA-1. */
const SIGNATURE_ALGORITHMS: Record<string, string> = {
  '1.2.840.113549.1.1.11': 'sha256WithRSAEncryption',
  '1.2.840.113549.1.1.12': 'sha384WithRSAEncryption',
  '1.2.840.113549.1.1.13': 'sha512WithRSAEncryption',
  '1.2.840.113549.1.1.10': 'RSASSA-PSS',
  '1.2.840.10045.4.3.2': 'ecdsa-with-SHA256',
  '1.2.840.10045.4.3.3': 'ecdsa-with-SHA384',
  '1.2.840.10045.4.3.4': 'ecdsa-with-SHA512',
};
const SHA1_ALGORITHMS = new Set(['1.2.840.113549.1.1.5', '1.2.840.10045.4.1', '1.2.840.113549.1.1.4']);

export interface Attribute {
  readonly type: string;
  readonly value: string;
}

export interface Extension {
  readonly critical: boolean;
  readonly value: Buffer;
}

export interface Certificate {
  readonly der: Buffer;
  readonly x509: X509Certificate;
  readonly sha256: string;
  /** Subject as Go prints it (RFC 4514 order: last RDN first), for messages and DN matching. */
  readonly subject: string;
  readonly subjectAttributes: readonly Attribute[];
  readonly subjectDer: Buffer;
  readonly issuerDer: Buffer;
  readonly serial: bigint;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly signatureAlgorithm: string;
  readonly signatureAlgorithmName: string | undefined;
  readonly extensions: ReadonlyMap<string, Extension>;
  readonly publicKey: KeyObject;
  /** `RSA-2048`, `EC-P-256`, …, for messages. */
  readonly keyDescription: string;
  readonly keyBits: number;
  readonly keyType: 'rsa' | 'ec' | 'other';
  /** URLs naming where revocation could be checked (OCSP responders, CRL distribution points). */
  readonly revocationUrls: { ocsp: string[]; crl: string[] };
}

export class CertificateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CertificateError';
  }
}

/** Parses one DER certificate. Throws CertificateError naming what is wrong. */
export function parseCertificate(der: Buffer, what = 'certificate'): Certificate {
  if (der.length > MAX_CERT_BYTES) throw new CertificateError(`${what}: ${der.length} bytes, over ${MAX_CERT_BYTES}`);
  try {
    return parseUnchecked(Buffer.from(der), what);
  } catch (err) {
    if (err instanceof CertificateError) throw err;
    if (err instanceof DerError) throw new CertificateError(`${what}: ${err.message}`);
    throw new CertificateError(`${what}: not an X.509 certificate (${(err as Error).message})`);
  }
}

function parseUnchecked(der: Buffer, what: string): Certificate {
  const root = parseDer(der, what);
  checkDepth(root, what);
  const [tbsNode, algNode, sigNode] = sequence(root, what);
  if (sigNode === undefined || algNode === undefined) throw new CertificateError(`${what}: truncated`);
  const tbs = sequence(tbsNode, `${what} tbsCertificate`);
  let i = 0;
  if (tbs[0] && contextTag(tbs[0]) === 0) i++;
  const serial = integer(tbs[i++], `${what} serial`);
  const innerAlgorithm = tbs[i++];
  const issuer = tbs[i++] as Der;
  const validity = sequence(tbs[i++], `${what} validity`);
  const subject = tbs[i++] as Der;
  i++; // subjectPublicKeyInfo: node:crypto parses it
  const signatureAlgorithm = oid(sequence(algNode, `${what} signatureAlgorithm`)[0], `${what} signatureAlgorithm`);
  if (innerAlgorithm === undefined || !innerAlgorithm.bytes.equals(algNode.bytes))
    throw new CertificateError(`${what}: inner and outer signature algorithms differ`);
  const extensions = new Map<string, Extension>();
  for (; i < tbs.length; i++) {
    const node = tbs[i] as Der;
    if (contextTag(node) !== 3) continue; // issuerUniqueID / subjectUniqueID
    for (const ext of sequence(explicit(node, `${what} extensions`), `${what} extensions`)) {
      const parts = sequence(ext, `${what} extension`);
      const id = oid(parts[0], `${what} extension id`);
      const critical = parts.length === 3 ? boolean(parts[1], `${what} extension ${id} critical`) : false;
      const value = octetString(parts[parts.length - 1], `${what} extension ${id}`);
      if (extensions.has(id)) throw new CertificateError(`${what}: extension ${id} appears twice`);
      extensions.set(id, { critical, value });
    }
  }
  bitString(sigNode, `${what} signature`);
  const x509 = new X509Certificate(der);
  const publicKey = x509.publicKey;
  const details = publicKey.asymmetricKeyDetails ?? {};
  const keyType = publicKey.asymmetricKeyType === 'rsa' ? 'rsa' : publicKey.asymmetricKeyType === 'ec' ? 'ec' : 'other';
  const curveBits: Record<string, number> = { prime256v1: 256, secp384r1: 384, secp521r1: 521 };
  const keyBits =
    keyType === 'rsa'
      ? (details.modulusLength ?? 0)
      : keyType === 'ec'
        ? (curveBits[details.namedCurve ?? ''] ?? 0)
        : 0;
  const keyDescription =
    keyType === 'rsa'
      ? `RSA-${keyBits}`
      : keyType === 'ec'
        ? `EC-${details.namedCurve ?? '?'}`
        : String(publicKey.asymmetricKeyType);
  const subjectAttributes = rdnAttributes(subject, `${what} subject`);
  return {
    der,
    x509,
    sha256: createHash('sha256').update(der).digest('hex'),
    subject: formatDn(subjectAttributes),
    subjectAttributes,
    subjectDer: subject.bytes,
    issuerDer: issuer.bytes,
    serial,
    notBefore: time(validity[0], `${what} notBefore`),
    notAfter: time(validity[1], `${what} notAfter`),
    signatureAlgorithm,
    signatureAlgorithmName: SIGNATURE_ALGORITHMS[signatureAlgorithm],
    extensions,
    publicKey,
    keyDescription,
    keyBits,
    keyType,
    revocationUrls: revocationUrls(extensions, what),
  };
}

/** RDNSequence → attributes in encoded order (multi-valued RDNs flattened). */
export function rdnAttributes(name: Der, what: string): Attribute[] {
  const out: Attribute[] = [];
  for (const rdn of sequence(name, what)) {
    if (rdn.tag !== TAG.SET) throw new CertificateError(`${what}: RDN is not a SET`);
    for (const atv of children(rdn, what)) {
      const [type, value] = sequence(atv, what);
      const id = oid(type, `${what} attribute type`);
      out.push({ type: ATTRIBUTE_NAMES[id] ?? id, value: directoryString(value, what) });
    }
  }
  return out;
}

function directoryString(node: Der | undefined, what: string): string {
  if (node === undefined) throw new CertificateError(`${what}: attribute without a value`);
  switch (node.tag) {
    case TAG.UTF8_STRING:
      return node.value.toString('utf8');
    case TAG.PRINTABLE_STRING:
    case TAG.IA5_STRING:
    case TAG.T61_STRING:
      return node.value.toString('latin1');
    case TAG.BMP_STRING:
      return Buffer.from(node.value).swap16().toString('utf16le');
    default:
      return `#${node.bytes.toString('hex')}`;
  }
}

const GO_ORDER = ['C', 'ST', 'L', 'STREET', 'POSTALCODE', 'O', 'OU', 'CN', 'SERIALNUMBER'];

/**
 * Go's pkix.Name.String() form, so messages read like Notation's: known attributes in Go's
 * fixed order, others after them, the whole reversed, `,` separated, RFC 4514 escaping.
 */
export function formatDn(attributes: readonly Attribute[]): string {
  const rank = (a: Attribute) => {
    const i = GO_ORDER.indexOf(a.type);
    return i === -1 ? GO_ORDER.length : i;
  };
  return [...attributes]
    .map((a, i) => ({ a, i }))
    .sort((x, y) => rank(x.a) - rank(y.a) || x.i - y.i)
    .map(({ a }) => a)
    .reverse()
    .map((a) => `${a.type}=${escapeDnValue(a.value)}`)
    .join(',');
}

function escapeDnValue(v: string): string {
  let s = v.replace(/([\\,+"<>;=])/g, '\\$1');
  if (s.startsWith(' ') || s.startsWith('#')) s = `\\${s}`;
  if (s.endsWith(' ') && s.length > 1) s = `${s.slice(0, -1)}\\ `;
  return s;
}

export function signatureAlgorithmAllowed(cert: Certificate): string | undefined {
  if (SHA1_ALGORITHMS.has(cert.signatureAlgorithm))
    return `certificate "${cert.subject}" is signed with SHA-1 (${cert.signatureAlgorithm}), which Notation forbids`;
  if (cert.signatureAlgorithmName === undefined)
    return `certificate "${cert.subject}" uses unsupported signature algorithm ${cert.signatureAlgorithm}`;
  return undefined;
}

/** Whether `cert` was signed by `issuer`'s key (not by comparing names). */
export function signedBy(cert: Certificate, issuer: Certificate): boolean {
  try {
    return cert.x509.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

export interface KeyUsage {
  readonly critical: boolean;
  readonly bits: ReadonlySet<number>;
}

export function keyUsage(cert: Certificate): KeyUsage | undefined {
  const ext = cert.extensions.get(OID.keyUsage);
  if (!ext) return undefined;
  const { bytes, unused } = bitString(parseDer(ext.value, 'keyUsage'), 'keyUsage');
  const bits = new Set<number>();
  for (let i = 0; i < bytes.length * 8 - unused; i++) {
    if (((bytes[i >> 3] as number) >> (7 - (i & 7))) & 1) bits.add(i);
  }
  return { critical: ext.critical, bits };
}

export interface BasicConstraints {
  readonly critical: boolean;
  readonly ca: boolean;
  readonly pathLen: number | undefined;
}

export function basicConstraints(cert: Certificate): BasicConstraints | undefined {
  const ext = cert.extensions.get(OID.basicConstraints);
  if (!ext) return undefined;
  const parts = sequence(parseDer(ext.value, 'basicConstraints'), 'basicConstraints');
  let ca = false;
  let pathLen: number | undefined;
  for (const p of parts) {
    if (p.tag === TAG.BOOLEAN) ca = boolean(p, 'basicConstraints cA');
    else if (p.tag === TAG.INTEGER) {
      const n = integer(p, 'basicConstraints pathLen');
      if (n < 0n || n > 1000n) throw new CertificateError(`certificate "${cert.subject}": bad pathLenConstraint`);
      pathLen = Number(n);
    } else throw new CertificateError(`certificate "${cert.subject}": malformed basicConstraints`);
  }
  return { critical: ext.critical, ca, pathLen };
}

export interface ExtKeyUsage {
  readonly critical: boolean;
  readonly oids: readonly string[];
}

export function extKeyUsage(cert: Certificate): ExtKeyUsage | undefined {
  const ext = cert.extensions.get(OID.extKeyUsage);
  if (!ext) return undefined;
  const oids = sequence(parseDer(ext.value, 'extKeyUsage'), 'extKeyUsage').map((n) => oid(n, 'extKeyUsage'));
  return { critical: ext.critical, oids };
}

function revocationUrls(extensions: ReadonlyMap<string, Extension>, what: string): { ocsp: string[]; crl: string[] } {
  const urls = { ocsp: [] as string[], crl: [] as string[] };
  const aia = extensions.get(OID.authorityInfoAccess);
  if (aia) {
    for (const desc of sequence(parseDer(aia.value, `${what} AIA`), `${what} AIA`)) {
      const [method, location] = sequence(desc, `${what} AIA`);
      if (oid(method, `${what} AIA method`) === OID.ocsp && location && contextTag(location) === 6)
        urls.ocsp.push(location.value.toString('latin1'));
    }
  }
  const cdp = extensions.get(OID.crlDistributionPoints);
  if (cdp) {
    for (const dp of sequence(parseDer(cdp.value, `${what} CDP`), `${what} CDP`)) {
      const parts = sequence(dp, `${what} CDP`);
      const name = parts.find((p) => contextTag(p) === 0);
      if (!name) {
        urls.crl.push('(distribution point without a name)');
        continue;
      }
      const full = children(name, `${what} CDP`).find((p) => contextTag(p) === 0);
      for (const general of full ? children(full, `${what} CDP`) : []) {
        urls.crl.push(contextTag(general) === 6 ? general.value.toString('latin1') : '(non-URI distribution point)');
      }
      if (!full) urls.crl.push('(relative distribution point)');
    }
  }
  return urls;
}

/** Splits PEM text into DER certificates; a file that is not PEM is taken as one DER certificate. */
export function certificatesFromFile(bytes: Buffer, what: string, maxCerts = 64): Certificate[] {
  const text = bytes.toString('latin1');
  if (!text.includes('-----BEGIN')) return [parseCertificate(bytes, what)];
  const out: Certificate[] = [];
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([A-Za-z0-9+/=\s]*?)-----END \1-----/g;
  for (const m of text.matchAll(re)) {
    if (m[1] !== 'CERTIFICATE') throw new CertificateError(`${what}: PEM block "${m[1]}" is not a CERTIFICATE`);
    if (out.length >= maxCerts) throw new CertificateError(`${what}: more than ${maxCerts} certificates`);
    out.push(parseCertificate(Buffer.from((m[2] ?? '').replace(/\s+/g, ''), 'base64'), `${what} #${out.length + 1}`));
  }
  if (out.length === 0) throw new CertificateError(`${what}: no PEM CERTIFICATE block`);
  return out;
}
