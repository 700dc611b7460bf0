// Signs images the way cosign does (simple-signing `.sig` layers, DSSE `.att` layers) and as
// Sigstore bundles for OCI 1.1 referrers, with either a plain key or a certificate issued by a
// test SigstoreInstance, optionally entered in its log.
import { createHash, sign, type KeyObject } from 'node:crypto';
import type { Leaf, SigstoreInstance } from './instance.ts';

export type Signer =
  | { kind: 'key'; privateKey: KeyObject; publicKeyPem: string }
  | { kind: 'certificate'; leaf: Leaf; instance: SigstoreInstance }
  /** A certificate of a private CA (`cosign sign --certificate --certificate-chain`). */
  | { kind: 'pki'; privateKey: KeyObject; certificatePem: string; chainPem?: string };

export interface SignOptions {
  /** Enter the signature in the instance's log, integrated at this time. */
  tlog?: { instance: SigstoreInstance; at: Date };
}

export interface SignedLayer {
  bytes: Buffer;
  annotations: Record<string, string>;
}

export function simpleSigningPayload(digest: string, reference = 'registry.test/app'): Buffer {
  return Buffer.from(
    JSON.stringify({
      critical: {
        identity: { 'docker-reference': reference },
        image: { 'docker-manifest-digest': digest },
        type: 'cosign container image signature',
      },
      optional: null,
    }),
  );
}

export function inTotoStatement(
  digest: string,
  predicateType: string,
  predicate: unknown,
  type = 'https://in-toto.io/Statement/v1',
): Buffer {
  const [algorithm = 'sha256', hex = ''] = digest.split(':');
  return Buffer.from(
    JSON.stringify({
      _type: type,
      subject: [{ name: 'registry.test/app', digest: { [algorithm]: hex } }],
      predicateType,
      predicate,
    }),
  );
}

export function pae(payloadType: string, payload: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${Buffer.byteLength(payloadType)} ${payloadType} ${payload.length} `),
    payload,
  ]);
}

/** Signs bytes as cosign would with this key type (ECDSA with the curve's hash, RSA PKCS#1 v1.5, Ed25519 pure). */
export function rawSign(privateKey: KeyObject, data: Buffer): Buffer {
  const curve = privateKey.asymmetricKeyDetails?.namedCurve;
  const hash =
    privateKey.asymmetricKeyType === 'ed25519'
      ? null
      : curve === 'secp384r1'
        ? 'sha384'
        : curve === 'secp521r1'
          ? 'sha512'
          : 'sha256';
  return sign(hash, data, privateKey);
}

function signerKey(signer: Signer): KeyObject {
  return signer.kind === 'certificate' ? signer.leaf.keys.privateKey : signer.privateKey;
}

function signerPem(signer: Signer): string {
  return signer.kind === 'key' ? signer.publicKeyPem : signer.kind === 'pki' ? signer.certificatePem : signer.leaf.pem;
}

/** A cosign `.sig` layer: the payload as layer bytes, signature and keyless material in annotations. */
export function signSimpleSigning(payload: Buffer, signer: Signer, opts: SignOptions = {}): SignedLayer {
  const signature = rawSign(signerKey(signer), payload).toString('base64');
  const annotations: Record<string, string> = {
    'dev.cosignproject.cosign/signature': signature,
    ...certificateAnnotations(signer),
  };
  if (opts.tlog) {
    const body = {
      apiVersion: '0.0.1',
      kind: 'hashedrekord',
      spec: {
        data: { hash: { algorithm: 'sha256', value: createHash('sha256').update(payload).digest('hex') } },
        signature: { content: signature, publicKey: { content: Buffer.from(signerPem(signer)).toString('base64') } },
      },
    };
    annotations['dev.sigstore.cosign/bundle'] = rekorAnnotation(opts.tlog.instance, body, opts.tlog.at);
  }
  return { bytes: payload, annotations };
}

export interface SignedEnvelope {
  envelope: { payloadType: string; payload: string; signatures: { keyid: string; sig: string }[] };
  tlogEntry?: ReturnType<SigstoreInstance['logEntry']>;
}

export function signEnvelope(
  statement: Buffer,
  signer: Signer,
  opts: SignOptions = {},
  payloadType = 'application/vnd.in-toto+json',
): SignedEnvelope {
  const sig = rawSign(signerKey(signer), pae(payloadType, statement)).toString('base64');
  const envelope = { payloadType, payload: statement.toString('base64'), signatures: [{ keyid: '', sig }] };
  if (!opts.tlog) return { envelope };
  const body = {
    apiVersion: '0.0.2',
    kind: 'intoto',
    spec: {
      content: {
        envelope: {
          payloadType,
          signatures: [
            { publicKey: Buffer.from(signerPem(signer)).toString('base64'), sig: Buffer.from(sig).toString('base64') },
          ],
        },
        hash: { algorithm: 'sha256', value: createHash('sha256').update(JSON.stringify(envelope)).digest('hex') },
        payloadHash: { algorithm: 'sha256', value: createHash('sha256').update(statement).digest('hex') },
      },
    },
  };
  return { envelope, tlogEntry: opts.tlog.instance.logEntry(body, opts.tlog.at) };
}

/** A cosign `.att` layer: the DSSE envelope as layer bytes. */
export function signAttestationLayer(statement: Buffer, signer: Signer, opts: SignOptions = {}): SignedLayer {
  const { envelope, tlogEntry } = signEnvelope(statement, signer, opts);
  const annotations: Record<string, string> = {
    'dev.cosignproject.cosign/signature': '',
    ...certificateAnnotations(signer),
  };
  if (tlogEntry) annotations['dev.sigstore.cosign/bundle'] = setAnnotation(tlogEntry);
  return { bytes: Buffer.from(JSON.stringify(envelope)), annotations };
}

/** A Sigstore bundle (v0.1: inclusion promise, no proof) holding a DSSE envelope or a message signature. */
export function dsseBundle(statement: Buffer, signer: Signer, opts: SignOptions = {}): Buffer {
  const { envelope, tlogEntry } = signEnvelope(statement, signer, opts);
  return Buffer.from(
    JSON.stringify({
      mediaType: 'application/vnd.dev.sigstore.bundle+json;version=0.1',
      verificationMaterial: verificationMaterial(signer, tlogEntry),
      dsseEnvelope: envelope,
    }),
  );
}

/** A message-signature bundle over `artifact` (for an image: its manifest bytes). */
export function messageBundle(artifact: Buffer, signer: Signer, opts: SignOptions = {}): Buffer {
  const signature = rawSign(signerKey(signer), artifact).toString('base64');
  const digestHex = createHash('sha256').update(artifact).digest('hex');
  const tlogEntry = opts.tlog?.instance.logEntry(
    {
      apiVersion: '0.0.1',
      kind: 'hashedrekord',
      spec: {
        data: { hash: { algorithm: 'sha256', value: digestHex } },
        signature: { content: signature, publicKey: { content: Buffer.from(signerPem(signer)).toString('base64') } },
      },
    },
    opts.tlog.at,
  );
  return Buffer.from(
    JSON.stringify({
      mediaType: 'application/vnd.dev.sigstore.bundle+json;version=0.1',
      verificationMaterial: verificationMaterial(signer, tlogEntry),
      messageSignature: {
        messageDigest: { algorithm: 'SHA2_256', digest: Buffer.from(digestHex, 'hex').toString('base64') },
        signature,
      },
    }),
  );
}

function verificationMaterial(signer: Signer, entry: SignedEnvelope['tlogEntry']): object {
  return {
    ...(signer.kind === 'certificate'
      ? {
          x509CertificateChain: {
            certificates: [{ rawBytes: Buffer.from(signer.leaf.certificate.rawData).toString('base64') }],
          },
        }
      : signer.kind === 'pki'
        ? {
            x509CertificateChain: {
              certificates: [signer.certificatePem, signer.chainPem ?? '']
                .flatMap((p) => [...p.matchAll(/-----BEGIN CERTIFICATE-----([^-]+)-----END CERTIFICATE-----/g)])
                .map((m) => ({ rawBytes: (m[1] ?? '').replace(/\s+/g, '') })),
            },
          }
        : { publicKey: { hint: '' } }),
    tlogEntries: entry
      ? [
          {
            logIndex: String(entry.logIndex),
            logId: { keyId: Buffer.from(entry.logID, 'hex').toString('base64') },
            kindVersion: kindVersionOf(entry.body),
            integratedTime: String(entry.integratedTime),
            inclusionPromise: { signedEntryTimestamp: entry.signedEntryTimestamp },
            canonicalizedBody: entry.body,
          },
        ]
      : [],
  };
}

function kindVersionOf(body: string): { kind: string; version: string } {
  const decoded = JSON.parse(Buffer.from(body, 'base64').toString('utf8')) as { kind: string; apiVersion: string };
  return { kind: decoded.kind, version: decoded.apiVersion };
}

function certificateAnnotations(signer: Signer): Record<string, string> {
  if (signer.kind === 'key') return {};
  if (signer.kind === 'pki')
    return {
      'dev.sigstore.cosign/certificate': signer.certificatePem,
      ...(signer.chainPem ? { 'dev.sigstore.cosign/chain': signer.chainPem } : {}),
    };
  return { 'dev.sigstore.cosign/certificate': signer.leaf.pem, 'dev.sigstore.cosign/chain': signer.instance.rootPem };
}

function rekorAnnotation(instance: SigstoreInstance, body: object, at: Date): string {
  return setAnnotation(instance.logEntry(body, at));
}

function setAnnotation(entry: ReturnType<SigstoreInstance['logEntry']>): string {
  const { signedEntryTimestamp, ...payload } = entry;
  return JSON.stringify({ SignedEntryTimestamp: signedEntryTimestamp, Payload: payload });
}
