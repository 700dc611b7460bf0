// Loads the real cosign and Sigstore fixtures (../shared/fixtures) into test registries.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { MediaType } from '../../../src/oci/types.ts';
import { digestTag } from '../../../src/verify/discover.ts';
import type { ImageRef } from '../../../src/policy/types.ts';
import { SHARED_FIXTURES } from '../../shared-fixtures.ts';
import { MemorySource } from './memory-source.ts';

/** Tests that read these register through sharedFixtures (test/shared-fixtures.ts). */
export const FIXTURES = pathToFileURL(SHARED_FIXTURES);
export const COSIGN_REAL = new URL('cosign-real/', FIXTURES);
export const PUBLIC_GOOD = new URL('sigstore-public-good/', FIXTURES);

export function fixturePath(relative: string, base: URL = FIXTURES): string {
  return new URL(relative, base).pathname;
}

interface ContainersImageSignature {
  mimeType: string;
  payload: string;
  annotations: Record<string, string>;
}

/** A cosign-real fixture folder served as an image plus its `.sig` artifact. */
export function loadCosignFixture(
  folder: string,
  repository = 'test/app',
  edit: (annotations: Record<string, string>) => Record<string, string> = (a) => a,
): { source: MemorySource; image: ImageRef; payload: Buffer; annotations: Record<string, string> } {
  const source = new MemorySource();
  const manifest = readFileSync(new URL(`${folder}/manifest.json`, COSIGN_REAL));
  const digest = source.putManifest(repository, manifest, 'v1', MediaType.dockerManifest);
  const signature = JSON.parse(
    readFileSync(new URL(`${folder}/signature.json`, COSIGN_REAL), 'utf8'),
  ) as ContainersImageSignature;
  const payload = Buffer.from(signature.payload, 'base64');
  source.putArtifact(
    repository,
    [{ mediaType: signature.mimeType, bytes: payload, annotations: edit({ ...signature.annotations }) }],
    { tag: `${digestTag(digest)}.sig` },
  );
  return {
    source,
    image: { registry: 'registry.test', repository, tag: 'v1', digest },
    payload,
    annotations: signature.annotations,
  };
}
