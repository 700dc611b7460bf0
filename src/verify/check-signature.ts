// Checks one Sigstore bundle's signature against one attestor with @sigstore/verify, offline:
// keys are the attestor's, certificate chains, Rekor entries and SCTs are judged against the
// attestor's trust root, and identities are matched here (anchored), not by sigstore-js.
import type { Bundle } from '@sigstore/bundle';
import { dsse } from '@sigstore/core';
import { toSignedEntity, Verifier, type SignedEntity } from '@sigstore/verify';
import type { CompiledAttestor } from './attestor.ts';
import { verifySignature, type SignatureScheme } from './keys.ts';
import {
  buildPath,
  certificateNames,
  describeSubject,
  MAX_INTERMEDIATES,
  parseCertificate,
  validAt,
  type Certificate,
} from './cert-path.ts';
import type { LoadedTrustRoot } from './trust-root.ts';

export type SignatureCheck = { ok: true; signer: string } | { ok: false; reason: string };

/** A Rekor integrated time further ahead of our clock than this is not believed. */
const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;

export interface SignedBundle {
  bundle: Bundle;
  /** For message signatures: the signed bytes (simple-signing payload or image manifest). */
  artifact?: Buffer;
}

/** The certificate identity a keyless signature verified with, or why it did not. */
export type KeylessResult =
  { ok: true; issuer: string | undefined; subject: string | undefined } | { ok: false; reason: string };

export function isKeyless(bundle: Bundle): boolean {
  return bundle.verificationMaterial.content.$case !== 'publicKey';
}

/** Signature, key and transparency-log checks of a keyed bundle against the attestor's keys. */
export function checkKeyed(signed: SignedBundle, attestor: CompiledAttestor, now: Date): SignatureCheck {
  if (attestor.keys.length === 0) return fail(`signed with a key, but attestor "${attestor.name}" lists no keys`);
  const key = attestor.keys.find((k) => signedEntity(signed, k.schemes).signature.verifySignature(k.key));
  if (!key) return fail(`signature does not verify with any key of attestor "${attestor.name}"`);
  const entity = signedEntity(signed, key.schemes);
  const requireTlog = attestor.requireTlog.keyed;
  if (!requireTlog) return { ok: true, signer: `key ${key.id}` };
  const tlog = checkTlog(entity, `attestor "${attestor.name}"`, now);
  if (tlog) return tlog;
  const verifier = new Verifier(
    { ...attestor.trustRoot.material, publicKey: () => ({ publicKey: key.key, validFor: () => true }) },
    // The key has no validity period, so only the log entry matters, not a timestamp.
    { tlogThreshold: 1, ctlogThreshold: 0, timestampThreshold: 0 },
  );
  try {
    verifier.verify(entity);
  } catch (err) {
    return fail(`key ${key.id} of attestor "${attestor.name}" verifies the signature, but ${describe(err)}`);
  }
  return { ok: true, signer: `key ${key.id}` };
}

/**
 * Certificate chain (at the signing time the log or a TSA vouches for), SCTs, log entries and
 * signature of a keyless bundle. Independent of identities, so the caller can share the result
 * between attestors with the same trust root and tlog requirement. The path to a trusted CA may
 * run through intermediates the signature carries (cosign's chain annotation), as in cosign and
 * containers/image: those are verified here, then handed to sigstore-js with the CA they chain to.
 */
export function checkKeyless(
  signed: SignedBundle,
  trustRoot: LoadedTrustRoot,
  requireTlog: boolean,
  now: Date,
): KeylessResult {
  const entity = signedEntity(signed);
  const tlog = checkTlog(entity, requireTlog ? 'keyless verification' : undefined, now);
  if (tlog) return tlog;
  const certs = bundleCertificates(signed.bundle);
  if ('reason' in certs) return fail(certs.reason);
  const against = `trust root ${trustRoot.description}`;
  let reason = `${against} lists no certificate authority`;
  for (const [i, ca] of trustRoot.material.certificateAuthorities.entries()) {
    const path = buildPath(certs.leaf, certs.intermediates, trustRoot.caCertificates[i] ?? []);
    if (!path.ok) {
      reason = `certificate chain: ${path.reason} in ${against}`;
      continue;
    }
    if (trustRoot.material.ctlogs.length === 0) {
      // A trust root without CT logs (a private Sigstore, or bare Fulcio files) cannot check the
      // SCTs a certificate embeds, which sigstore-js would refuse: the admin vouches for the CA
      // alone, as containers/image does. The path is ours; sigstore-js proves times, log, signature.
      const proven = provenTimes(entity, certs.leaf, trustRoot, {
        tlogThreshold: requireTlog ? 1 : 0,
        timestampThreshold: 1,
      });
      if (!proven.ok) {
        reason = `keyless verification against ${against} failed: ${proven.reason}`;
        continue;
      }
      const outside = proven.times.find((t) => t < ca.validFor.start || t > ca.validFor.end);
      const invalid = outside
        ? `the CA is trusted from ${ca.validFor.start.toISOString()} to ${ca.validFor.end.toISOString()}, not at ${outside.toISOString()}`
        : proven.times.map((t) => validAt(path.path, t)).find((r) => r !== undefined);
      if (invalid) {
        reason = `keyless verification against ${against} failed: ${invalid}`;
        continue;
      }
      return { ok: true, ...fulcioIdentity(certs.leaf) };
    }
    const carried = path.path.slice(1).filter((c) => !ca.certChain.some((t) => t.root.toDER().equals(c.der)));
    const withCarried = { ...ca, certChain: [...carried.map((c) => c.asn1), ...ca.certChain] };
    const verifier = new Verifier(
      { ...trustRoot.material, certificateAuthorities: [withCarried] },
      {
        tlogThreshold: requireTlog ? 1 : 0,
        // The trust root lists CT logs: an SCT from one of them is required.
        ctlogThreshold: 1,
        // Certificates live minutes: a log or TSA timestamp must show the signature was made in that window.
        timestampThreshold: 1,
      },
    );
    try {
      const signer = verifier.verify(entity);
      return {
        ok: true,
        issuer: signer.identity?.extensions?.issuer,
        subject: signer.identity?.subjectAlternativeName,
      };
    } catch (err) {
      // Another CA of the root (another validity window) may still vouch for it.
      reason = `keyless verification against ${against} failed: ${describe(err)}`;
    }
  }
  return fail(reason);
}

/**
 * A certificate of the attestor's own CAs: a path to one of them, log entries and timestamps
 * against the attestor's trust root, the path valid at every time they prove (else at `now`,
 * the time of the decision), and a signer the attestor names.
 */
export function checkPki(signed: SignedBundle, attestor: CompiledAttestor, now: Date): SignatureCheck {
  const pki = attestor.pki;
  if (!pki) return fail(`attestor "${attestor.name}" has no pki section`);
  const requireTlog = attestor.requireTlog.keyless;
  const trustRoot = attestor.trustRoot;
  let entity = signedEntity(signed);
  const tlog = checkTlog(entity, requireTlog ? `attestor "${attestor.name}" (requireTlog)` : undefined, now);
  if (tlog) return tlog;
  const certs = bundleCertificates(signed.bundle);
  if ('reason' in certs) return fail(certs.reason);
  const path = buildPath(certs.leaf, [...certs.intermediates, ...pki.intermediates], pki.anchors);
  if (!path.ok) return fail(`certificate chain: ${path.reason} of attestor "${attestor.name}"`);
  // Log entries nothing can check (no log in the trust root) prove nothing when none is required.
  if (!requireTlog && trustRoot.material.tlogs.length === 0 && entity.tlogEntries.length > 0) {
    entity = {
      ...entity,
      tlogEntries: [],
      timestamps: entity.timestamps.filter((t) => t.$case !== 'transparency-log'),
    };
  }
  const proven = provenTimes(entity, certs.leaf, trustRoot, {
    tlogThreshold: requireTlog ? 1 : 0,
    timestampThreshold: 0,
  });
  if (!proven.ok)
    return fail(
      `certificate of attestor "${attestor.name}" against trust root ${trustRoot.description}: ${proven.reason}`,
    );
  const times = proven.times;
  const at = times.length > 0 ? times : [now];
  for (const time of at) {
    const invalid = validAt(path.path, time);
    if (invalid)
      return fail(
        `${invalid} (${times.length > 0 ? 'the signing time a log or timestamp proves' : 'the time of the decision: no log entry or timestamp proves when it was signed'})`,
      );
  }
  if (!pki.signers.some((m) => m.matches(certs.leaf))) {
    const names = certificateNames(certs.leaf);
    const held = [
      ...names.emails.map((v) => `email ${v}`),
      ...names.uris.map((v) => `uri ${v}`),
      ...names.dnsNames.map((v) => `dnsName ${v}`),
      ...names.commonNames.map((v) => `commonName ${v}`),
    ];
    return fail(`certificate (${held.join(', ') || 'no names'}) matches no signer of attestor "${attestor.name}"`);
  }
  const anchor = path.path[path.path.length - 1] as Certificate;
  return { ok: true, signer: `certificate ${describeSubject(certs.leaf)} issued under ${describeSubject(anchor)}` };
}

/**
 * Timestamps (TSA, and log entries with an inclusion promise), log entries and the signature,
 * checked by sigstore-js with the certificate's key alone: the certificate path is judged by the
 * caller at the times returned here (the times sigstore-js proved, reported through validFor).
 */
function provenTimes(
  entity: SignedEntity,
  leaf: Certificate,
  trustRoot: LoadedTrustRoot,
  thresholds: { tlogThreshold: number; timestampThreshold: number },
): { ok: true; times: Date[] } | { ok: false; reason: string } {
  const times: Date[] = [];
  const publicKey = leaf.node.publicKey;
  const verifier = new Verifier(
    {
      ...trustRoot.material,
      publicKey: () => ({
        publicKey,
        validFor: (date: Date) => {
          times.push(date);
          return true;
        },
      }),
    },
    { ...thresholds, ctlogThreshold: 0 },
  );
  try {
    verifier.verify({ ...entity, key: { $case: 'public-key', hint: '' } });
  } catch (err) {
    return fail(describe(err));
  }
  return { ok: true, times };
}

const OID_FULCIO_ISSUER_V1 = '1.3.6.1.4.1.57264.1.1';
const OID_FULCIO_ISSUER_V2 = '1.3.6.1.4.1.57264.1.8';

/** The OIDC issuer (Fulcio's extensions, v2 preferred) and the SAN sigstore-js reports as subject. */
function fulcioIdentity(leaf: Certificate): { issuer: string | undefined; subject: string | undefined } {
  const v2 = leaf.asn1.extension(OID_FULCIO_ISSUER_V2);
  let issuer: string | undefined;
  try {
    issuer = v2
      ? v2.valueObj.subs[0]?.value.toString('utf8')
      : leaf.asn1.extension(OID_FULCIO_ISSUER_V1)?.value.toString('ascii');
  } catch {
    issuer = undefined;
  }
  return { issuer, subject: leaf.asn1.subjectAltName };
}

/** The signer certificate and the intermediates a bundle carries with it. */
function bundleCertificates(bundle: Bundle): { leaf: Certificate; intermediates: Certificate[] } | { reason: string } {
  const content = bundle.verificationMaterial.content;
  const raw =
    content.$case === 'x509CertificateChain'
      ? content.x509CertificateChain.certificates.map((c) => Buffer.from(c.rawBytes))
      : content.$case === 'certificate'
        ? [Buffer.from(content.certificate.rawBytes)]
        : [];
  if (raw.length === 0) return { reason: 'the bundle holds no certificate' };
  if (raw.length > MAX_INTERMEDIATES + 1)
    return {
      reason: `the bundle carries ${raw.length - 1} intermediate certificates, more than the ${MAX_INTERMEDIATES} examined`,
    };
  try {
    const [leaf, ...intermediates] = raw.map(parseCertificate) as [Certificate, ...Certificate[]];
    return { leaf, intermediates };
  } catch (err) {
    return { reason: `the bundle's certificate chain: ${(err as Error).message}` };
  }
}

export function matchIdentity(
  result: Extract<KeylessResult, { ok: true }>,
  attestor: CompiledAttestor,
): SignatureCheck {
  const { issuer, subject } = result;
  if (!attestor.identities.some((m) => m.matches(issuer, subject))) {
    return fail(
      `certificate identity (issuer ${issuer ?? 'none'}, subject ${subject ?? 'none'}) matches no identity of attestor "${attestor.name}"`,
    );
  }
  return { ok: true, signer: `${issuer} ${subject}` };
}

/** `requiredBy` names who demands a log entry; undefined when none is required. */
function checkTlog(
  entity: SignedEntity,
  requiredBy: string | undefined,
  now: Date,
): { ok: false; reason: string } | undefined {
  if (requiredBy && entity.tlogEntries.length === 0)
    return fail(`no transparency-log entry, but ${requiredBy} requires one`);
  for (const entry of entity.tlogEntries) {
    const integrated = Number(entry.integratedTime) * 1000;
    if (integrated > now.getTime() + MAX_CLOCK_SKEW_MS) {
      return fail(
        `transparency-log entry ${entry.logIndex} claims integration at ${new Date(integrated).toISOString()}, in the future`,
      );
    }
  }
  return undefined;
}

/**
 * The DSSE pre-authentication encoding of a payload, kept while the payload lives: the bundles of
 * one envelope share its payload (cosign-layer.ts), and an entity is made per signature and per key
 * tried, so a 600 KB payload was copied for every one (16 signatures × keys, per envelope).
 */
const PAE = new WeakMap<Buffer, { payloadType: string; bytes: Buffer }>();

function preAuthEncoding(payloadType: string, payload: Buffer): Buffer {
  const known = PAE.get(payload);
  if (known?.payloadType === payloadType) return known.bytes;
  const bytes = dsse.preAuthEncoding(payloadType, payload);
  PAE.set(payload, { payloadType, bytes });
  return bytes;
}

/**
 * sigstore-js's entity, with the signature check replaced by ours: it hashes message signatures
 * with the digest algorithm only (breaking Ed25519 and P-384 keys) and DSSE with the key default.
 */
function signedEntity({ bundle, artifact }: SignedBundle, schemes?: readonly SignatureScheme[]): SignedEntity {
  const entity = toSignedEntity(bundle, artifact);
  const original = entity.signature;
  const signedBytes =
    bundle.content.$case === 'dsseEnvelope'
      ? preAuthEncoding(bundle.content.dsseEnvelope.payloadType, bundle.content.dsseEnvelope.payload)
      : artifact;
  if (!signedBytes) throw new Error('a message-signature bundle needs the signed artifact');
  const signature = original.signature;
  return {
    ...entity,
    signature: {
      signature,
      compareSignature: (s) => original.compareSignature(s),
      compareDigest: (d) => original.compareDigest(d),
      compareSignedDigest: (d) => original.compareSignedDigest(d),
      verifySignature: (key) => verifySignature(key, signedBytes, signature, schemes),
    },
  };
}

function describe(err: unknown): string {
  const e = err as { code?: string; message?: string; cause?: { message?: string } };
  const cause = e.cause?.message ? ` (${e.cause.message})` : '';
  return `${e.message ?? String(err)}${cause}`;
}

function fail(reason: string): { ok: false; reason: string } {
  return { ok: false, reason };
}
