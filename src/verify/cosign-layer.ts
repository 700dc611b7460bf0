// Maps cosign's legacy `.sig`/`.att` layers (signature, certificate and Rekor SET kept in layer
// annotations) onto Sigstore bundles of media type ...;version=0.1, the only bundle version that
// accepts an inclusion promise (SET) without an inclusion proof, so one verifier handles both.
import { bundleFromJSON, type Bundle } from '@sigstore/bundle';
import { createHash } from 'node:crypto';
import { DEFAULT_EVIDENCE_LIMITS, overBudget } from './budget.ts';
import { isBase64, pemBlocks } from './pem.ts';

export const Annotation = {
  signature: 'dev.cosignproject.cosign/signature',
  certificate: 'dev.sigstore.cosign/certificate',
  chain: 'dev.sigstore.cosign/chain',
  rekorBundle: 'dev.sigstore.cosign/bundle',
  timestamp: 'dev.sigstore.cosign/rfc3161timestamp',
} as const;

const BUNDLE_V01 = 'application/vnd.dev.sigstore.bundle+json;version=0.1';

/** Malformed evidence: the message says what is wrong with it. */
export class EvidenceFormatError extends Error {
  override readonly name = 'EvidenceFormatError';
}

/** Evidence bytes parsed as JSON; malformed evidence is a rejection reason, not an error. */
export function evidenceJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new EvidenceFormatError(`${what} is not valid JSON`);
  }
}

/** A `.sig` layer: simple-signing payload bytes plus the layer's annotations. */
export function simpleSigningBundle(payload: Buffer, annotations: Record<string, string>): Bundle {
  const signature = annotations[Annotation.signature];
  if (!signature) throw new EvidenceFormatError(`no ${Annotation.signature} annotation`);
  return toBundle(
    {
      messageSignature: {
        messageDigest: { algorithm: 'SHA2_256', digest: createHash('sha256').update(payload).digest('base64') },
        signature: cosignBase64(signature, Annotation.signature),
      },
    },
    annotations,
  );
}

interface SerializedEnvelope {
  payloadType: string;
  payload: string;
  signatures: { keyid?: string; sig: string }[];
}

/**
 * A `.att` layer: a DSSE envelope; one bundle per envelope signature (bundles hold exactly one).
 * An envelope with more than `maxSignatures` is rejected whole before any bundle is built: each
 * signature costs a verification, and anyone can append thousands to an envelope they push.
 */
export function attestationBundles(
  envelopeBytes: Buffer,
  annotations: Record<string, string>,
  maxSignatures: number = DEFAULT_EVIDENCE_LIMITS.signaturesPerEnvelope,
): Bundle[] {
  const envelope = parseEnvelope(envelopeBytes, maxSignatures);
  const bundleOf = (s: { keyid?: string; sig: string }, payload: string): Bundle =>
    toBundle(
      {
        dsseEnvelope: {
          payloadType: envelope.payloadType,
          payload,
          signatures: [{ keyid: s.keyid ?? '', sig: s.sig }],
        },
      },
      annotations,
    );
  // Decoding the payload is most of what building a bundle costs (the library copies it byte by
  // byte): 16 signatures over a 600 KB payload held the event loop 30-60 ms. The first bundle is
  // built (and checked) whole; the others around a placeholder, then given its decoded payload,
  // which every signature of the envelope signs.
  const [first, ...others] = envelope.signatures.map((s, i) => bundleOf(s, i === 0 ? envelope.payload : 'AA=='));
  if (first?.content.$case !== 'dsseEnvelope') return first ? [first] : [];
  const { payload } = first.content.dsseEnvelope;
  for (const b of others) if (b.content.$case === 'dsseEnvelope') b.content.dsseEnvelope.payload = payload;
  return [first, ...others];
}

/** Why an envelope with more than `maxSignatures` signature keys is refused unread. */
export function tooManySignatures(maxSignatures: number): string {
  return overBudget(`more than ${maxSignatures} signatures in one envelope`, 'signaturesPerEnvelope', maxSignatures);
}

function parseEnvelope(bytes: Buffer, maxSignatures: number): SerializedEnvelope {
  // A bomb is refused before it is parsed into thousands of objects (garbage the whole process pays
  // for in GC pauses). Only a shortcut: the count after parsing below is the check.
  const marked = countOf(bytes, SIG_KEY, maxSignatures + 1);
  if (marked > maxSignatures) throw new EvidenceFormatError(tooManySignatures(maxSignatures));
  const doc = evidenceJson(bytes, 'DSSE envelope');
  const env = doc as Partial<SerializedEnvelope> | null;
  if (typeof env?.payloadType !== 'string' || typeof env.payload !== 'string' || !Array.isArray(env.signatures)) {
    throw new EvidenceFormatError('not a DSSE envelope (needs payloadType, payload, signatures)');
  }
  if (env.signatures.length === 0) throw new EvidenceFormatError('DSSE envelope has no signatures');
  if (env.signatures.length > maxSignatures)
    throw new EvidenceFormatError(
      overBudget(`${env.signatures.length} signatures in one envelope`, 'signaturesPerEnvelope', maxSignatures),
    );
  for (const s of env.signatures) {
    if (typeof s?.sig !== 'string' || (s.keyid !== undefined && typeof s.keyid !== 'string'))
      throw new EvidenceFormatError('DSSE envelope has a malformed signature entry');
  }
  return env as SerializedEnvelope;
}

const SIG_KEY = Buffer.from('"sig"');

/** Occurrences of `needle` in `bytes`, counting no further than `stop`. */
function countOf(bytes: Buffer, needle: Buffer, stop: number): number {
  let n = 0;
  for (let i = bytes.indexOf(needle); i !== -1 && n < stop; i = bytes.indexOf(needle, i + needle.length)) n++;
  return n;
}

/**
 * parseEnvelope's shortcut on an envelope as it arrives: counts its signature keys (`"sig"`, as
 * countOf does, across piece boundaries) and says when there are more than `maxSignatures`, so a
 * bomb is refused after its first few KiB instead of being fetched and hashed whole (up to
 * limits.evidence.bytes per decision: the most of what judging one cost).
 */
export class SignatureKeyCount {
  readonly #max: number;
  #count = 0;
  /** The last bytes seen that are not part of a counted key (fewer than the key's length). */
  #tail: Buffer = Buffer.alloc(0);

  constructor(maxSignatures: number) {
    this.#max = maxSignatures;
  }

  /** Counts the keys in the next piece; true once the envelope has more than the limit. */
  over(piece: Buffer): boolean {
    let from = 0;
    let matched = false;
    if (this.#tail.length > 0) {
      // A key that starts in the tail ends in this piece (the tail is shorter than a key).
      const window = Buffer.concat([this.#tail, piece.subarray(0, SIG_KEY.length - 1)]);
      const i = window.indexOf(SIG_KEY);
      if (i !== -1 && i < this.#tail.length) {
        this.#count++;
        from = i + SIG_KEY.length - this.#tail.length;
        matched = true;
      }
    }
    let end = from;
    for (let i = piece.indexOf(SIG_KEY, from); i !== -1; i = piece.indexOf(SIG_KEY, end)) {
      this.#count++;
      end = i + SIG_KEY.length;
      matched = true;
      if (this.#count > this.#max) return true;
    }
    // The next piece's window covers every key that could start in the last bytes kept; a piece at
    // least that long holds them all (the older tail was covered by this piece's window).
    const keep = SIG_KEY.length - 1;
    const rest = matched || piece.length >= keep ? piece.subarray(end) : Buffer.concat([this.#tail, piece]);
    this.#tail = Buffer.from(rest.subarray(Math.max(0, rest.length - keep)));
    return this.#count > this.#max;
  }
}

function toBundle(content: Record<string, unknown>, annotations: Record<string, string>): Bundle {
  const certificate = annotations[Annotation.certificate];
  const rekorBundle = annotations[Annotation.rekorBundle];
  const timestamp = annotations[Annotation.timestamp];
  const verificationMaterial = {
    ...(certificate
      ? { x509CertificateChain: { certificates: certificateChain(certificate, annotations[Annotation.chain]) } }
      : // The key is whichever attestor key verifies; the hint is only a placeholder the key finder ignores.
        { publicKey: { hint: '' } }),
    tlogEntries: rekorBundle ? [tlogEntry(rekorBundle)] : [],
    ...(timestamp ? { timestampVerificationData: { rfc3161Timestamps: [rfc3161Timestamp(timestamp)] } } : {}),
  };
  try {
    return bundleFromJSON({ mediaType: BUNDLE_V01, verificationMaterial, ...content });
  } catch (err) {
    const fields = (err as { fields?: string[] }).fields;
    throw new EvidenceFormatError(
      `cannot be read as a Sigstore bundle: ${(err as Error).message}${fields ? ` (${fields.join(', ')})` : ''}`,
    );
  }
}

/**
 * The signer is the one certificate of the certificate annotation, parsed on its own: a chain
 * annotation only adds intermediates (untrusted, to build a path to a trusted CA), never the
 * signer, as in cosign and containers/image.
 */
function certificateChain(certificate: string, chain: string | undefined): { rawBytes: string }[] {
  const leaf = pemCertificates(certificate, Annotation.certificate);
  if (leaf.length !== 1)
    throw new EvidenceFormatError(
      `${Annotation.certificate} holds ${leaf.length} PEM certificates; exactly one is expected`,
    );
  const intermediates = chain ? pemCertificates(chain, Annotation.chain) : [];
  if (chain && intermediates.length === 0)
    throw new EvidenceFormatError(`${Annotation.chain} holds no PEM certificate`);
  return [...leaf, ...intermediates].map((rawBytes) => ({ rawBytes }));
}

/** cosign's `dev.sigstore.cosign/rfc3161timestamp` annotation: `{"SignedRFC3161TimestampBytes": base64}`. */
function rfc3161Timestamp(annotation: string): { signedTimestamp: string } {
  let doc: { SignedRFC3161TimestampBytes?: unknown };
  try {
    doc = JSON.parse(annotation) as { SignedRFC3161TimestampBytes?: unknown };
  } catch {
    throw new EvidenceFormatError(`${Annotation.timestamp} is not valid JSON`);
  }
  const bytes = doc?.SignedRFC3161TimestampBytes;
  if (typeof bytes !== 'string' || bytes === '')
    throw new EvidenceFormatError(`${Annotation.timestamp} has no SignedRFC3161TimestampBytes`);
  return { signedTimestamp: cosignBase64(bytes, `${Annotation.timestamp} SignedRFC3161TimestampBytes`) };
}

interface RekorSet {
  SignedEntryTimestamp: string;
  Payload: { body: string; integratedTime: number; logIndex: number; logID: string };
}

/** cosign's `dev.sigstore.cosign/bundle` annotation (Rekor SET) as a bundle tlog entry. */
function tlogEntry(annotation: string): Record<string, unknown> {
  let set: RekorSet;
  try {
    set = JSON.parse(annotation) as RekorSet;
  } catch {
    throw new EvidenceFormatError(`${Annotation.rekorBundle} is not valid JSON`);
  }
  const p = set?.Payload;
  if (
    typeof set?.SignedEntryTimestamp !== 'string' ||
    typeof p?.body !== 'string' ||
    !Number.isSafeInteger(p.integratedTime) ||
    !Number.isSafeInteger(p.logIndex) ||
    typeof p.logID !== 'string' ||
    !/^[0-9a-f]{64}$/.test(p.logID)
  ) {
    throw new EvidenceFormatError(
      `${Annotation.rekorBundle} lacks SignedEntryTimestamp or Payload{body, integratedTime, logIndex, logID}`,
    );
  }
  const canonicalizedBody = cosignBase64(p.body, `${Annotation.rekorBundle} body`);
  const body = Buffer.from(canonicalizedBody, 'base64');
  let kindVersion: { kind: unknown; apiVersion: unknown };
  try {
    kindVersion = JSON.parse(body.toString('utf8')) as { kind: unknown; apiVersion: unknown };
  } catch {
    throw new EvidenceFormatError(`${Annotation.rekorBundle} body is not a Rekor entry`);
  }
  if (typeof kindVersion?.kind !== 'string' || typeof kindVersion.apiVersion !== 'string') {
    throw new EvidenceFormatError(`${Annotation.rekorBundle} body names no kind/apiVersion`);
  }
  return {
    logIndex: String(p.logIndex),
    logId: { keyId: Buffer.from(p.logID, 'hex').toString('base64') },
    kindVersion: { kind: kindVersion.kind, version: kindVersion.apiVersion },
    integratedTime: String(p.integratedTime),
    inclusionPromise: {
      signedEntryTimestamp: cosignBase64(set.SignedEntryTimestamp, `${Annotation.rekorBundle} SignedEntryTimestamp`),
    },
    canonicalizedBody,
  };
}

/** The DER bytes (base64) of every CERTIFICATE block; any other block or a bad body is an error. */
function pemCertificates(text: string, what: string): string[] {
  const blocks = pemBlocks(text);
  if (typeof blocks === 'string') throw new EvidenceFormatError(`${what}: ${blocks}`);
  const other = blocks.find((b) => b.type !== 'CERTIFICATE');
  if (other) throw new EvidenceFormatError(`${what} holds a PEM block of type ${other.type}, not CERTIFICATE`);
  return blocks.map((b) => b.base64);
}

/**
 * Base64 as Go's encoding/base64 StdEncoding decodes it, which cosign and containers/image use:
 * CR and LF anywhere are skipped (cosign stores signatures wrapped at 76 columns), everything
 * else is strict: the standard alphabet, padding to a multiple of 4, nothing after the padding.
 * Returns the unwrapped value.
 */
export function cosignBase64(value: string, what: string): string {
  const unwrapped = value.replace(/[\r\n]/g, '');
  if (!isBase64(unwrapped)) throw new EvidenceFormatError(`${what} is not base64`);
  return unwrapped;
}
