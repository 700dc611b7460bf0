// X.509 certification paths from a signer certificate to trusted CA certificates, through
// untrusted intermediates (cosign's chain annotation, a bundle's chain) and configured ones, with
// the checks Go's x509.Verify makes for cosign and containers/image: signatures, CA flags, path
// lengths, key usage, the code-signing extended key usage, validity at given times, and no
// critical extension it does not understand. Bounded: a few intermediates, a short depth.
import { X509Certificate as NodeCertificate } from 'node:crypto';
import { ASN1Obj, X509Certificate as Asn1Certificate } from '@sigstore/core';

/** A certificate parsed twice: OpenSSL for signatures and names, an ASN.1 reader for extensions. */
export interface Certificate {
  readonly der: Buffer;
  readonly node: NodeCertificate;
  readonly asn1: Asn1Certificate;
}

const OID = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyId: '2.5.29.14',
  authorityKeyId: '2.5.29.35',
  codeSigning: '1.3.6.1.5.5.7.3.3',
  anyExtendedKeyUsage: '2.5.29.37.0',
  commonName: '2.5.4.3',
} as const;

/** Critical extensions a path may carry; any other critical one fails it, as in Go. */
const UNDERSTOOD = new Set<string>([
  OID.basicConstraints,
  OID.keyUsage,
  OID.extKeyUsage,
  OID.subjectAltName,
  OID.subjectKeyId,
  OID.authorityKeyId,
]);

export const MAX_INTERMEDIATES = 10;
const MAX_DEPTH = 8;

/** Parses DER; throws an Error saying it is not a certificate. */
export function parseCertificate(der: Buffer): Certificate {
  try {
    return { der, node: new NodeCertificate(der), asn1: Asn1Certificate.parse(Buffer.from(der)) };
  } catch (err) {
    throw new Error(`not an X.509 certificate (${(err as Error).message})`);
  }
}

export type PathResult = { ok: true; path: Certificate[] } | { ok: false; reason: string };

/**
 * The shortest valid path leaf → intermediates → one of `anchors` (the anchor included), built
 * without regard to time; check the times with `validAt`. Anchors are trusted as given (their
 * own issuer is not looked for), but their CA flag, path length and key usage still apply.
 */
export function buildPath(
  leaf: Certificate,
  intermediates: readonly Certificate[],
  anchors: readonly Certificate[],
): PathResult {
  if (intermediates.length > MAX_INTERMEDIATES)
    return {
      ok: false,
      reason: `${intermediates.length} intermediate certificates, more than the ${MAX_INTERMEDIATES} examined`,
    };
  const leafProblem = leafProblems(leaf);
  if (leafProblem) return { ok: false, reason: leafProblem };
  let best: Certificate[] | undefined;
  let lastProblem = 'no path to a trusted CA certificate';
  const walk = (chain: Certificate[]): void => {
    const current = chain[chain.length - 1] as Certificate;
    if (chain.length > MAX_DEPTH || (best && chain.length >= best.length)) return;
    for (const anchor of anchors) {
      if (!issues(anchor, current)) continue;
      const candidate = [...chain, anchor];
      const problem = pathProblems(candidate);
      if (problem) lastProblem = problem;
      else if (!best || candidate.length < best.length) best = candidate;
    }
    for (const next of intermediates) {
      if (chain.some((c) => c.der.equals(next.der)) || anchors.some((a) => a.der.equals(next.der))) continue;
      if (issues(next, current)) walk([...chain, next]);
    }
  };
  walk([leaf]);
  return best ? { ok: true, path: best } : { ok: false, reason: lastProblem };
}

/** Why the path is not valid at `at`, naming the certificate; undefined when every certificate is. */
export function validAt(path: readonly Certificate[], at: Date): string | undefined {
  for (const [i, cert] of path.entries()) {
    const from = cert.node.validFromDate;
    const to = cert.node.validToDate;
    if (at < from || at > to)
      return `${role(i, path.length)} certificate ${describeSubject(cert)} is valid from ${from.toISOString()} to ${to.toISOString()}, not at ${at.toISOString()}`;
  }
  return undefined;
}

function role(index: number, length: number): string {
  return index === 0 ? 'signer' : index === length - 1 ? 'CA' : 'intermediate';
}

/** `issuer` names and signed `subject`, with a key allowed to sign certificates. */
function issues(issuer: Certificate, subject: Certificate): boolean {
  try {
    return subject.node.checkIssued(issuer.node) && subject.node.verify(issuer.node.publicKey);
  } catch {
    return false;
  }
}

function leafProblems(leaf: Certificate): string | undefined {
  const critical = unknownCritical(leaf);
  if (critical) return critical;
  const ku = leaf.asn1.extKeyUsage;
  if (ku && !ku.digitalSignature)
    return `signer certificate ${describeSubject(leaf)} has no digitalSignature key usage`;
  return undefined;
}

/** CA flags, path lengths, certificate-signing key usage and code-signing EKU along a candidate path. */
function pathProblems(path: readonly Certificate[]): string | undefined {
  for (const [i, cert] of path.entries()) {
    const critical = i > 0 ? unknownCritical(cert) : undefined;
    if (critical) return critical;
    if (!allowsCodeSigning(cert))
      return `${role(i, path.length)} certificate ${describeSubject(cert)} has an extended key usage without code signing`;
    if (i === 0) continue;
    const bc = cert.asn1.extBasicConstraints;
    if (!bc?.isCA) return `${role(i, path.length)} certificate ${describeSubject(cert)} is not a CA`;
    // pathLenConstraint counts the intermediates that may follow this CA below it.
    const below = i - 1;
    if (bc.pathLenConstraint !== undefined && BigInt(below) > bc.pathLenConstraint)
      return `CA certificate ${describeSubject(cert)} allows ${bc.pathLenConstraint} intermediates below it, the path has ${below}`;
    const ku = cert.asn1.extKeyUsage;
    if (ku && !ku.keyCertSign) return `CA certificate ${describeSubject(cert)} has no keyCertSign key usage`;
  }
  return undefined;
}

/** Go's rule: no EKU extension means any; otherwise code signing or anyExtendedKeyUsage must be listed. */
function allowsCodeSigning(cert: Certificate): boolean {
  const ext = cert.asn1.extension(OID.extKeyUsage);
  if (!ext) return true;
  try {
    // extnValue is an OCTET STRING wrapping the SEQUENCE of purposes.
    const oids = (ext.valueObj.subs[0]?.subs ?? []).map((s) => s.toOID());
    return oids.includes(OID.codeSigning) || oids.includes(OID.anyExtendedKeyUsage);
  } catch {
    return false;
  }
}

function unknownCritical(cert: Certificate): string | undefined {
  for (const ext of cert.asn1.extensions) {
    try {
      const oid = ext.subs[0]?.toOID() ?? '';
      const critical = ext.subs.length === 3 && ext.subs[1]?.toBoolean() === true;
      if (critical && !UNDERSTOOD.has(oid))
        return `certificate ${describeSubject(cert)} has a critical extension ${oid} that is not supported`;
    } catch {
      return `certificate ${describeSubject(cert)} has a malformed extension`;
    }
  }
  return undefined;
}

export function describeSubject(cert: Certificate): string {
  const subject = (cert.node.subject ?? '').replace(/\n/g, ', ');
  return subject ? `"${subject}"` : `with serial ${cert.node.serialNumber}`;
}

/** The certificate's names a PKI signer can be matched on, read from the DER. */
export interface CertificateNames {
  emails: string[];
  uris: string[];
  dnsNames: string[];
  commonNames: string[];
}

export function certificateNames(cert: Certificate): CertificateNames {
  const names: CertificateNames = { emails: [], uris: [], dnsNames: [], commonNames: [] };
  const san = cert.asn1.extension(OID.subjectAltName);
  for (const name of san?.valueObj.subs[0]?.subs ?? []) {
    // GeneralName: [1] rfc822Name, [2] dNSName, [6] uniformResourceIdentifier, all IA5String.
    if (name.tag.constructed) continue;
    const value = name.value.toString('latin1');
    if (name.tag.isContextSpecific(1)) names.emails.push(value);
    else if (name.tag.isContextSpecific(2)) names.dnsNames.push(value);
    else if (name.tag.isContextSpecific(6)) names.uris.push(value);
  }
  // The reader hands out the Name's content (its RDN SETs) without the SEQUENCE header.
  const content = Buffer.from(cert.asn1.subject);
  const subject = ASN1Obj.parseBuffer(Buffer.concat([Buffer.from([0x30]), derLength(content.length), content]));
  for (const rdn of subject.subs) {
    for (const attribute of rdn.subs) {
      const [type, value] = attribute.subs;
      if (type?.toOID() === OID.commonName && value) names.commonNames.push(directoryString(value));
    }
  }
  return names;
}

/** UTF8String, PrintableString, IA5String, TeletexString (as Latin-1) or BMPString. */
function directoryString(value: ASN1Obj): string {
  switch (value.tag.number) {
    case 0x1e: {
      const bytes = value.value;
      let text = '';
      for (let i = 0; i + 1 < bytes.length; i += 2) text += String.fromCharCode(bytes.readUInt16BE(i));
      return text;
    }
    case 0x14:
      return value.value.toString('latin1');
    default:
      return value.value.toString('utf8');
  }
}

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
