// A manifest's bytes are parsed once per fetch: the registry client parses them to check the media
// type and hands the document on; admission reads that document, and parses only what the store
// returns (no document).
import test from 'ava';
import { parseManifest } from '../../../src/gate/admission.ts';
import { readManifest } from '../../../src/oci/client.ts';
import { MediaType } from '../../../src/oci/types.ts';

const D = `sha256:${'d'.repeat(64)}`;
const manifest = {
  schemaVersion: 2,
  mediaType: MediaType.ociManifest,
  config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: D, size: 2 },
  layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: D, size: 5 }],
};
const bytes = Buffer.from(JSON.stringify(manifest));

test('the client hands on the document it parsed, and admission uses that very object', (t) => {
  const { mediaType, doc } = readManifest(bytes, MediaType.ociManifest, 'r.test/app:1', 'r.test');
  t.is(mediaType, MediaType.ociManifest);
  t.deepEqual(doc, manifest);
  const parsed = parseManifest({ bytes, mediaType, digest: D, doc });
  t.is(parsed.manifest, doc as never, 'not parsed again: the same object');
});

test('without a document (a stored manifest) admission parses the bytes', (t) => {
  const parsed = parseManifest({ bytes, mediaType: MediaType.ociManifest, digest: D });
  t.deepEqual(parsed.manifest, manifest as never);
});

test('the width limits apply to a handed-on document as to a parsed one', (t) => {
  const wide = { ...manifest, layers: Array(3).fill(manifest.layers[0]) };
  const wideBytes = Buffer.from(JSON.stringify(wide));
  const limits = { manifestMaxLayers: 2, indexMaxManifests: 2 };
  for (const m of [
    { bytes: wideBytes, mediaType: MediaType.ociManifest, digest: D, doc: wide },
    { bytes: wideBytes, mediaType: MediaType.ociManifest, digest: D },
  ]) {
    t.throws(() => parseManifest(m, limits), { message: /limits\.manifestMaxLayers/ });
  }
});
