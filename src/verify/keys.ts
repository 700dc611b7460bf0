// Attestor public keys: parsing, fingerprints, and signature checks that match what cosign accepts.
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';

export interface AttestorKey {
  /** `sha256:<hex>` over the DER SubjectPublicKeyInfo: stable across PEM formatting. */
  readonly id: string;
  readonly key: KeyObject;
  /** e.g. `ECDSA P-256`, for messages. */
  readonly algorithm: string;
}

const CURVES: Record<string, { label: string; hashes: string[] }> = {
  // cosign's legacy --key path hashes with SHA-256 whatever the curve (its default
  // --signature-digest-algorithm); Sigstore bundles pair P-384 with SHA-384 and P-521 with SHA-512.
  prime256v1: { label: 'ECDSA P-256', hashes: ['sha256'] },
  secp384r1: { label: 'ECDSA P-384', hashes: ['sha384', 'sha256'] },
  secp521r1: { label: 'ECDSA P-521', hashes: ['sha512', 'sha256'] },
};

const MIN_RSA_BITS = 2048;

/** Parses one PEM public key; throws an Error whose message says what is wrong with it. */
export function parsePublicKey(pem: string): AttestorKey {
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
  return { id, key, algorithm: describeKey(key) };
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
      if ((details.modulusLength ?? 0) < MIN_RSA_BITS)
        throw new Error(`RSA key of ${details.modulusLength} bits is too short; at least ${MIN_RSA_BITS} required`);
      return `RSA-${details.modulusLength}`;
    case 'ed25519':
      return 'Ed25519';
    default:
      throw new Error(`unsupported key type ${key.asymmetricKeyType}; use ECDSA, RSA or Ed25519`);
  }
}

/**
 * Whether `signature` over `data` verifies with `key` under one of the schemes cosign and
 * sigstore use for that key type: ECDSA (DER) with the curve's hashes, RSA PKCS#1 v1.5 with
 * SHA-256, Ed25519 over the raw bytes. RSA-PSS is not accepted (cosign does not produce it).
 */
export function verifySignature(key: KeyObject, data: Buffer, signature: Buffer): boolean {
  return hashesFor(key).some((hash) => {
    try {
      return verify(hash, data, key, signature);
    } catch {
      return false;
    }
  });
}

function hashesFor(key: KeyObject): (string | null)[] {
  switch (key.asymmetricKeyType) {
    case 'ec':
      return CURVES[key.asymmetricKeyDetails?.namedCurve ?? '']?.hashes ?? [];
    case 'rsa':
      return ['sha256'];
    case 'ed25519':
      return [null];
    default:
      return [];
  }
}
