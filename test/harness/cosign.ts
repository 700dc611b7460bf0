// Writes cosign-format evidence into a registry over its HTTP API, where cosign stores it:
// simple-signing layers under `sha256-<hex>.sig`, DSSE layers under `sha256-<hex>.att` (one layer
// appended per call, as cosign does), and OCI 1.1 referrers with their tag-schema fallback index.
import { createHash, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { request } from 'undici';
import { MediaType, type Descriptor, type ImageIndex, type ImageManifest } from '../../src/oci/types.ts';
import {
  inTotoStatement,
  signAttestationLayer,
  signSimpleSigning,
  simpleSigningPayload,
  type Signer,
  type SignedLayer,
} from './sigstore/sign.ts';

export interface RegistryRef {
  url: string;
}
export type KeyAlgorithm = 'ecdsa-p256' | 'ecdsa-p384' | 'rsa' | 'ed25519';

export function generateKey(alg: KeyAlgorithm): { privateKey: KeyObject; publicPem: string } {
  const { privateKey, publicKey } =
    alg === 'ecdsa-p256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : alg === 'ecdsa-p384'
        ? generateKeyPairSync('ec', { namedCurve: 'P-384' })
        : alg === 'rsa'
          ? generateKeyPairSync('rsa', { modulusLength: 2048 })
          : generateKeyPairSync('ed25519');
  return { privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

function keySigner(privateKey: KeyObject): Signer {
  return {
    kind: 'key',
    privateKey,
    publicKeyPem: createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString(),
  };
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Uploads a blob (monolithic POST + PUT), skipping it when the registry has it; returns its digest. */
export async function uploadBlob(reg: RegistryRef, repo: string, bytes: Buffer): Promise<string> {
  const digest = sha256(bytes);
  const head = await request(`${reg.url}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' });
  await head.body.dump();
  if (head.statusCode === 200) return digest;
  const start = await request(`${reg.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  await start.body.dump();
  if (start.statusCode !== 202) throw new Error(`blob upload to ${repo}: POST answered ${start.statusCode}`);
  const location = new URL(String(start.headers.location), reg.url);
  location.searchParams.set('digest', digest);
  const put = await request(location, {
    method: 'PUT',
    body: bytes,
    headers: { 'content-type': 'application/octet-stream' },
  });
  const text = await put.body.text();
  if (put.statusCode !== 201) throw new Error(`blob upload to ${repo}: PUT answered ${put.statusCode}: ${text}`);
  return digest;
}

export async function putManifest(
  reg: RegistryRef,
  repo: string,
  ref: string,
  bytes: Buffer,
  mediaType: string,
): Promise<string> {
  const res = await request(`${reg.url}/v2/${repo}/manifests/${ref}`, {
    method: 'PUT',
    body: bytes,
    headers: { 'content-type': mediaType },
  });
  const text = await res.body.text();
  if (res.statusCode !== 201) throw new Error(`manifest ${repo}:${ref}: PUT answered ${res.statusCode}: ${text}`);
  return sha256(bytes);
}

async function getJson<T>(reg: RegistryRef, repo: string, ref: string, accept: string): Promise<T | undefined> {
  const res = await request(`${reg.url}/v2/${repo}/manifests/${ref}`, { headers: { accept } });
  if (res.statusCode === 404) {
    await res.body.dump();
    return undefined;
  }
  if (res.statusCode !== 200) throw new Error(`manifest ${repo}:${ref}: GET answered ${res.statusCode}`);
  return (await res.body.json()) as T;
}

/** Appends one evidence layer to the cosign artifact at `sha256-<hex>.<suffix>`, creating it if needed. */
async function appendLayer(
  reg: RegistryRef,
  repo: string,
  imageDigest: string,
  suffix: 'sig' | 'att',
  mediaType: string,
  layer: SignedLayer,
): Promise<string> {
  const tag = `${imageDigest.replace(':', '-')}.${suffix}`;
  const previous = await getJson<ImageManifest>(reg, repo, tag, MediaType.ociManifest);
  const layers: Descriptor[] = [
    ...(previous?.layers ?? []),
    {
      mediaType,
      digest: await uploadBlob(reg, repo, layer.bytes),
      size: layer.bytes.length,
      annotations: layer.annotations,
    },
  ];
  const config = Buffer.from(
    JSON.stringify({
      architecture: '',
      os: '',
      config: {},
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
    }),
  );
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: await uploadBlob(reg, repo, config),
      size: config.length,
    },
    layers,
  };
  return putManifest(reg, repo, tag, Buffer.from(JSON.stringify(manifest)), MediaType.ociManifest);
}

/** A cosign simple-signing signature; `payloadDigest` signs a payload naming another image (forged binding). */
export async function signImage(
  reg: RegistryRef,
  repo: string,
  imageDigest: string,
  privateKey: KeyObject,
  opts: { payloadDigest?: string; identity?: string } = {},
): Promise<string> {
  const payload = simpleSigningPayload(opts.payloadDigest ?? imageDigest, opts.identity ?? repo);
  return appendLayer(
    reg,
    repo,
    imageDigest,
    'sig',
    MediaType.cosignSimpleSigning,
    signSimpleSigning(payload, keySigner(privateKey)),
  );
}

/** A cosign in-toto attestation (DSSE); `subjectDigest` makes the statement name another image. */
export async function attestImage(
  reg: RegistryRef,
  repo: string,
  imageDigest: string,
  privateKey: KeyObject,
  predicateType: string,
  predicate: unknown,
  opts: { subjectDigest?: string } = {},
): Promise<string> {
  const statement = inTotoStatement(opts.subjectDigest ?? imageDigest, predicateType, predicate);
  const layer = signAttestationLayer(statement, keySigner(privateKey));
  return appendLayer(reg, repo, imageDigest, 'att', MediaType.dsseEnvelope, {
    ...layer,
    annotations: { ...layer.annotations, predicateType },
  });
}

/**
 * An OCI 1.1 referrer of `subjectDigest`, plus the referrers tag-schema index `sha256-<hex>`
 * (distribution 2.8, the Debian registry, has no referrers API: clients and the proxy fall back).
 */
export async function pushReferrer(
  reg: RegistryRef,
  repo: string,
  subjectDigest: string,
  art: { artifactType: string; layerMediaType: string; layerBytes: Buffer; annotations?: Record<string, string> },
): Promise<string> {
  const subject = await request(`${reg.url}/v2/${repo}/manifests/${subjectDigest}`, {
    method: 'HEAD',
    headers: { accept: `${MediaType.ociManifest}, ${MediaType.ociIndex}` },
  });
  await subject.body.dump();
  if (subject.statusCode !== 200)
    throw new Error(`referrer subject ${repo}@${subjectDigest}: HEAD answered ${subject.statusCode}`);
  const empty = Buffer.from('{}');
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType: art.artifactType,
    config: { mediaType: MediaType.ociEmpty, digest: await uploadBlob(reg, repo, empty), size: empty.length },
    layers: [
      {
        mediaType: art.layerMediaType,
        digest: await uploadBlob(reg, repo, art.layerBytes),
        size: art.layerBytes.length,
      },
    ],
    subject: {
      mediaType: String(subject.headers['content-type']),
      digest: subjectDigest,
      size: Number(subject.headers['content-length']),
    },
    ...(art.annotations ? { annotations: art.annotations } : {}),
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  const digest = await putManifest(reg, repo, sha256(bytes), bytes, MediaType.ociManifest);
  const fallbackTag = subjectDigest.replace(':', '-');
  const index = (await getJson<ImageIndex>(reg, repo, fallbackTag, MediaType.ociIndex)) ?? {
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests: [],
  };
  index.manifests.push({
    mediaType: MediaType.ociManifest,
    digest,
    size: bytes.length,
    artifactType: art.artifactType,
    ...(art.annotations ? { annotations: art.annotations } : {}),
  });
  await putManifest(reg, repo, fallbackTag, Buffer.from(JSON.stringify(index)), MediaType.ociIndex);
  return digest;
}
