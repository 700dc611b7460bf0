// A discovered Notation signature judged for one pullgate attestor: the attestor's trust policy
// picks the statement for `registry/repository`, the served manifest is the subject, and the
// outcome becomes verified evidence or a reason naming the envelope, the certificate and the check.
import type { FetchedManifest } from '../../oci/types.ts';
import type { ImageRef, VerifiedEvidence } from '../../policy/types.ts';
import type { CompiledAttestor } from '../attestor.ts';
import type { RawEvidence } from '../discover.ts';
import { verifyNotationSignature } from './verify.ts';

export function verifyNotation(
  raw: RawEvidence,
  subject: FetchedManifest,
  image: ImageRef,
  attestor: CompiledAttestor,
  now: Date,
): VerifiedEvidence | { reason: string } {
  const notation = attestor.notation;
  if (!notation)
    return { reason: `a Notation signature; attestor "${attestor.name}" verifies cosign/Sigstore signatures only` };
  const uri = `${image.registry}/${image.repository}`;
  const statement = notation.statementFor(uri);
  if (!statement)
    return {
      reason: `attestor "${attestor.name}": its Notation trust policy has no statement whose registryScopes cover ${uri}`,
    };
  const outcome = verifyNotationSignature({
    envelope: raw.bytes,
    envelopeMediaType: raw.mediaType ?? '',
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.bytes.length },
    statement,
    trustStores: notation.trustStores,
    crls: notation.crls,
    now,
  });
  const envelope = outcome.signer ?? `Notation ${raw.mediaType ?? 'signature'}`;
  if (outcome.verdict === 'skipped')
    return {
      reason: `attestor "${attestor.name}": trust policy statement "${statement.name}" has level skip, which verifies nothing and satisfies no requirement`,
    };
  if (outcome.verdict === 'fail') {
    const f = outcome.failure;
    return {
      reason: `${envelope}: ${f?.check ?? 'verification'} failed for attestor "${attestor.name}" (statement "${statement.name}", level ${statement.level}): ${f?.message ?? 'unknown'}`,
    };
  }
  const logged = outcome.logged.map((l) => `${l.check}: ${l.message}`);
  return {
    attestor: attestor.name,
    kind: 'signature',
    source: raw.source,
    signer: `${envelope}${outcome.timestamp ? `, timestamped ${outcome.timestamp.lower.toISOString()} by "${outcome.timestamp.tsa}"` : ''}${logged.length > 0 ? ` (level ${statement.level} logged: ${logged.join('; ')})` : ''}`,
  };
}
