// An attestor as the policy names it, compiled once at policy load: parsed keys, anchored
// identity matchers, loaded trust material, transparency-log requirements.
import { noteInput } from '../policy/inputs.ts';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { AttestorSpec, KeySpec, TrustRootSpec } from '../policy/types.ts';
import { compileIdentity, IdentitySpecError, type IdentityMatcher } from './identity.ts';
import { parsePublicKey, type AttestorKey } from './keys.ts';
import { compileNotation, NotationConfigError, type CompiledNotation } from './notation/attestor.ts';
import { compilePki, PkiSpecError, type CompiledPki } from './pki.ts';
import { parseSignaturesRepository, type EvidenceLocation } from './evidence-location.ts';
import { loadTrustRoot, PUBLIC_GOOD_SPEC, TrustRootPartError, type LoadedTrustRoot } from './trust-root.ts';

/** The image's own repository among an attestor's locations. */
export const IMAGE_LOCATION: EvidenceLocation = { registry: '', repository: '' };

export { trustRootDigest } from './trust-root.ts';

export interface CompiledAttestor {
  readonly name: string;
  readonly keys: readonly AttestorKey[];
  readonly identities: readonly IdentityMatcher[];
  /** CA certificates of the admin's own and the signers they vouch for. */
  readonly pki?: CompiledPki;
  readonly trustRootName: string;
  readonly trustRoot: LoadedTrustRoot;
  /**
   * Where its evidence is looked up: IMAGE_LOCATION is the image's own repository; a
   * signaturesRepository replaces it, or joins it with alsoImageRepository.
   */
  readonly locations: readonly EvidenceLocation[];
  /** Whether transparency-log evidence is required, per kind of signer (`keyless` covers every certificate, PKI too). */
  readonly requireTlog: { readonly keyed: boolean; readonly keyless: boolean };
  /** Set for a Notation attestor: it judges Notation signatures only, cosign ones only without it. */
  readonly notation?: CompiledNotation;
}

export type ConfigPath = (string | number)[];

export class AttestorConfigError extends Error {
  /** Where in the policy document the problem is, e.g. `['attestors','ci','keys',1,'file']`. */
  readonly path: ConfigPath;
  constructor(attestor: string, where: string, problem: string, configPath: ConfigPath) {
    super(`attestor "${attestor}": ${where ? `${where}: ` : ''}${problem}`);
    this.name = 'AttestorConfigError';
    this.path = configPath;
  }
}

export const DEFAULT_TRUST_ROOT = 'public-good';

export function compileAttestor(
  name: string,
  spec: AttestorSpec,
  ctx: { baseDir: string; trustRoots: Record<string, TrustRootSpec> },
): CompiledAttestor {
  const at: ConfigPath = ['attestors', name];
  if (spec.notation !== undefined) return compileNotationAttestor(name, spec, ctx.baseDir, at);
  const keys = (spec.keys ?? []).map((key, i) => compileKey(name, key, i, ctx.baseDir));
  const identities = (spec.identities ?? []).map((identity, i) => {
    try {
      return compileIdentity(identity);
    } catch (err) {
      if (!(err instanceof IdentitySpecError)) throw err;
      throw new AttestorConfigError(name, `identities[${i}].${err.field}`, err.message, [
        ...at,
        'identities',
        i,
        err.field,
      ]);
    }
  });
  let pki: CompiledPki | undefined;
  if (spec.pki !== undefined) {
    try {
      pki = compilePki(spec.pki, ctx.baseDir);
    } catch (err) {
      if (!(err instanceof PkiSpecError)) throw err;
      const where = `pki.${err.at
        .map((p) => (typeof p === 'number' ? `[${p}]` : p))
        .join('.')
        .replace(/\.\[/g, '[')}`;
      throw new AttestorConfigError(name, where, err.message, [...at, 'pki', ...err.at]);
    }
  }
  const locations = locationsOf(name, spec, at);
  if (keys.length === 0 && identities.length === 0 && !pki) {
    throw new AttestorConfigError(name, '', 'has no keys, identities or pki; give at least one', at);
  }
  const trustRootName = spec.trustRoot ?? DEFAULT_TRUST_ROOT;
  const rootSpec = Object.hasOwn(ctx.trustRoots, trustRootName)
    ? ctx.trustRoots[trustRootName]
    : trustRootName === DEFAULT_TRUST_ROOT
      ? PUBLIC_GOOD_SPEC
      : undefined;
  if (rootSpec === undefined) {
    const known = [DEFAULT_TRUST_ROOT, ...Object.keys(ctx.trustRoots).filter((k) => k !== DEFAULT_TRUST_ROOT)];
    throw new AttestorConfigError(
      name,
      'trustRoot',
      `unknown trust root "${trustRootName}"; known: ${known.join(', ')}`,
      [...at, 'trustRoot'],
    );
  }
  let trustRoot: LoadedTrustRoot;
  try {
    trustRoot = loadTrustRoot(rootSpec, ctx.baseDir);
  } catch (err) {
    throw new AttestorConfigError(
      name,
      `trust root "${trustRootName}"`,
      (err as Error).message,
      trustRootErrorPath(trustRootName, rootSpec, err),
    );
  }
  return {
    name,
    keys,
    identities,
    ...(pki ? { pki } : {}),
    trustRootName,
    trustRoot,
    locations,
    requireTlog: { keyed: spec.requireTlog ?? false, keyless: spec.requireTlog ?? true },
  };
}

/** Where in the document a trust root's problem is: the part entry, the field, or the root itself. */
export function trustRootErrorPath(name: string, spec: TrustRootSpec, err: unknown): ConfigPath {
  if (err instanceof TrustRootPartError) return ['trustRoots', name, err.part, err.index];
  const fields = Object.keys(spec).filter((k) => (spec as Record<string, unknown>)[k] !== undefined);
  return fields.length === 1 && (fields[0] === 'file' || fields[0] === 'builtin')
    ? ['trustRoots', name, fields[0]]
    : ['trustRoots', name];
}

function compileKey(attestor: string, spec: KeySpec, index: number, baseDir: string): AttestorKey {
  const where = `keys[${index}]`;
  const at: ConfigPath = ['attestors', attestor, 'keys', index];
  if ((spec.pem === undefined) === (spec.file === undefined)) {
    throw new AttestorConfigError(attestor, where, 'give exactly one of pem or file', at);
  }
  if (spec.pem !== undefined) {
    try {
      return parsePublicKey(spec.pem, spec.signatureAlgorithm);
    } catch (err) {
      throw new AttestorConfigError(attestor, `${where}: pem`, (err as Error).message, [...at, 'pem']);
    }
  }
  const file = spec.file as string;
  let pem: string;
  try {
    noteInput(path.resolve(baseDir, file));
    pem = readFileSync(path.resolve(baseDir, file), 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new AttestorConfigError(
      attestor,
      `${where}: file ${file}`,
      `cannot read (${reason}, relative to ${baseDir})`,
      [...at, 'file'],
    );
  }
  try {
    return parsePublicKey(pem, spec.signatureAlgorithm);
  } catch (err) {
    throw new AttestorConfigError(attestor, `${where}: file ${file}`, (err as Error).message, [...at, 'file']);
  }
}

/** Where an attestor's evidence is looked for: the image's repository, `signaturesRepository`, or both. */
function locationsOf(name: string, spec: AttestorSpec, at: ConfigPath): readonly EvidenceLocation[] {
  if (spec.alsoImageRepository !== undefined && spec.signaturesRepository === undefined)
    throw new AttestorConfigError(
      name,
      'alsoImageRepository',
      'applies only with signaturesRepository; remove it or name the repository',
      [...at, 'alsoImageRepository'],
    );
  if (spec.signaturesRepository === undefined) return [IMAGE_LOCATION];
  const parsed = parseSignaturesRepository(spec.signaturesRepository);
  if (typeof parsed === 'string')
    throw new AttestorConfigError(name, 'signaturesRepository', parsed, [...at, 'signaturesRepository']);
  return spec.alsoImageRepository ? [parsed, IMAGE_LOCATION] : [parsed];
}

function compileNotationAttestor(name: string, spec: AttestorSpec, baseDir: string, at: ConfigPath): CompiledAttestor {
  for (const field of ['keys', 'identities', 'pki', 'trustRoot', 'requireTlog'] as const)
    if (spec[field] !== undefined)
      throw new AttestorConfigError(name, field, 'is for cosign/Sigstore attestors; a notation attestor takes none', [
        ...at,
        field,
      ]);
  let notation: CompiledNotation;
  try {
    notation = compileNotation(spec.notation ?? {}, baseDir);
  } catch (err) {
    if (!(err instanceof NotationConfigError)) throw err;
    throw new AttestorConfigError(name, err.path.join('.'), err.message, [...at, ...err.path]);
  }
  return {
    name,
    keys: [],
    identities: [],
    trustRootName: DEFAULT_TRUST_ROOT,
    trustRoot: loadTrustRoot(PUBLIC_GOOD_SPEC, baseDir),
    locations: locationsOf(name, spec, at),
    requireTlog: { keyed: false, keyless: false },
    notation,
  };
}
