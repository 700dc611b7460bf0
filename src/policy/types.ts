// The policy document as an admin writes it (YAML), and the facts and verdicts evaluation works on.
// docs/policy.md is the reference for every field; src/policy/schema.json mirrors these types.

import type { NotationAttestorSpec } from '../verify/notation/attestor.ts';

export type EvaluationMode = 'alwaysAllow' | 'alwaysDeny' | 'requireAttestation';
export type EnforcementMode = 'enforce' | 'dryrun';
export type TagMode = 'pin' | 'deny' | 'follow';

/** A public key given inline (PEM) or by file path (relative to the policy file). */
export interface KeySpec {
  pem?: string;
  file?: string;
  /**
   * RSA keys only: the one scheme signatures are accepted with (default rsa-pkcs1v15-sha256, or
   * rsa-pss with the key's hash for an id-RSASSA-PSS key), e.g. for GCP KMS's RSA_SIGN_PSS_* keys.
   */
  signatureAlgorithm?: string;
}

/** A keyless signer: OIDC issuer and certificate subject, each exact or an (anchored) regular expression. */
export interface IdentitySpec {
  issuer?: string;
  issuerRegExp?: string;
  subject?: string;
  subjectRegExp?: string;
}

/** A PEM document (one or more certificates, or a public key) given inline or by file path. */
export interface PemSpec {
  pem?: string;
  file?: string;
}

/**
 * Exactly one of `builtin`, `file`, or the parts of a trust root given directly (at least
 * `rekorKeys` or `fulcioCertificates`), which pullgate assembles into a trusted root itself.
 */
export interface TrustRootSpec {
  /** `sigstore-public-good`: the trusted root shipped with sigstore-js (no network at run time). */
  builtin?: 'sigstore-public-good';
  /** A `trusted_root.json` (Sigstore TrustedRoot, protobuf-specs JSON form). */
  file?: string;
  /** Rekor public keys (cosign's `rekor.pub`, SIGSTORE_REKOR_PUBLIC_KEY). */
  rekorKeys?: PemSpec[];
  /** Fulcio CA certificates, one CA per entry: root, or intermediates followed by their root. */
  fulcioCertificates?: PemSpec[];
  /** Certificate Transparency log keys (ctfe.pub); with none, no SCT is required. */
  ctlogKeys?: PemSpec[];
}

/** A signer of a private CA: every field given must match (exact, or an anchored regular expression). */
export interface PkiSignerSpec {
  /** An rfc822Name (e-mail) subject alternative name. */
  email?: string;
  emailRegExp?: string;
  /** A URI subject alternative name (SPIFFE IDs and the like). */
  uri?: string;
  uriRegExp?: string;
  /** A dNSName subject alternative name. */
  dnsName?: string;
  dnsNameRegExp?: string;
  /** The subject's common name. */
  commonName?: string;
  commonNameRegExp?: string;
}

/** Signatures whose certificate chains to CA certificates of the admin's own (no Fulcio, no OIDC issuer). */
export interface PkiSpec {
  /** Trust anchors: CA certificates (PEM; a file may hold several). */
  caCertificates: PemSpec[];
  /** Intermediates to build paths with, besides those a signature carries (untrusted until a path reaches an anchor). */
  intermediateCertificates?: PemSpec[];
  signers: PkiSignerSpec[];
}

export interface AttestorSpec {
  description?: string;
  keys?: KeySpec[];
  identities?: IdentitySpec[];
  pki?: PkiSpec;
  /** Name of an entry in `trustRoots`; default `public-good`. Used for keyless and transparency-log checks. */
  trustRoot?: string;
  /**
   * Whether a signature must carry transparency-log evidence (Rekor entry or SET).
   * Default true for keyless identities and PKI certificates, false for keys (keyed CI signing
   * often uses --tlog-upload=false).
   */
  requireTlog?: boolean;
  /** A Notation (Notary Project) attestor instead of a cosign/Sigstore one: trust stores and trust policy. */
  notation?: NotationAttestorSpec;
  /**
   * `registry/repository` where this attestor's signatures and attestations are stored instead
   * of the image's own repository (cosign's COSIGN_REPOSITORY, policy-controller's source.oci,
   * Kyverno's repository). The registry must be allowlisted; it is never contacted otherwise.
   */
  signaturesRepository?: string;
  /** With signaturesRepository: look in the image's own repository too. Default false. */
  alsoImageRepository?: boolean;
}

/** One condition on a predicate field; `path` is a dot path into the predicate (array indexes as numbers). */
export interface ConditionSpec {
  path: string;
  equals?: string | number | boolean;
  oneOf?: (string | number | boolean)[];
  matches?: string;
  lessThan?: number;
  lessThanOrEqual?: number;
  greaterThan?: number;
  greaterThanOrEqual?: number;
  /** The field holds an RFC 3339 time that must be no older than this duration (e.g. `7d`, `12h`, `30m`). */
  maxAge?: string;
}

export interface AttestationRequirement {
  attestor: string;
  predicateType: string;
  conditions?: ConditionSpec[];
}

/** `[a, b]` means all of them; `{anyOf: [...], min: N}` means at least N of the list. */
export type AttestorRequirement = string[] | { anyOf: string[]; min: number };

export interface RuleSpec {
  evaluationMode: EvaluationMode;
  enforcementMode?: EnforcementMode;
  requireAttestors?: AttestorRequirement;
  attestations?: AttestationRequirement[];
  tagMode?: TagMode;
}

export interface ImageRuleSpec extends RuleSpec {
  /** Glob on `registry/repository[:tag]`: `*` within one path segment, `**` across segments, `?` one character. */
  match: string;
}

export interface PolicyDocument {
  apiVersion: 'pullgate.dev/v1';
  kind: 'Policy';
  trustRoots?: Record<string, TrustRootSpec>;
  attestors?: Record<string, AttestorSpec>;
  /** Image patterns (same glob as rules) admitted without any evidence. */
  allowlist?: string[];
  defaultRule: RuleSpec;
  rules?: ImageRuleSpec[];
}

// ---- Facts and verdicts ---------------------------------------------------------------

/** The image a decision is about; `digest` is always the digest of the bytes being served. */
export interface ImageRef {
  registry: string;
  repository: string;
  tag?: string;
  digest: string;
}

/** One piece of evidence that verified for one attestor over this exact digest. */
export interface VerifiedEvidence {
  attestor: string;
  /** `signature`: a signature over the image (simple signing, message signature or cosign/sign/v1 statement). */
  kind: 'signature' | 'attestation';
  predicateType?: string;
  predicate?: unknown;
  /** Where it was found, for reasons and logs (e.g. `tag sha256-ab….sig layer 0`). */
  source: string;
  signer: string;
}

/** What verification learned about one attestor: what verified, and why the rest did not. */
export interface AttestorFacts {
  attestor: string;
  verified: VerifiedEvidence[];
  /** Human-readable reasons each non-verifying piece of evidence was rejected. */
  rejected: string[];
  /** How many pieces of evidence were examined for this attestor. */
  examined: number;
}

export type VerdictKind = 'allow' | 'deny';

export interface Verdict {
  /** What the proxy does: `allow` also for a dry-run rule that would deny. */
  verdict: VerdictKind;
  /** The policy's own judgement, before dry-run is applied. */
  judgement: VerdictKind;
  enforcementMode: EnforcementMode;
  /** `allowlist:<pattern>`, `rule:<match>` or `default`. */
  rule: string;
  /** sha256 over the canonical JSON of the matched rule and the attestors it references. */
  ruleHash: string;
  tagMode: TagMode;
  reasons: string[];
}
