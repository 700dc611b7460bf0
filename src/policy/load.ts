// Loading a policy: text → checked document → compiled attestors, or a PolicyError that names the
// file, the JSON pointer of the offending value and what is wrong with it.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { CompiledAttestor } from '../verify/attestor.ts';
import { checkPolicy } from './check.ts';
import { collectInputs } from './inputs.ts';
import { attestorFingerprint, canonicalJson, sha256Hex } from './rule-hash.ts';
import type { PolicyDocument } from './types.ts';

export class PolicyError extends Error {
  readonly file: string;
  /** JSON pointer, e.g. `/rules/2/requireAttestors/anyOf/1`; `''` for the document as a whole. */
  readonly path: string;
  readonly problem: string;
  constructor(file: string, path: string, problem: string) {
    super(`${file}: ${path || '/'}: ${problem}`);
    this.name = 'PolicyError';
    this.file = file;
    this.path = path;
    this.problem = problem;
  }
}

export interface CompiledPolicy {
  /** The file it came from, or `<embedded>`. */
  source: string;
  doc: PolicyDocument;
  attestors: Map<string, CompiledAttestor>;
  /** sha256 (hex) of the policy text and of the key and trust root files it loaded. */
  version: string;
  /** The files and directories it was compiled from besides the policy file (watched like it). */
  inputs: string[];
}

export const EMBEDDED_SOURCE = '<embedded>';

/**
 * The policy in force when the configuration names no policy file: fail-closed. Nothing is
 * allowlisted and the default rule denies every image, with a reason telling the admin what to do.
 */
export const EMBEDDED_POLICY = `# pullgate's embedded policy: in force when the configuration names no policy file.
# It admits nothing. Write a policy (docs/policy.md, config/policy.example.yaml) and set
# policy.file in the configuration.
apiVersion: pullgate.dev/v1
kind: Policy
defaultRule:
  evaluationMode: alwaysDeny
`;

/** Parses, validates and compiles a policy; throws a PolicyError for the first problem found. */
export function parsePolicy(text: string, opts: { file: string; baseDir: string }): CompiledPolicy {
  const {
    value: { doc, attestors, problems },
    inputs,
  } = collectInputs(() => checkPolicy(text, opts.baseDir));
  const [first] = problems;
  if (first !== undefined || doc === undefined)
    throw new PolicyError(opts.file, first?.path ?? '', first?.problem ?? 'invalid policy');
  // Key and trust root files count: replacing one changes the policy in force as much as editing the text.
  const loaded = [...attestors].map(([name, a]) => [name, attestorFingerprint(undefined, a)]);
  return {
    source: text === EMBEDDED_POLICY ? EMBEDDED_SOURCE : opts.file,
    doc,
    attestors,
    version: sha256Hex(`${text}\n${canonicalJson(Object.fromEntries(loaded))}`),
    inputs,
  };
}

export function loadPolicyFile(file: string): CompiledPolicy {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new PolicyError(
      file,
      '',
      `cannot read the policy file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  return parsePolicy(text, { file, baseDir: dirname(resolve(file)) });
}
