// Test images without a container engine: OCI image layouts written from scratch (buildImage),
// moved between layouts and registries with skopeo (pushImage, skopeoCopy, skopeoInspectDigest).
import { createCipheriv, createHash, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip, gzipSync } from 'node:zlib';
import { MediaType, type Descriptor, type ImageIndex, type ImageManifest, type Platform } from '../../src/oci/types.ts';
import { runChecked } from './process.ts';
import { TAR_END, tarArchive, tarHeader, tarPadding } from './tar.ts';

export interface BuildImageOptions {
  /** "os/arch[/variant]"; one gives an image manifest, several an index over one manifest each. */
  platforms?: string[];
  /** Adds a layer holding this many incompressible bytes (streamed to disk, any size). */
  layerBytes?: number;
  /** Makes the content, hence the digests; the same seed gives the same image. Default: the tag. */
  seed?: string;
}

export interface BuiltImage {
  /** Digest of the top manifest (the index when there are several platforms). */
  digest: string;
  mediaType: string;
  /** The image manifests, one per platform ("os/arch[/variant]"). */
  manifests: { digest: string; platform: string }[];
  /** Config and layer blobs, each manifest's config first, then its layers in order. */
  blobs: string[];
}

export interface Credentials {
  username: string;
  password: string;
}

export interface SkopeoCopyOptions {
  /** Copy every image of an index (--all). */
  all?: boolean;
  /** Fail rather than change a digest (--preserve-digests). */
  preserveDigests?: boolean;
  srcCreds?: Credentials;
  destCreds?: Credentials;
  timeoutMs?: number;
}

const LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
const CONFIG = 'application/vnd.oci.image.config.v1+json';
const REF_NAME = 'org.opencontainers.image.ref.name';
const STREAM_CHUNK = 1 << 20;
const SKOPEO_TIMEOUT_MS = 120_000;

interface Layer {
  descriptor: Descriptor;
  diffId: string;
}

const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest();

export function parsePlatform(platform: string): Platform {
  const [os, architecture, variant, ...rest] = platform.split('/');
  if (!os || !architecture || rest.length > 0) throw new Error(`platform "${platform}" is not os/arch[/variant]`);
  return variant ? { os, architecture, variant } : { os, architecture };
}

async function writeBlob(layout: string, bytes: Buffer, mediaType: string): Promise<Descriptor> {
  const hex = sha256(bytes).toString('hex');
  await writeFile(join(layout, 'blobs', 'sha256', hex), bytes);
  return { mediaType, digest: `sha256:${hex}`, size: bytes.length };
}

async function writeJsonBlob(layout: string, value: object, mediaType: string): Promise<Descriptor> {
  return writeBlob(layout, Buffer.from(JSON.stringify(value)), mediaType);
}

/** The layer every image has: one small file naming the seed and platform. */
async function writeSmallLayer(layout: string, seed: string, platform: string): Promise<Layer> {
  const tar = tarArchive([{ name: 'hello.txt', content: Buffer.from(`${seed} ${platform}\n`) }]);
  return {
    descriptor: await writeBlob(layout, gzipSync(tar), LAYER_GZIP),
    diffId: `sha256:${sha256(tar).toString('hex')}`,
  };
}

/** A pass-through stream that feeds a hash and counts bytes. */
function tap(hash: Hash): Transform & { bytes: number } {
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      t.bytes += chunk.length;
      cb(null, chunk);
    },
  }) as Transform & { bytes: number };
  t.bytes = 0;
  return t;
}

/** tar of one file of `size` pseudo-random bytes: AES-CTR keystream keyed by the seed. */
async function* bigFileTar(size: number, seed: string): AsyncGenerator<Buffer> {
  yield tarHeader('big.bin', size);
  const cipher = createCipheriv('aes-256-ctr', sha256(`big layer ${seed}`), Buffer.alloc(16));
  const zeros = Buffer.alloc(STREAM_CHUNK);
  for (let left = size; left > 0; left -= STREAM_CHUNK)
    yield cipher.update(zeros.subarray(0, Math.min(left, STREAM_CHUNK)));
  yield tarPadding(size);
  yield TAR_END;
}

/**
 * Streams the big layer through hashing and gzip into the layout. Level 0 keeps gzip framing
 * without spending time on data that does not compress anyway.
 */
async function writeBigLayer(layout: string, size: number, seed: string): Promise<Layer> {
  const diffHash = createHash('sha256');
  const blobHash = createHash('sha256');
  const blobTap = tap(blobHash);
  const tmp = join(layout, 'blobs', 'sha256', `.incoming-${process.pid}-${Date.now()}`);
  await pipeline(
    Readable.from(bigFileTar(size, seed)),
    tap(diffHash),
    createGzip({ level: 0 }),
    blobTap,
    createWriteStream(tmp),
  );
  const hex = blobHash.digest('hex');
  await rename(tmp, join(layout, 'blobs', 'sha256', hex));
  return {
    descriptor: { mediaType: LAYER_GZIP, digest: `sha256:${hex}`, size: blobTap.bytes },
    diffId: `sha256:${diffHash.digest('hex')}`,
  };
}

async function writeImageManifest(
  layout: string,
  platform: string,
  layers: Layer[],
): Promise<{ manifest: Descriptor; config: Descriptor }> {
  const p = parsePlatform(platform);
  const config = await writeJsonBlob(
    layout,
    {
      ...p,
      config: { Cmd: ['/hello.txt'] },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    },
    CONFIG,
  );
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config,
    layers: layers.map((l) => l.descriptor),
  };
  return { manifest: { ...(await writeJsonBlob(layout, manifest, MediaType.ociManifest)), platform: p }, config };
}

/** Points `tag` in the layout's index.json at `top`, keeping other tags. */
async function tagInLayout(layout: string, tag: string, top: Descriptor): Promise<void> {
  const indexFile = join(layout, 'index.json');
  const existing = await readFile(indexFile, 'utf8').then(
    (s) => JSON.parse(s) as ImageIndex,
    () => undefined,
  );
  const others = (existing?.manifests ?? []).filter((m) => m.annotations?.[REF_NAME] !== tag);
  const index: ImageIndex = { schemaVersion: 2, manifests: [...others, { ...top, annotations: { [REF_NAME]: tag } }] };
  await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(indexFile, JSON.stringify(index));
}

/** Writes an image into the OCI layout `dir` (created if needed) under `tag`. */
export async function buildImage(dir: string, tag: string, opts: BuildImageOptions = {}): Promise<BuiltImage> {
  const platforms = opts.platforms ?? ['linux/amd64'];
  if (platforms.length === 0) throw new Error('buildImage: platforms must name at least one platform');
  const seed = opts.seed ?? tag;
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  // one big layer shared by all platforms: it is the slow part
  const big = opts.layerBytes ? await writeBigLayer(dir, opts.layerBytes, seed) : undefined;
  const manifests: Descriptor[] = [];
  const blobs: string[] = [];
  for (const platform of platforms) {
    const layers = [await writeSmallLayer(dir, seed, platform), ...(big ? [big] : [])];
    const { manifest, config } = await writeImageManifest(dir, platform, layers);
    manifests.push(manifest);
    for (const d of [config.digest, ...layers.map((l) => l.descriptor.digest)]) if (!blobs.includes(d)) blobs.push(d);
  }
  let top: Descriptor;
  if (manifests.length === 1) {
    const { platform: _, ...descriptor } = manifests[0]!;
    top = descriptor;
  } else {
    const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests };
    top = await writeJsonBlob(dir, index, MediaType.ociIndex);
  }
  await tagInLayout(dir, tag, top);
  return {
    digest: top.digest,
    mediaType: top.mediaType,
    manifests: manifests.map((m, i) => ({ digest: m.digest, platform: platforms[i]! })),
    blobs,
  };
}

const credsArg = (flag: string, c: Credentials | undefined) => (c ? [`${flag}=${c.username}:${c.password}`] : []);

/** Copies between any two skopeo references (docker://, oci:, …); registries over plain HTTP. */
export async function skopeoCopy(src: string, dst: string, opts: SkopeoCopyOptions = {}): Promise<void> {
  await runChecked(
    'skopeo',
    [
      'copy',
      '--quiet',
      '--src-tls-verify=false',
      '--dest-tls-verify=false',
      ...(opts.all ? ['--all'] : []),
      ...(opts.preserveDigests ? ['--preserve-digests'] : []),
      ...credsArg('--src-creds', opts.srcCreds),
      ...credsArg('--dest-creds', opts.destCreds),
      src,
      dst,
    ],
    { timeoutMs: opts.timeoutMs ?? SKOPEO_TIMEOUT_MS },
  );
}

/** Pushes tag `tag` of the layout (all platforms, digests unchanged) to `dest` = host/repo:tag. */
export async function pushImage(
  layoutDir: string,
  tag: string,
  dest: string,
  opts: { creds?: Credentials; timeoutMs?: number } = {},
): Promise<void> {
  await skopeoCopy(`oci:${layoutDir}:${tag}`, `docker://${dest}`, {
    all: true,
    preserveDigests: true,
    ...(opts.creds ? { destCreds: opts.creds } : {}),
    ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
  });
}

/** Digest of the top manifest at a skopeo reference: the sha256 of the exact bytes skopeo gets. */
export async function skopeoInspectDigest(
  ref: string,
  opts: { creds?: Credentials; timeoutMs?: number } = {},
): Promise<string> {
  const raw = await runChecked(
    'skopeo',
    ['inspect', '--raw', '--tls-verify=false', ...credsArg('--creds', opts.creds), ref],
    {
      timeoutMs: opts.timeoutMs ?? SKOPEO_TIMEOUT_MS,
    },
  );
  return `sha256:${sha256(raw).toString('hex')}`;
}
