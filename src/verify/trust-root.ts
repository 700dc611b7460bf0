// Sigstore trust material (Fulcio CAs, Rekor and CT log keys, TSAs) from a trusted_root.json,
// read from disk only: verification never reaches the TUF CDN, Fulcio or Rekor.
import { noteInput } from '../policy/inputs.ts';
import { createHash, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { toTrustMaterial, type TrustMaterial } from '@sigstore/verify';
import type { TrustRootSpec } from '../policy/types.ts';
import { parseCertificate, type Certificate } from './cert-path.ts';
import { pemCertificates, readPemSpec } from './pem.ts';

export interface LoadedTrustRoot {
  /** `sha256:<hex>` of the trusted_root.json bytes. */
  readonly digest: string;
  /** What it is, for messages: `builtin sigstore-public-good`, `file /etc/…/trusted_root.json` or `parts (…)`. */
  readonly description: string;
  /** Trust material without public keys: attestors add their own key finder. */
  readonly material: TrustMaterial;
  /** The certificates of each of `material.certificateAuthorities`, same order, for path building. */
  readonly caCertificates: readonly (readonly Certificate[])[];
}

const PUBLIC_GOOD_TUF_MIRROR = 'https://tuf-repo-cdn.sigstore.dev';

/** The public-good trusted_root.json shipped inside @sigstore/tuf's seeds (no network). */
export function publicGoodTrustedRootBytes(): Buffer {
  const seedsPath = createRequire(import.meta.url).resolve('@sigstore/tuf/seeds.json');
  const seeds = JSON.parse(readFileSync(seedsPath, 'utf8')) as Record<string, { targets?: Record<string, string> }>;
  const encoded = seeds[PUBLIC_GOOD_TUF_MIRROR]?.targets?.['trusted_root.json'];
  if (!encoded)
    throw new Error(`${seedsPath} holds no trusted_root.json for ${PUBLIC_GOOD_TUF_MIRROR}; reinstall @sigstore/tuf`);
  return Buffer.from(encoded, 'base64');
}

interface RootSource {
  bytes: Buffer;
  description: string;
}

const PARTS = ['rekorKeys', 'fulcioCertificates', 'ctlogKeys'] as const;
const TRUSTED_ROOT_MEDIA_TYPE = 'application/vnd.dev.sigstore.trustedroot+json;version=0.1';
const BEGINNING = '1970-01-01T00:00:00Z';

/** What the spec names, read from disk; throws an Error saying what is wrong (the caller adds where). */
function readRoot(spec: TrustRootSpec, baseDir: string): RootSource {
  const given = [
    ...(spec.builtin !== undefined ? ['builtin'] : []),
    ...(spec.file !== undefined ? ['file'] : []),
    ...(PARTS.some((p) => spec[p] !== undefined) ? ['parts'] : []),
  ];
  if (given.length !== 1)
    throw new Error(
      `give exactly one of builtin, file, or the parts ${PARTS.join(', ')} (got ${given.join(', ') || 'none'})`,
    );
  if (spec.builtin !== undefined) {
    if (spec.builtin !== 'sigstore-public-good')
      throw new Error(`unknown builtin trust root "${String(spec.builtin)}"; the only one is sigstore-public-good`);
    return { bytes: publicGoodTrustedRootBytes(), description: 'builtin sigstore-public-good' };
  }
  if (spec.file !== undefined) {
    const file = path.resolve(baseDir, spec.file);
    try {
      noteInput(file);
      return { bytes: readFileSync(file), description: `file ${file}` };
    } catch (err) {
      throw new Error(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  return assembleRoot(spec, baseDir);
}

/** Thrown for one entry of a part, so the caller can point at it. */
export class TrustRootPartError extends Error {
  readonly part: string;
  readonly index: number;
  constructor(part: string, index: number, message: string) {
    super(`${part}[${index}]: ${message}`);
    this.name = 'TrustRootPartError';
    this.part = part;
    this.index = index;
  }
}

/**
 * A trusted root assembled from bare files, as cosign takes them (SIGSTORE_REKOR_PUBLIC_KEY,
 * SIGSTORE_ROOT_FILE, SIGSTORE_CT_LOG_PUBLIC_KEY_FILE): its JSON is the content the digest covers,
 * so editing any of the files changes the trust root's identity.
 */
function assembleRoot(spec: TrustRootSpec, baseDir: string): RootSource {
  if (!spec.rekorKeys?.length && !spec.fulcioCertificates?.length)
    throw new Error('a trust root from parts needs rekorKeys or fulcioCertificates (or both)');
  const labels: string[] = [];
  const each = <T>(part: (typeof PARTS)[number], fn: (text: string, label: string) => T): T[] =>
    (spec[part] ?? []).map((entry, i) => {
      try {
        const { text, label } = readPemSpec(entry, baseDir);
        labels.push(`${part}[${i}] ${label}`);
        return fn(text, label);
      } catch (err) {
        throw new TrustRootPartError(part, i, (err as Error).message);
      }
    });
  const root = {
    mediaType: TRUSTED_ROOT_MEDIA_TYPE,
    tlogs: each('rekorKeys', (text) => logInstance(text)),
    certificateAuthorities: each('fulcioCertificates', (text, label) => ({
      certChain: {
        certificates: pemCertificates(text, label).map((der) => {
          new X509Certificate(der); // a readable certificate, or the error says why not
          return { rawBytes: der.toString('base64') };
        }),
      },
      validFor: { start: BEGINNING },
    })),
    ctlogs: each('ctlogKeys', (text) => logInstance(text)),
    timestampAuthorities: [],
  };
  return { bytes: Buffer.from(JSON.stringify(root)), description: `parts (${labels.join(', ')})` };
}

/** A log (Rekor or CT) known by its public key alone: its id is the sha256 of the key's DER SPKI. */
function logInstance(text: string): object {
  if (!/-----BEGIN (RSA )?PUBLIC KEY-----/.test(text)) throw new Error('not a PEM public key');
  let key: KeyObject;
  try {
    key = createPublicKey({ key: text, format: 'pem' });
  } catch (err) {
    throw new Error(`not a PEM public key (${(err as Error).message})`);
  }
  const spki = key.export({ type: 'spki', format: 'der' });
  const curve = key.asymmetricKeyDetails?.namedCurve;
  // sigstore-js reads PKCS#1 bytes for the RSA PKCS#1 key details, SPKI for the rest.
  const [keyDetails, rawBytes] =
    key.asymmetricKeyType === 'rsa'
      ? ['PKIX_RSA_PKCS1V15_2048_SHA256', key.export({ type: 'pkcs1', format: 'der' })]
      : key.asymmetricKeyType === 'ed25519'
        ? ['PKIX_ED25519', spki]
        : curve === 'prime256v1'
          ? ['PKIX_ECDSA_P256_SHA_256', spki]
          : curve === 'secp384r1'
            ? ['PKIX_ECDSA_P384_SHA_384', spki]
            : curve === 'secp521r1'
              ? ['PKIX_ECDSA_P521_SHA_512', spki]
              : [undefined, spki];
  if (keyDetails === undefined)
    throw new Error(
      `unsupported log key type ${key.asymmetricKeyType} ${curve ?? ''}; use ECDSA P-256/384/521, Ed25519 or RSA`,
    );
  return {
    baseUrl: '',
    hashAlgorithm: 'SHA2_256',
    publicKey: { rawBytes: rawBytes.toString('base64'), keyDetails, validFor: { start: BEGINNING } },
    logId: { keyId: createHash('sha256').update(spki).digest('base64') },
  };
}

export function trustRootDigest(spec: TrustRootSpec, baseDir: string): string {
  return sha256(readRoot(spec, baseDir).bytes);
}

export const PUBLIC_GOOD_SPEC: TrustRootSpec = { builtin: 'sigstore-public-good' };

const MAX_CACHED_ROOTS = 16;
const cache = new Map<string, LoadedTrustRoot>();

/** Loads and parses a trust root; parsed roots are shared by content digest. Throws an Error saying what is wrong. */
export function loadTrustRoot(spec: TrustRootSpec, baseDir: string): LoadedTrustRoot {
  const source = readRoot(spec, baseDir);
  const digest = sha256(source.bytes);
  const cached = cache.get(digest);
  if (cached) return cached;
  const material = parseRoot(source);
  const caCertificates = material.certificateAuthorities.map((ca) =>
    ca.certChain.map((c) => parseCertificate(Buffer.from(c.root.toDER()))),
  );
  const loaded: LoadedTrustRoot = { digest, description: source.description, material, caCertificates };
  if (cache.size >= MAX_CACHED_ROOTS) cache.delete(cache.keys().next().value as string);
  cache.set(digest, loaded);
  return loaded;
}

function parseRoot(source: RootSource): TrustMaterial {
  let json: unknown;
  try {
    json = JSON.parse(source.bytes.toString('utf8'));
  } catch (err) {
    throw new Error(`${source.description}: not JSON (${(err as Error).message})`);
  }
  const mediaType = (json as { mediaType?: unknown } | null)?.mediaType;
  if (typeof mediaType !== 'string' || !mediaType.startsWith('application/vnd.dev.sigstore.trustedroot')) {
    throw new Error(`${source.description}: not a Sigstore trusted root (mediaType ${JSON.stringify(mediaType)})`);
  }
  try {
    return toTrustMaterial(TrustedRoot.fromJSON(json), noKeys);
  } catch (err) {
    throw new Error(`${source.description}: invalid trusted root (${(err as Error).message})`);
  }
}

function noKeys(hint: string): never {
  throw new Error(`no public key "${hint}" in a trust root`);
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}
