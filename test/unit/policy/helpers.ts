// Test helpers for the policy module: real keys, temp dirs, facts.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AttestorFacts, VerifiedEvidence } from '../../../src/policy/types.ts';

export function publicKeyPem(): string {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' })
    .publicKey.export({ type: 'spki', format: 'pem' })
    .toString();
}

/** Indents a PEM for a YAML block scalar at `spaces`. */
export function yamlBlock(pem: string, spaces: number): string {
  return pem
    .trim()
    .split('\n')
    .map((l) => `${' '.repeat(spaces)}${l}`)
    .join('\n');
}

/** A temp dir removed when the test file is done (register `cleanup` with test.after.always). */
export function tempDirs(): { make: () => string; cleanup: () => void } {
  const dirs: string[] = [];
  return {
    make: () => {
      const d = mkdtempSync(join(tmpdir(), 'pullgate-policy-'));
      dirs.push(d);
      return d;
    },
    cleanup: () => {
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    },
  };
}

/** The public-good trusted_root.json bytes shipped with @sigstore/tuf (as pullgate reads them). */
export function publicGoodTrustedRoot(): unknown {
  const seeds = JSON.parse(
    readFileSync(createRequire(import.meta.url).resolve('@sigstore/tuf/seeds.json'), 'utf8'),
  ) as Record<string, { targets: Record<string, string> }>;
  const encoded = seeds['https://tuf-repo-cdn.sigstore.dev']?.targets['trusted_root.json'] as string;
  return JSON.parse(Buffer.from(encoded, 'base64').toString('utf8'));
}

export function signature(attestor: string, signer = 'key sha256:aa'): VerifiedEvidence {
  return { attestor, kind: 'signature', source: `tag sha256-0.sig layer 0`, signer };
}

export function attestation(
  attestor: string,
  predicateType: string,
  predicate: unknown,
  source = 'tag sha256-0.att layer 0',
): VerifiedEvidence {
  return { attestor, kind: 'attestation', predicateType, predicate, source, signer: 'key sha256:aa' };
}

export function facts(...entries: Partial<AttestorFacts>[]): Map<string, AttestorFacts> {
  return new Map(
    entries.map((e) => {
      const verified = e.verified ?? [];
      const rejected = e.rejected ?? [];
      const f: AttestorFacts = {
        attestor: e.attestor as string,
        verified,
        rejected,
        examined: e.examined ?? verified.length + rejected.length,
      };
      return [f.attestor, f];
    }),
  );
}
