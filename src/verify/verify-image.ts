// Verification of one image digest against every attestor of a policy: evidence is discovered
// once, each piece is checked against each attestor, and every rejection is explained.
import { bundleFromJSON, type Bundle } from '@sigstore/bundle';
import { HashAlgorithm } from '@sigstore/protobuf-specs';
import { RegistryError } from '../oci/errors.ts';
import type { AttestorFacts, ImageRef, VerifiedEvidence } from '../policy/types.ts';
import { IMAGE_LOCATION, type CompiledAttestor } from './attestor.ts';
import {
  checkKeyed,
  checkKeyless,
  checkPki,
  isKeyless,
  matchIdentity,
  type KeylessResult,
  type SignatureCheck,
  type SignedBundle,
} from './check-signature.ts';
import { checkSimpleSigningPayload, checkStatement, type ContentCheck } from './content.ts';
import { attestationBundles, EvidenceFormatError, evidenceJson, simpleSigningBundle } from './cosign-layer.ts';
import { DecisionBudget } from './budget.ts';
import { BUNDLE_MEDIA_TYPES, discoverEvidence, type RawEvidence } from './discover.ts';
import type { EvidenceSource } from './source.ts';
import { verifyNotation } from './notation/check.ts';
import type { FetchedManifest } from '../oci/types.ts';

/** One signature to check: a bundle, and what its signed content must say about the image. */
interface Piece {
  source: string;
  signed: SignedBundle;
  content: ContentCheck;
}

type Prepared = Piece | { source: string; reason: string };

export async function verifyImage(
  source: EvidenceSource,
  image: ImageRef,
  attestors: readonly CompiledAttestor[],
  opts: { now?: Date; budget?: DecisionBudget } = {},
): Promise<Map<string, AttestorFacts>> {
  const now = opts.now ?? new Date();
  const budget = opts.budget ?? new DecisionBudget();
  const facts = new Map<string, AttestorFacts>(
    attestors.map((a) => [a.name, { attestor: a.name, verified: [], rejected: [], examined: 0 }]),
  );
  if (attestors.length === 0) return facts;

  const manifest = lazyManifest(source, image);
  for (const place of placesToLook(source, image, attestors)) {
    const rejectHere = (reason: string): void => {
      for (const a of place.attestors) {
        const f = facts.get(a.name) as AttestorFacts;
        f.examined++;
        f.rejected.push(reason);
      }
    };
    if ('reason' in place) {
      rejectHere(place.reason);
      continue;
    }
    if (budget.expired()) {
      rejectHere(`${place.label || image.repository}: not examined, ${budget.timeReason()}`);
      continue;
    }
    const discovery = await discoverEvidence(place.source, place.repository, image.digest, budget);
    const label = (where: string): string => (place.label ? `${place.label} ${where}` : where);
    for (const reason of discovery.skipped) rejectHere(label(reason));
    for (const found of discovery.evidence) {
      const raw = { ...found, source: label(found.source) };
      // Every unit of synchronous work is followed by a chance for other requests to run.
      await budget.pace();
      if (budget.expired()) {
        rejectHere(`${raw.source}: not examined, ${budget.timeReason()}`);
        continue;
      }
      if (raw.format === 'notation') {
        const subject = await manifest();
        for (const attestor of place.attestors) {
          const f = facts.get(attestor.name) as AttestorFacts;
          f.examined++;
          const outcome = judged(() => verifyNotation(raw, subject, image, attestor, now));
          if ('reason' in outcome) f.rejected.push(`${raw.source}: ${outcome.reason}`);
          else f.verified.push(outcome);
        }
        continue;
      }
      for (const prepared of await preparePieces(raw, image.digest, manifest, budget.limits.signaturesPerEnvelope)) {
        if ('reason' in prepared) {
          rejectHere(`${prepared.source}: ${prepared.reason}`);
          continue;
        }
        await budget.pace();
        if (budget.expired()) {
          rejectHere(`${prepared.source}: not examined, ${budget.timeReason()}`);
          continue;
        }
        const keyless = new Map<string, KeylessResult>();
        for (const attestor of place.attestors) {
          const f = facts.get(attestor.name) as AttestorFacts;
          f.examined++;
          const outcome = judged(() => checkPiece(prepared, attestor, keyless, now));
          if ('reason' in outcome) f.rejected.push(`${prepared.source}: ${outcome.reason}`);
          else f.verified.push(outcome);
        }
      }
    }
  }
  return facts;
}

/**
 * One item's verdict, whatever its bytes: a parser or verifier deep in a library may throw on
 * crafted input (a certificate that is not DER, a truncated key), and that rejects this item only.
 * A RegistryError (the manifest could not be re-read) is about the registry and still propagates.
 */
function judged(check: () => VerifiedEvidence | { reason: string }): VerifiedEvidence | { reason: string } {
  try {
    return check();
  } catch (err) {
    if (err instanceof RegistryError) throw err;
    return { reason: `cannot be checked: ${(err as Error).message}` };
  }
}

type Place =
  | { source: EvidenceSource; repository: string; label: string; attestors: CompiledAttestor[] }
  | { reason: string; attestors: CompiledAttestor[] };

/**
 * The repositories to look in, each once, with the attestors that look there. A registry the
 * allowlist does not hold is never contacted: its attestors get a reason naming it and the fix.
 */
function placesToLook(source: EvidenceSource, image: ImageRef, attestors: readonly CompiledAttestor[]): Place[] {
  const places = new Map<string, Place>();
  for (const attestor of attestors) {
    for (const location of attestor.locations) {
      let key: string;
      let make: () => Place;
      if (location === IMAGE_LOCATION) {
        key = `${image.registry}/${image.repository}`;
        make = () => ({ source, repository: image.repository, label: '', attestors: [] });
      } else {
        const named = `${location.registry}/${location.repository}`;
        const resolved = source.forRegistry(location.registry);
        if (!resolved) {
          key = `unreachable ${named}`;
          make = () => ({
            reason: `signaturesRepository ${named}: registry ${location.registry} is not allowlisted, so it is not contacted; add it to upstreams in the configuration, or correct signaturesRepository`,
            attestors: [],
          });
        } else {
          key = `${resolved.registry}/${location.repository}`;
          const own = resolved.registry === image.registry && location.repository === image.repository;
          make = () => ({
            source: resolved.source,
            repository: location.repository,
            label: own ? '' : key,
            attestors: [],
          });
        }
      }
      const place = places.get(key) ?? make();
      places.set(key, place);
      if (!place.attestors.includes(attestor)) place.attestors.push(attestor);
    }
  }
  return [...places.values()];
}

function checkPiece(
  piece: Piece,
  attestor: CompiledAttestor,
  keylessCache: Map<string, KeylessResult>,
  now: Date,
): VerifiedEvidence | { reason: string } {
  let check: SignatureCheck;
  if (attestor.notation) {
    return { reason: `a cosign/Sigstore signature; attestor "${attestor.name}" verifies Notation signatures only` };
  } else if (isKeyless(piece.signed.bundle)) {
    check = checkCertificate(piece, attestor, keylessCache, now);
  } else {
    check = checkKeyed(piece.signed, attestor, now);
  }
  if (!check.ok) return { reason: check.reason };
  if (!piece.content.ok)
    return {
      reason: `signature by ${check.signer} verifies for attestor "${attestor.name}", but ${piece.content.reason}`,
    };
  return {
    attestor: attestor.name,
    kind: piece.content.kind,
    ...(piece.content.predicateType === undefined
      ? {}
      : { predicateType: piece.content.predicateType, predicate: piece.content.predicate }),
    source: piece.source,
    signer: check.signer,
  };
}

/** A certificate signature: against the attestor's PKI, its keyless identities, or both (either suffices). */
function checkCertificate(
  piece: Piece,
  attestor: CompiledAttestor,
  keylessCache: Map<string, KeylessResult>,
  now: Date,
): SignatureCheck {
  if (attestor.identities.length === 0 && !attestor.pki) {
    return {
      ok: false,
      reason: `signed with a certificate (keyless), but attestor "${attestor.name}" lists no identities and no pki`,
    };
  }
  const reasons: string[] = [];
  if (attestor.pki) {
    const pki = checkPki(piece.signed, attestor, now);
    if (pki.ok) return pki;
    reasons.push(pki.reason);
  }
  if (attestor.identities.length > 0) {
    // Chain, SCT and log checks do not depend on the identities: share them between attestors.
    const cacheKey = `${attestor.trustRoot.digest} ${attestor.requireTlog.keyless}`;
    let keyless = keylessCache.get(cacheKey);
    if (!keyless) {
      keyless = checkKeyless(piece.signed, attestor.trustRoot, attestor.requireTlog.keyless, now);
      keylessCache.set(cacheKey, keyless);
    }
    const identity = keyless.ok ? matchIdentity(keyless, attestor) : keyless;
    if (identity.ok) return identity;
    reasons.push(identity.reason);
  }
  return { ok: false, reason: reasons.join('; ') };
}

async function preparePieces(
  raw: RawEvidence,
  digest: string,
  manifest: () => Promise<FetchedManifest>,
  maxSignatures: number,
): Promise<Prepared[]> {
  try {
    switch (raw.format) {
      case 'simple-signing':
        return [
          {
            source: raw.source,
            signed: { bundle: simpleSigningBundle(raw.bytes, raw.annotations), artifact: raw.bytes },
            content: checkSimpleSigningPayload(raw.bytes, digest),
          },
        ];
      case 'dsse': {
        const bundles = attestationBundles(raw.bytes, raw.annotations, maxSignatures);
        // Every signature of an envelope signs the same payload: its statement is read once, not
        // once per signature (16 reads of a 600 KB statement held the event loop 40-60 ms).
        const content = bundles[0] ? dsseContent(bundles[0], digest) : undefined;
        return bundles.map((bundle, i) => ({
          source: bundles.length > 1 ? `${raw.source} signature ${i}` : raw.source,
          signed: { bundle },
          content: content as ContentCheck,
        }));
      }
      case 'bundle':
        return [await bundlePiece(raw, digest, manifest)];
      case 'notation':
        return []; // judged per attestor by verifyNotation
    }
  } catch (err) {
    if (err instanceof EvidenceFormatError) return [{ source: raw.source, reason: err.message }];
    if (err instanceof RegistryError) throw err;
    // A library parser that throws on crafted bytes rejects this item only.
    return [{ source: raw.source, reason: `cannot be read: ${(err as Error).message}` }];
  }
}

async function bundlePiece(
  raw: RawEvidence,
  digest: string,
  manifest: () => Promise<FetchedManifest>,
): Promise<Prepared> {
  const bundle = parseBundle(raw.bytes);
  if (bundle.content.$case === 'dsseEnvelope')
    return { source: raw.source, signed: { bundle }, content: dsseContent(bundle, digest) };
  // A message signature over an image signs its manifest: the bundle's digest must be the served one.
  const { algorithm, digest: signedDigest } = bundle.content.messageSignature.messageDigest;
  if (algorithm !== HashAlgorithm.SHA2_256)
    return {
      source: raw.source,
      reason: `message digest algorithm ${HashAlgorithm[algorithm]} is not supported (SHA2_256 only)`,
    };
  const named = `sha256:${Buffer.from(signedDigest).toString('hex')}`;
  if (named !== digest) return { source: raw.source, reason: `bundle signs ${named}, not the served ${digest}` };
  return {
    source: raw.source,
    signed: { bundle, artifact: (await manifest()).bytes },
    content: { ok: true, kind: 'signature' },
  };
}

function parseBundle(bytes: Buffer): Bundle {
  const json = evidenceJson(bytes, 'Sigstore bundle');
  const mediaType = (json as { mediaType?: unknown } | null)?.mediaType;
  if (typeof mediaType !== 'string' || !BUNDLE_MEDIA_TYPES.includes(mediaType)) {
    throw new EvidenceFormatError(`unsupported Sigstore bundle media type ${JSON.stringify(mediaType)}`);
  }
  try {
    return bundleFromJSON(json);
  } catch (err) {
    const fields = (err as { fields?: string[] }).fields;
    throw new EvidenceFormatError(
      `invalid Sigstore bundle: ${(err as Error).message}${fields ? ` (${fields.join(', ')})` : ''}`,
    );
  }
}

function dsseContent(bundle: Bundle, digest: string): ContentCheck {
  if (bundle.content.$case !== 'dsseEnvelope') throw new Error('dsseContent needs a DSSE bundle');
  const { payloadType, payload } = bundle.content.dsseEnvelope;
  return checkStatement(payloadType, Buffer.from(payload), digest);
}

/** The served manifest, fetched at most once and only if a message signature or a Notation payload needs it. */
function lazyManifest(source: EvidenceSource, image: ImageRef): () => Promise<FetchedManifest> {
  let pending: Promise<FetchedManifest> | undefined;
  return () => {
    pending ??= (async () => {
      const fetched = await source.manifest(image.repository, image.digest);
      if (!fetched || fetched.digest !== image.digest) {
        throw new RegistryError(
          'upstream',
          'MANIFEST_UNKNOWN',
          `cannot re-read ${image.repository}@${image.digest} to check a signature over it; try again`,
        );
      }
      return fetched;
    })();
    return pending;
  };
}
