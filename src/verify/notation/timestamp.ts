// RFC 3161 timestamp tokens (CMS SignedData over a TSTInfo), verified offline: the token's
// signature by its signer certificate, the signed attributes (content type, message digest,
// signing-certificate-v2 per RFC 5816), the messageImprint over the raw signature bytes, and a
// chain from the signer to a root in the `tsa` trust store, valid at the timestamp's time.
import { constants, createHash, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { chainProblem, validityProblem } from './chain.ts';
import {
  checkDepth,
  children,
  contextTag,
  DerError,
  explicit,
  integer,
  octetString,
  oid,
  parseDer,
  retag,
  sequence,
  smallInteger,
  TAG,
  time,
  type Der,
} from './der.ts';
import { CertificateError, parseCertificate, signedBy, type Certificate } from './x509.ts';

const OIDS = {
  signedData: '1.2.840.113549.1.7.2',
  tstInfo: '1.2.840.113549.1.9.16.1.4',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingCertificateV2: '1.2.840.113549.1.9.16.2.47',
  subjectKeyIdentifier: '2.5.29.14',
  rsaEncryption: '1.2.840.113549.1.1.1',
  rsaPss: '1.2.840.113549.1.1.10',
  baselinePolicy: '0.4.0.2023.1.1',
} as const;

const HASHES: Record<string, 'sha256' | 'sha384' | 'sha512'> = {
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};
const SIGNATURE_HASHES: Record<string, { hash: string; kind: 'rsa' | 'ecdsa' }> = {
  '1.2.840.113549.1.1.11': { hash: 'sha256', kind: 'rsa' },
  '1.2.840.113549.1.1.12': { hash: 'sha384', kind: 'rsa' },
  '1.2.840.113549.1.1.13': { hash: 'sha512', kind: 'rsa' },
  '1.2.840.10045.4.3.2': { hash: 'sha256', kind: 'ecdsa' },
  '1.2.840.10045.4.3.3': { hash: 'sha384', kind: 'ecdsa' },
  '1.2.840.10045.4.3.4': { hash: 'sha512', kind: 'ecdsa' },
};

const MAX_TOKEN_CERTS = 16;
const MAX_PATH = 8;

export interface TimestampResult {
  /** genTime minus accuracy … genTime plus accuracy. */
  readonly lower: Date;
  readonly upper: Date;
  readonly genTime: Date;
  /** TSA signer first, ending with the trusted root. */
  readonly chain: readonly Certificate[];
}

export class TimestampError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TimestampError';
  }
}

/**
 * Verifies `token` as a countersignature over `signature` and returns the time range it proves.
 * `roots` are the certificates of the policy's `tsa` trust stores. Throws TimestampError.
 */
export function verifyTimestampToken(token: Buffer, signature: Buffer, roots: readonly Certificate[]): TimestampResult {
  try {
    return verifyUnchecked(token, signature, roots);
  } catch (err) {
    if (err instanceof DerError || err instanceof CertificateError) throw new TimestampError(err.message);
    throw err;
  }
}

function verifyUnchecked(token: Buffer, signature: Buffer, roots: readonly Certificate[]): TimestampResult {
  const contentInfo = parseDer(token, 'timestamp token');
  checkDepth(contentInfo, 'timestamp token');
  const [type, content] = sequence(contentInfo, 'timestamp ContentInfo');
  if (oid(type, 'timestamp contentType') !== OIDS.signedData)
    throw new TimestampError('timestamp token is not CMS SignedData');
  if (!content || contextTag(content) !== 0) throw new TimestampError('timestamp token has no SignedData content');
  const signedData = sequence(explicit(content, 'SignedData'), 'SignedData');
  let i = 1; // version
  i++; // digestAlgorithms
  const encap = sequence(signedData[i++], 'encapContentInfo');
  if (oid(encap[0], 'eContentType') !== OIDS.tstInfo)
    throw new TimestampError('timestamp token does not encapsulate a TSTInfo');
  if (!encap[1] || contextTag(encap[1]) !== 0) throw new TimestampError('timestamp token has no TSTInfo content');
  const tstInfoBytes = octetString(explicit(encap[1], 'eContent'), 'eContent');
  const certificates: Certificate[] = [];
  let node = signedData[i];
  if (node && contextTag(node) === 0) {
    const certs = children(node, 'token certificates');
    if (certs.length > MAX_TOKEN_CERTS)
      throw new TimestampError(`timestamp token holds over ${MAX_TOKEN_CERTS} certificates`);
    for (const c of certs) {
      if (c.tag !== TAG.SEQUENCE) continue; // other certificate formats are not used
      certificates.push(parseCertificate(c.bytes, 'timestamp token certificate'));
    }
    node = signedData[++i];
  }
  if (node && contextTag(node) === 1) node = signedData[++i]; // crls: not used
  if (!node || node.tag !== TAG.SET) throw new TimestampError('timestamp token has no signerInfos');
  const signerInfos = children(node, 'signerInfos');
  if (signerInfos.length !== 1) throw new TimestampError(`timestamp token has ${signerInfos.length} signers, not 1`);

  const signer = sequence(signerInfos[0], 'SignerInfo');
  const sid = signer[1] as Der;
  const digestAlg = HASHES[oid(sequence(signer[2], 'digestAlgorithm')[0], 'digestAlgorithm')];
  if (!digestAlg) throw new TimestampError('timestamp token digest algorithm is not SHA-256/384/512');
  const signedAttrsNode = signer[3];
  if (!signedAttrsNode || contextTag(signedAttrsNode) !== 0)
    throw new TimestampError('timestamp token SignerInfo has no signed attributes');
  const sigAlgParts = sequence(signer[4], 'signatureAlgorithm');
  const sigAlg = oid(sigAlgParts[0], 'signatureAlgorithm');
  const sigValue = octetString(signer[5], 'signature');

  const signerCert = findSigner(sid, certificates);
  const attrs = signedAttributes(signedAttrsNode);
  const ct = attrs.get(OIDS.contentType);
  if (!ct || oid(ct, 'contentType attribute') !== OIDS.tstInfo)
    throw new TimestampError('timestamp signed attribute contentType is not TSTInfo');
  const md = attrs.get(OIDS.messageDigest);
  if (!md || !octetString(md, 'messageDigest').equals(createHash(digestAlg).update(tstInfoBytes).digest()))
    throw new TimestampError('timestamp signed attribute messageDigest does not match the TSTInfo');
  const scv2 = attrs.get(OIDS.signingCertificateV2);
  if (!scv2) throw new TimestampError('timestamp token lacks the signing-certificate-v2 attribute (RFC 5816)');
  checkSigningCertificateV2(scv2, signerCert);

  const signedBytes = retag(signedAttrsNode, TAG.SET);
  if (!verifyCms(sigAlg, sigAlgParts[1], digestAlg, signedBytes, sigValue, signerCert.publicKey))
    throw new TimestampError(`timestamp token signature does not verify with "${signerCert.subject}"`);

  const info = parseTstInfo(tstInfoBytes);
  const expected = createHash(info.hash).update(signature).digest();
  if (!info.hashedMessage.equals(expected))
    throw new TimestampError('timestamp messageImprint does not match the signature it claims to countersign');

  const chain = buildChain(signerCert, certificates, roots, info.genTime);
  return { lower: info.lower, upper: info.upper, genTime: info.genTime, chain };
}

function findSigner(sid: Der, certificates: readonly Certificate[]): Certificate {
  let match: Certificate | undefined;
  if (sid.tag === TAG.SEQUENCE) {
    const [issuer, serial] = sequence(sid, 'issuerAndSerialNumber');
    const n = integer(serial, 'signer serial');
    match = certificates.find((c) => c.serial === n && c.issuerDer.equals((issuer as Der).bytes));
  } else if (contextTag(sid) === 0) {
    match = certificates.find((c) => {
      const ski = c.extensions.get(OIDS.subjectKeyIdentifier);
      return ski !== undefined && octetString(parseDer(ski.value, 'SKI'), 'SKI').equals(sid.value);
    });
  }
  if (!match) throw new TimestampError('timestamp token does not include its signer certificate');
  return match;
}

function signedAttributes(node: Der): Map<string, Der> {
  const out = new Map<string, Der>();
  for (const attr of children(node, 'signed attributes')) {
    const [type, values] = sequence(attr, 'signed attribute');
    const id = oid(type, 'signed attribute type');
    if (out.has(id)) throw new TimestampError(`timestamp signed attribute ${id} appears twice`);
    if (!values || values.tag !== TAG.SET) throw new TimestampError(`timestamp signed attribute ${id} has no values`);
    const list = children(values, 'attribute values');
    if (list.length !== 1) throw new TimestampError(`timestamp signed attribute ${id} must have one value`);
    out.set(id, list[0] as Der);
  }
  return out;
}

function checkSigningCertificateV2(value: Der, signer: Certificate): void {
  const certs = sequence(sequence(value, 'SigningCertificateV2')[0], 'SigningCertificateV2 certs');
  const first = certs[0];
  if (!first) throw new TimestampError('signing-certificate-v2 lists no certificate');
  const parts = sequence(first, 'ESSCertIDv2');
  let hash = 'sha256';
  let k = 0;
  if (parts[0]?.tag === TAG.SEQUENCE) {
    const h = HASHES[oid(sequence(parts[0], 'ESSCertIDv2 hashAlgorithm')[0], 'hashAlgorithm')];
    if (!h) throw new TimestampError('signing-certificate-v2 hash algorithm is not SHA-256/384/512');
    hash = h;
    k = 1;
  }
  const certHash = octetString(parts[k], 'ESSCertIDv2 certHash');
  if (!certHash.equals(createHash(hash).update(signer.der).digest()))
    throw new TimestampError('signing-certificate-v2 does not name the certificate that signed the token');
}

function verifyCms(
  alg: string,
  params: Der | undefined,
  digestAlg: string,
  data: Buffer,
  sig: Buffer,
  key: KeyObject,
): boolean {
  try {
    if (alg === OIDS.rsaEncryption) return cryptoVerify(digestAlg, data, key, sig);
    if (alg === OIDS.rsaPss) {
      // RSASSA-PSS-params: hashAlgorithm [0] (default SHA-1, refused), saltLength [2]
      const p = params ? sequence(params, 'RSASSA-PSS params') : [];
      const hashNode = p.find((x) => contextTag(x) === 0);
      const hash = hashNode
        ? HASHES[oid(sequence(explicit(hashNode, 'pss hash'), 'pss hash')[0], 'pss hash')]
        : undefined;
      if (!hash) return false;
      const saltNode = p.find((x) => contextTag(x) === 2);
      const saltLength = saltNode ? smallInteger(explicit(saltNode, 'pss salt'), 'pss salt') : 20;
      return cryptoVerify(hash, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }, sig);
    }
    const known = SIGNATURE_HASHES[alg];
    if (!known) return false;
    return cryptoVerify(known.hash, data, key, sig);
  } catch {
    return false;
  }
}

interface TstInfo {
  hash: string;
  hashedMessage: Buffer;
  genTime: Date;
  lower: Date;
  upper: Date;
}

function parseTstInfo(bytes: Buffer): TstInfo {
  const root = parseDer(bytes, 'TSTInfo');
  checkDepth(root, 'TSTInfo');
  const parts = sequence(root, 'TSTInfo');
  if (smallInteger(parts[0], 'TSTInfo version') !== 1) throw new TimestampError('TSTInfo version is not 1');
  const policy = oid(parts[1], 'TSTInfo policy');
  const imprint = sequence(parts[2], 'messageImprint');
  const hash = HASHES[oid(sequence(imprint[0], 'messageImprint hashAlgorithm')[0], 'messageImprint hashAlgorithm')];
  if (!hash) throw new TimestampError('timestamp messageImprint hash is not SHA-256/384/512');
  const hashedMessage = octetString(imprint[1], 'messageImprint hashedMessage');
  integer(parts[3], 'TSTInfo serialNumber');
  const genTime = time(parts[4], 'TSTInfo genTime');
  let accuracyMs = policy === OIDS.baselinePolicy ? 1000 : 0;
  const acc = parts[5];
  if (acc && acc.tag === TAG.SEQUENCE) {
    accuracyMs = 0;
    for (const a of children(acc, 'accuracy')) {
      if (a.tag === TAG.INTEGER) accuracyMs += smallInteger(a, 'accuracy seconds') * 1000;
      else if (contextTag(a) === 0) accuracyMs += smallInteger({ ...a, tag: TAG.INTEGER }, 'accuracy millis');
      else if (contextTag(a) === 1) accuracyMs += smallInteger({ ...a, tag: TAG.INTEGER }, 'accuracy micros') / 1000;
      else throw new TimestampError('TSTInfo accuracy is malformed');
    }
  }
  return {
    hash,
    hashedMessage,
    genTime,
    lower: new Date(genTime.getTime() - accuracyMs),
    upper: new Date(genTime.getTime() + accuracyMs),
  };
}

/** From the TSA signer up to a self-signed root by signatures; the root must be in a `tsa` store. */
function buildChain(
  signer: Certificate,
  tokenCerts: readonly Certificate[],
  roots: readonly Certificate[],
  at: Date,
): Certificate[] {
  if (roots.length === 0) throw new TimestampError('the policy names no tsa trust store certificates');
  const candidates = [...tokenCerts, ...roots];
  const chain = [signer];
  let current = signer;
  while (!signedBy(current, current)) {
    if (chain.length >= MAX_PATH) throw new TimestampError(`timestamp chain longer than ${MAX_PATH}`);
    const issuer = candidates.find((c) => !chain.includes(c) && c.sha256 !== current.sha256 && signedBy(current, c));
    if (!issuer)
      throw new TimestampError(
        `timestamp certificate "${current.subject}" is signed by no certificate in the token or the tsa trust store (certificate signed by unknown authority)`,
      );
    chain.push(issuer);
    current = issuer;
  }
  if (!roots.some((r) => r.der.equals(current.der)))
    throw new TimestampError(
      `timestamp chain ends at "${current.subject}", which is not in the policy's tsa trust stores (certificate signed by unknown authority)`,
    );
  const problem = chainProblem(chain, 'timeStamping');
  if (problem) throw new TimestampError(`timestamping certificate chain: ${problem}`);
  const invalid = validityProblem(chain, at, 'the timestamp time');
  if (invalid) throw new TimestampError(invalid);
  return chain;
}
