// The Notary Project's certificate requirements (signature-specification.md §"Certificate
// Requirements") for a code-signing chain from an envelope or a timestamping chain from a token.
// Links are proven by signatures, never by comparing names: a real envelope has leaf and root
// with the same subject and no key identifiers.
import {
  basicConstraints,
  CertificateError,
  extKeyUsage,
  KU,
  keyUsage,
  OID,
  signatureAlgorithmAllowed,
  signedBy,
  type Certificate,
} from './x509.ts';

export type ChainPurpose = 'codeSigning' | 'timeStamping';

const FORBIDDEN_LEAF_KU = [
  KU.keyEncipherment,
  KU.dataEncipherment,
  KU.keyAgreement,
  KU.keyCertSign,
  KU.cRLSign,
  KU.encipherOnly,
  KU.decipherOnly,
];
const FORBIDDEN_CODE_SIGNING_EKU: Record<string, string> = {
  [OID.ekuAny]: 'anyExtendedKeyUsage',
  [OID.ekuServerAuth]: 'serverAuth',
  [OID.ekuClientAuth]: 'clientAuth',
  [OID.ekuEmailProtection]: 'emailProtection',
  [OID.ekuTimeStamping]: 'timeStamping',
};

/** Undefined when the chain meets every requirement, else what is wrong (naming the certificate). */
export function chainProblem(chain: readonly Certificate[], purpose: ChainPurpose): string | undefined {
  try {
    return check(chain, purpose);
  } catch (err) {
    if (err instanceof CertificateError) return err.message;
    throw err;
  }
}

function check(chain: readonly Certificate[], purpose: ChainPurpose): string | undefined {
  if (chain.length === 0) return 'the certificate chain is empty';
  for (const cert of chain) {
    const problem = signatureAlgorithmAllowed(cert) ?? keyProblem(cert);
    if (problem) return problem;
  }
  for (let i = 0; i + 1 < chain.length; i++) {
    const cert = chain[i] as Certificate;
    const issuer = chain[i + 1] as Certificate;
    if (!signedBy(cert, issuer))
      return `certificate "${cert.subject}" (#${i}) is not signed by the next certificate in the chain, "${issuer.subject}" (#${i + 1})`;
  }
  const root = chain[chain.length - 1] as Certificate;
  if (!signedBy(root, root))
    return chain.length === 1
      ? `the only certificate, "${root.subject}", is not self-signed: the chain must end with a root`
      : `the last certificate, "${root.subject}", is not a self-signed root`;
  const leafProblem = leafRequirements(chain[0] as Certificate, purpose);
  if (leafProblem) return leafProblem;
  for (let i = 1; i < chain.length; i++) {
    const problem = caRequirements(chain[i] as Certificate, purpose, i - 1);
    if (problem) return problem;
  }
  return undefined;
}

function keyProblem(cert: Certificate): string | undefined {
  if (cert.keyType === 'rsa' && cert.keyBits < 2048)
    return `certificate "${cert.subject}" has an RSA key of ${cert.keyBits} bits; at least 2048 are required`;
  if (cert.keyType === 'ec' && cert.keyBits < 256)
    return `certificate "${cert.subject}" has an EC key below 256 bits (${cert.keyDescription})`;
  if (cert.keyType === 'other')
    return `certificate "${cert.subject}" has an unsupported key type (${cert.keyDescription})`;
  return undefined;
}

function leafRequirements(cert: Certificate, purpose: ChainPurpose): string | undefined {
  const who = `${purpose === 'codeSigning' ? 'signing' : 'timestamping'} certificate "${cert.subject}"`;
  const bc = basicConstraints(cert);
  if (bc?.ca) return `${who} is a CA certificate (basicConstraints cA=true)`;
  const ku = keyUsage(cert);
  if (!ku) return `${who} has no keyUsage extension`;
  if (purpose === 'codeSigning' && !ku.critical) return `${who}: keyUsage must be critical`;
  if (!ku.bits.has(KU.digitalSignature)) return `${who}: keyUsage lacks digitalSignature`;
  const extra = FORBIDDEN_LEAF_KU.filter((b) => ku.bits.has(b));
  if (extra.length > 0) return `${who}: keyUsage has bits not allowed for a leaf (${extra.join(', ')})`;
  const eku = extKeyUsage(cert);
  if (purpose === 'codeSigning') {
    const bad = (eku?.oids ?? []).filter((o) => Object.hasOwn(FORBIDDEN_CODE_SIGNING_EKU, o));
    if (bad.length > 0)
      return `${who}: extendedKeyUsage contains ${bad.map((o) => FORBIDDEN_CODE_SIGNING_EKU[o]).join(', ')}`;
  } else {
    if (!eku) return `${who} has no extendedKeyUsage; RFC 3161 requires timeStamping`;
    if (!eku.critical) return `${who}: extendedKeyUsage must be critical`;
    if (eku.oids.length !== 1 || eku.oids[0] !== OID.ekuTimeStamping)
      return `${who}: extendedKeyUsage must be timeStamping only`;
  }
  return undefined;
}

function caRequirements(cert: Certificate, purpose: ChainPurpose, casBelow: number): string | undefined {
  const who = `CA certificate "${cert.subject}"`;
  const bc = basicConstraints(cert);
  if (!bc) return `${who} has no basicConstraints extension`;
  if (!bc.critical) return `${who}: basicConstraints must be critical`;
  if (!bc.ca) return `${who}: basicConstraints cA is false`;
  if (bc.pathLen !== undefined && casBelow > bc.pathLen)
    return `${who}: pathLenConstraint ${bc.pathLen} allows fewer intermediate CAs than the ${casBelow} below it`;
  const ku = keyUsage(cert);
  if (!ku) return `${who} has no keyUsage extension`;
  if (purpose === 'codeSigning' && !ku.critical) return `${who}: keyUsage must be critical`;
  if (!ku.bits.has(KU.keyCertSign)) return `${who}: keyUsage lacks keyCertSign`;
  return undefined;
}

/** Whether every certificate is valid at `at`; the first one that is not, with how. */
export function validityProblem(chain: readonly Certificate[], at: Date, label: string): string | undefined {
  for (const cert of chain) {
    if (at < cert.notBefore)
      return `${label} is before certificate "${cert.subject}" validity period, it will be valid from ${cert.notBefore.toISOString()}`;
    if (at > cert.notAfter)
      return `${label} is after certificate "${cert.subject}" validity period, it was expired at ${cert.notAfter.toISOString()}`;
  }
  return undefined;
}
