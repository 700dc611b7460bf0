// Sigstore trust material (Fulcio CAs, Rekor and CT log keys, TSAs) from a trusted_root.json,
// read from disk only: verification never reaches the TUF CDN, Fulcio or Rekor.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { toTrustMaterial, type TrustMaterial } from '@sigstore/verify';
import type { TrustRootSpec } from '../policy/types.ts';

export interface LoadedTrustRoot {
  /** `sha256:<hex>` of the trusted_root.json bytes. */
  readonly digest: string;
  /** What it is, for messages: `builtin sigstore-public-good` or `file /etc/…/trusted_root.json`. */
  readonly description: string;
  /** Trust material without public keys: attestors add their own key finder. */
  readonly material: TrustMaterial;
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

function readRoot(spec: TrustRootSpec, baseDir: string): RootSource {
  if (spec.builtin !== undefined && spec.file !== undefined) throw new Error('give either builtin or file, not both');
  if (spec.builtin !== undefined) {
    if (spec.builtin !== 'sigstore-public-good')
      throw new Error(`unknown builtin trust root "${String(spec.builtin)}"; the only one is sigstore-public-good`);
    return { bytes: publicGoodTrustedRootBytes(), description: 'builtin sigstore-public-good' };
  }
  if (spec.file === undefined) throw new Error('give builtin: sigstore-public-good or file: <trusted_root.json>');
  const file = path.resolve(baseDir, spec.file);
  try {
    return { bytes: readFileSync(file), description: `file ${file}` };
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
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
  const loaded: LoadedTrustRoot = { digest, description: source.description, material: parseRoot(source) };
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
