// The distribution spec's grammar for repository names, tags and digests. Nothing from a request
// reaches an upstream URL without passing these checks.
import { RegistryError } from './errors.ts';

const NAME_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME_RE = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`);
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST_RE = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;
const MAX_NAME_LENGTH = 255;

/** Digest algorithms this proxy can compute, with the encoded length the OCI spec registers for each. */
const ALGORITHMS: Record<string, RegExp> = {
  sha256: /^[a-f0-9]{64}$/,
  sha512: /^[a-f0-9]{128}$/,
};

export function isValidRepository(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME_RE.test(name);
}

export function isTag(reference: string): boolean {
  return TAG_RE.test(reference);
}

export function assertRepository(name: string): void {
  if (!isValidRepository(name)) {
    throw new RegistryError(
      'invalid',
      'NAME_INVALID',
      `invalid repository name "${name}": lowercase components of [a-z0-9] separated by "/", ".", "_" or "-", at most ${MAX_NAME_LENGTH} characters`,
    );
  }
}

export interface ParsedDigest {
  algorithm: 'sha256' | 'sha512';
  hex: string;
}

/** Parses a digest, or returns an error message saying what is wrong with it. */
export function parseDigest(digest: string): ParsedDigest | string {
  const m = DIGEST_RE.exec(digest);
  if (!m) return `"${digest}" is not a digest of the form algorithm:hex`;
  const [, algorithm, encoded] = m as unknown as [string, string, string];
  const check = ALGORITHMS[algorithm];
  if (!check) return `unsupported digest algorithm "${algorithm}" (supported: ${Object.keys(ALGORITHMS).join(', ')})`;
  if (!check.test(encoded)) return `digest "${digest}" has a malformed ${algorithm} value`;
  return { algorithm: algorithm as ParsedDigest['algorithm'], hex: encoded };
}

export function isDigest(reference: string): boolean {
  return typeof parseDigest(reference) !== 'string';
}

/** A manifest reference: a tag or a digest the proxy can verify. */
export function assertManifestReference(reference: string): void {
  if (reference.includes(':')) {
    const parsed = parseDigest(reference);
    if (typeof parsed === 'string')
      throw new RegistryError('invalid', 'MANIFEST_INVALID', `invalid manifest reference: ${parsed}`);
    // Pins, revocations, grants and stored manifests are keyed by sha256: a manifest known under
    // another algorithm would slip past them.
    if (parsed.algorithm !== 'sha256')
      throw new RegistryError(
        'invalid',
        'MANIFEST_INVALID',
        `manifests are addressed by sha256 digests here, not ${parsed.algorithm}`,
      );
    return;
  }
  if (!isTag(reference)) {
    throw new RegistryError(
      'invalid',
      'MANIFEST_INVALID',
      `invalid tag "${reference}": 1-128 characters of [A-Za-z0-9_.-], not starting with "." or "-"`,
    );
  }
}

export function assertBlobDigest(digest: string): ParsedDigest {
  const parsed = parseDigest(digest);
  if (typeof parsed === 'string') throw new RegistryError('invalid', 'DIGEST_INVALID', parsed);
  return parsed;
}
