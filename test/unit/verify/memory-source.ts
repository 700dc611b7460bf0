// An in-memory registry for verification tests: manifests by tag and digest, blobs by digest,
// referrers computed from manifest subjects, and injectable failures.
import { createHash } from 'node:crypto';
import { RegistryError } from '../../../src/oci/errors.ts';
import {
  MediaType,
  type Descriptor,
  type FetchedManifest,
  type ImageIndex,
  type ImageManifest,
} from '../../../src/oci/types.ts';
import type { EvidenceSource } from '../../../src/verify/source.ts';

export function sha256(bytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export interface LayerInput {
  mediaType: string;
  bytes: Buffer;
  annotations?: Record<string, string>;
}

export class MemorySource implements EvidenceSource {
  readonly manifests = new Map<string, FetchedManifest>();
  readonly blobs = new Map<string, Buffer>();
  /** Errors to throw for a manifest reference or blob digest, instead of answering. */
  readonly failures = new Map<string, Error>();
  readonly calls: string[] = [];
  /** Bytes of blobs shown to a `stop` callback: what a fetch that stops early has read. */
  shown = 0;
  /** The registry this source stands for, and the other "allowlisted" registries by canonical name. */
  readonly registry: string;
  readonly others = new Map<string, MemorySource>();
  /** Registries asked for through forRegistry, allowlisted or not. */
  readonly asked: string[] = [];

  constructor(registry = 'registry.test') {
    this.registry = registry;
  }

  /** Another registry reachable through forRegistry (as if allowlisted), sharing the call log. */
  addRegistry(registry: string): MemorySource {
    const other = new MemorySource(registry);
    other.others.set(this.registry, this);
    for (const [name, source] of this.others) other.others.set(name, source);
    for (const source of this.others.values()) source.others.set(registry, other);
    this.others.set(registry, other);
    return other;
  }

  forRegistry(registry: string): { registry: string; source: MemorySource } | undefined {
    this.asked.push(registry);
    if (registry === this.registry) return { registry, source: this };
    const other = this.others.get(registry);
    return other ? { registry, source: other } : undefined;
  }

  /** Stores a manifest under its digest (and a tag, if given); returns its digest. */
  putManifest(
    repository: string,
    manifest: object | Buffer,
    tag?: string,
    mediaType: string = MediaType.ociManifest,
  ): string {
    const bytes = Buffer.isBuffer(manifest) ? manifest : Buffer.from(JSON.stringify(manifest));
    const digest = sha256(bytes);
    const fetched = { bytes, mediaType, digest };
    this.manifests.set(`${repository}@${digest}`, fetched);
    if (tag) this.manifests.set(`${repository}:${tag}`, fetched);
    return digest;
  }

  putBlob(bytes: Buffer): Descriptor {
    const digest = sha256(bytes);
    this.blobs.set(digest, bytes);
    return { mediaType: 'application/octet-stream', digest, size: bytes.length };
  }

  /** An artifact manifest (empty config) holding the given layers; returns its digest. */
  putArtifact(
    repository: string,
    layers: LayerInput[],
    opts: { tag?: string; subject?: string; artifactType?: string } = {},
  ): string {
    const config = this.putBlob(Buffer.from('{}'));
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      ...(opts.artifactType ? { artifactType: opts.artifactType } : {}),
      config: {
        ...config,
        mediaType: opts.artifactType ? MediaType.ociEmpty : 'application/vnd.oci.image.config.v1+json',
      },
      layers: layers.map((l) => ({
        ...this.putBlob(l.bytes),
        mediaType: l.mediaType,
        ...(l.annotations ? { annotations: l.annotations } : {}),
      })),
      ...(opts.subject ? { subject: this.descriptorOf(repository, opts.subject) } : {}),
    };
    return this.putManifest(repository, manifest, opts.tag);
  }

  descriptorOf(repository: string, digest: string): Descriptor {
    const m = this.manifests.get(`${repository}@${digest}`);
    if (!m) throw new Error(`no manifest ${digest} in ${repository}`);
    return { mediaType: m.mediaType, digest, size: m.bytes.length };
  }

  async manifest(repository: string, reference: string): Promise<FetchedManifest | undefined> {
    const key = reference.includes(':') ? `${repository}@${reference}` : `${repository}:${reference}`;
    this.calls.push(`manifest ${key}`);
    const failure = this.failures.get(reference);
    if (failure) throw failure;
    return this.manifests.get(key);
  }

  async blob(
    repository: string,
    digest: string,
    maxBytes: number,
    stop?: (piece: Buffer) => boolean,
  ): Promise<Buffer | undefined> {
    this.calls.push(`blob ${repository}@${digest}`);
    const failure = this.failures.get(digest);
    if (failure) throw failure;
    const bytes = this.blobs.get(digest);
    if (!bytes) throw new RegistryError('not-found', 'BLOB_UNKNOWN', `blob ${digest} unknown`);
    if (bytes.length > maxBytes)
      throw new RegistryError('upstream', 'SIZE_INVALID', `blob ${digest} is larger than ${maxBytes} bytes`);
    // Shown in pieces as a network body arrives, so that a stop is exercised across their boundaries.
    for (let off = 0; stop && off < bytes.length; off += 1000) {
      const piece = bytes.subarray(off, off + 1000);
      this.shown += piece.length;
      if (stop(piece)) return undefined;
    }
    return bytes;
  }

  async referrers(repository: string, digest: string): Promise<ImageIndex> {
    this.calls.push(`referrers ${repository}@${digest}`);
    const failure = this.failures.get(`referrers:${digest}`);
    if (failure) throw failure;
    const manifests: Descriptor[] = [];
    for (const [key, m] of this.manifests) {
      if (!key.startsWith(`${repository}@`)) continue;
      const doc = parseJson(m.bytes) as ImageManifest | undefined;
      if (doc?.subject?.digest === digest) {
        manifests.push({
          mediaType: m.mediaType,
          digest: m.digest,
          size: m.bytes.length,
          ...(doc.artifactType ? { artifactType: doc.artifactType } : {}),
        });
      }
    }
    return { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests };
  }
}

function parseJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
}
