// Serves a real cosign-signed image from ../shared/fixtures/cosign-real through a real registry.
// The fixture has the manifest and its signature but not the image's layers, so the registry API
// would refuse the manifest: it is written into the registry's filesystem storage (the layout of
// distribution's filesystem driver), and the signature is pushed as cosign's `.sig` artifact.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { putManifest, uploadBlob } from '../harness/index.ts';

function put(file: string, content: Buffer | string): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, content);
}

/** Loads FIXTURE_DIR (manifest.json + signature.json) as repo:tag; returns the manifest digest. */
export async function loadCosignFixture(
  registry: { url: string; dataDir: string },
  repo: string,
  tag: string,
  fixtureDir: string,
): Promise<string> {
  const manifest = readFileSync(join(fixtureDir, 'manifest.json'));
  const hex = createHash('sha256').update(manifest).digest('hex');
  const v2 = join(registry.dataDir, 'docker/registry/v2');
  put(join(v2, 'blobs/sha256', hex.slice(0, 2), hex, 'data'), manifest);
  const links = join(v2, 'repositories', repo, '_manifests');
  put(join(links, 'revisions/sha256', hex, 'link'), `sha256:${hex}`);
  put(join(links, 'tags', tag, 'current/link'), `sha256:${hex}`);
  put(join(links, 'tags', tag, 'index/sha256', hex, 'link'), `sha256:${hex}`);

  const signature = JSON.parse(readFileSync(join(fixtureDir, 'signature.json'), 'utf8')) as {
    mimeType: string;
    payload: string;
    annotations: Record<string, string>;
  };
  const payload = Buffer.from(signature.payload, 'base64');
  const config = Buffer.from(
    JSON.stringify({ architecture: '', os: '', config: {}, rootfs: { type: 'layers', diff_ids: [] } }),
  );
  const sigManifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: await uploadBlob(registry, repo, config),
      size: config.length,
    },
    layers: [
      {
        mediaType: signature.mimeType,
        digest: await uploadBlob(registry, repo, payload),
        size: payload.length,
        annotations: signature.annotations,
      },
    ],
  };
  await putManifest(
    registry,
    repo,
    `sha256-${hex}.sig`,
    Buffer.from(JSON.stringify(sigManifest)),
    sigManifest.mediaType,
  );
  return `sha256:${hex}`;
}
