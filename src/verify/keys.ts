// Attestor public keys: parsing, fingerprints, and signature checks that match what cosign accepts.
import { constants, createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';

export interface AttestorKey {
  /** `sha256:<hex>` over the DER SubjectPublicKeyInfo: stable across PEM formatting. */
  readonly id: string;
  readonly key: KeyObject;
  /** e.g. `ECDSA P-256`, for messages. */
  readonly algorithm: string;
  /** The signature schemes this key is accepted with. */
  readonly schemes: readonly SignatureScheme[];
}

/** A hash (null: the key's own, for Ed25519) and, for RSA, a padding. */
export interface SignatureScheme {
  readonly hash: string | null;
  readonly padding?: 'pkcs1v15' | 'pss';
}

/** What a policy may name for an RSA key, e.g. GCP Binary Authorization's RSA_PSS_4096_SHA512. */
export const RSA_SIGNATURE_ALGORITHMS = [
  'rsa-pkcs1v15-sha256',
  'rsa-pkcs1v15-sha384',
  'rsa-pkcs1v15-sha512',
  'rsa-pss-sha256',
  'rsa-pss-sha384',
  'rsa-pss-sha512',
] as const;
export type RsaSignatureAlgorithm = (typeof RSA_SIGNATURE_ALGORITHMS)[number];

const CURVES: Record<string, { label: string; hashes: string[] }> = {
  // cosign's legacy --key path hashes with SHA-256 whatever the curve (its default
  // --signature-digest-algorithm); Sigstore bundles pair P-384 with SHA-384 and P-521 with SHA-512.
  prime256v1: { label: 'ECDSA P-256', hashes: ['sha256'] },
  secp384r1: { label: 'ECDSA P-384', hashes: ['sha384', 'sha256'] },
  secp521r1: { label: 'ECDSA P-521', hashes: ['sha512', 'sha256'] },
};

const MIN_RSA_BITS = 2048;

/**
 * Parses one PEM public key; throws an Error whose message says what is wrong with it.
 * `signatureAlgorithm` (RSA keys only) replaces the default scheme of the key type.
 */
export function parsePublicKey(pem: string, signatureAlgorithm?: string): AttestorKey {
  if (!/-----BEGIN (RSA )?PUBLIC KEY-----/.test(pem)) throw new Error('not a PEM public key');
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new Error(`not a PEM public key (${(err as Error).message})`);
  }
  const id = `sha256:${createHash('sha256')
    .update(key.export({ type: 'spki', format: 'der' }))
    .digest('hex')}`;
  const algorithm = describeKey(key);
  return { id, key, algorithm, schemes: schemesFor(key, signatureAlgorithm) };
}

function describeKey(key: KeyObject): string {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve = CURVES[details.namedCurve ?? ''];
      if (!curve)
        throw new Error(`unsupported elliptic curve ${details.namedCurve ?? '(unknown)'}; use P-256, P-384 or P-521`);
      return curve.label;
    }
    case 'rsa':
    case 'rsa-pss': {
      if ((details.modulusLength ?? 0) < MIN_RSA_BITS)
        throw new Error(`RSA key of ${details.modulusLength} bits is too short; at least ${MIN_RSA_BITS} required`);
      return `${key.asymmetricKeyType === 'rsa' ? 'RSA' : 'RSA-PSS'}-${details.modulusLength}`;
    }
    case 'ed25519':
      return 'Ed25519';
    default:
      throw new Error(`unsupported key type ${key.asymmetricKeyType}; use ECDSA, RSA, RSA-PSS or Ed25519`);
  }
}

/**
 * The schemes cosign and sigstore use for a key type: ECDSA (DER) with the curve's hashes, RSA
 * PKCS#1 v1.5 with SHA-256, RSA-PSS (an id-RSASSA-PSS key) with the hash its parameters fix or
 * SHA-256, Ed25519 over the raw bytes. A named RSA algorithm replaces the default: one key, one scheme.
 */
export function schemesFor(key: KeyObject, signatureAlgorithm?: string): SignatureScheme[] {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (signatureAlgorithm !== undefined) {
    const named = /^rsa-(pkcs1v15|pss)-(sha256|sha384|sha512)$/.exec(signatureAlgorithm);
    if (!named)
      throw new Error(
        `unknown signatureAlgorithm "${signatureAlgorithm}"; use one of ${RSA_SIGNATURE_ALGORITHMS.join(', ')}`,
      );
    if (type !== 'rsa' && type !== 'rsa-pss')
      throw new Error(
        `signatureAlgorithm ${signatureAlgorithm} needs an RSA key, but this is ${describeKey(key)}; leave it out for this key type`,
      );
    const [, padding, hash] = named as unknown as [string, 'pkcs1v15' | 'pss', string];
    if (type === 'rsa-pss' && padding !== 'pss')
      throw new Error(`signatureAlgorithm ${signatureAlgorithm} contradicts the key, an RSA-PSS (id-RSASSA-PSS) key`);
    if (type === 'rsa-pss' && details.hashAlgorithm !== undefined && details.hashAlgorithm !== hash)
      throw new Error(
        `signatureAlgorithm ${signatureAlgorithm} contradicts the key's parameters, which fix ${details.hashAlgorithm}`,
      );
    return [{ hash, padding }];
  }
  switch (type) {
    case 'ec':
      return (CURVES[details.namedCurve ?? '']?.hashes ?? []).map((hash) => ({ hash }));
    case 'rsa':
      return [{ hash: 'sha256', padding: 'pkcs1v15' }];
    case 'rsa-pss':
      return [{ hash: details.hashAlgorithm ?? 'sha256', padding: 'pss' }];
    case 'ed25519':
      return [{ hash: null }];
    default:
      return [];
  }
}

/** Whether `signature` over `data` verifies with `key` under one of `schemes` (default: the key type's). */
export function verifySignature(
  key: KeyObject,
  data: Buffer,
  signature: Buffer,
  schemes: readonly SignatureScheme[] = schemesFor(key),
): boolean {
  return schemes.some(({ hash, padding }) => {
    try {
      if (padding === undefined) return verify(hash, data, key, signature);
      return verify(
        hash,
        data,
        {
          key,
          padding: padding === 'pss' ? constants.RSA_PKCS1_PSS_PADDING : constants.RSA_PKCS1_PADDING,
          // PSS signers pick the salt length (Go: the hash length; OpenSSL: the maximum); any is sound.
          ...(padding === 'pss' ? { saltLength: constants.RSA_PSS_SALTLEN_AUTO } : {}),
        },
        signature,
      );
    } catch {
      return false;
    }
  });
}
