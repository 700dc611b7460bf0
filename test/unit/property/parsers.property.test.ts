// Property tests (fast-check) of the parsers that read what upstreams and signers send: manifests
// and indexes, tag lists, WWW-Authenticate challenges, cosign signature layers and DSSE envelopes,
// Notation JWS and COSE envelopes, X.509 certificates. Arbitrary bytes and JSON never make them
// throw anything but their typed error, and never take more than a bound of time.
import test from 'ava';
import fc from 'fast-check';
import { parseChallenges } from '../../../src/oci/challenge.ts';
import { manifestMediaType, parseIndex } from '../../../src/oci/client.ts';
import { RegistryError } from '../../../src/oci/errors.ts';
import { MANIFEST_MEDIA_TYPES, MediaType, type FetchedManifest } from '../../../src/oci/types.ts';
import { blobsOf, childrenOf, evidenceSubject, parseManifest } from '../../../src/gate/admission.ts';
import { scanTagList, tagPage, TagListScanner } from '../../../src/gate/tag-list.ts';
import { isTag } from '../../../src/oci/reference.ts';
import {
  Annotation,
  attestationBundles,
  EvidenceFormatError,
  simpleSigningBundle,
} from '../../../src/verify/cosign-layer.ts';
import { Base64Error } from '../../../src/verify/notation/base64url.ts';
import { parseCose } from '../../../src/verify/notation/cose.ts';
import { EnvelopeError } from '../../../src/verify/notation/envelope.ts';
import { StrictJsonError } from '../../../src/verify/notation/json.ts';
import { parseJws } from '../../../src/verify/notation/jws.ts';
import { CertificateError, parseCertificate } from '../../../src/verify/notation/x509.ts';
import { arbDigest, arbJson, arbTag, boundedTime, boundedTimeAsync, RUNS } from './arbitraries.ts';

/** Calls fn; an error of one of the typed classes is an accepted outcome, anything else fails the property. */
function typed<T>(fn: () => T, ...types: (abstract new (...a: never[]) => Error)[]): T | Error {
  try {
    return boundedTime(fn);
  } catch (err) {
    if (types.some((type) => err instanceof type)) return err as Error;
    throw err;
  }
}

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64');
const contentType = fc.option(
  fc.oneof(fc.constantFrom(...MANIFEST_MEDIA_TYPES, 'application/json', 'text/html; charset=utf-8'), fc.string()),
  { nil: undefined },
);
/** Documents shaped like manifests and indexes, with any value in any field. */
const manifestLike = fc.record(
  {
    schemaVersion: fc.oneof(fc.constant(2), arbJson),
    mediaType: fc.oneof(fc.constantFrom(...MANIFEST_MEDIA_TYPES), arbJson),
    config: arbJson,
    layers: fc.oneof(
      fc.array(fc.oneof(arbJson, fc.record({ digest: arbDigest, size: fc.integer(), mediaType: fc.string() }))),
      arbJson,
    ),
    manifests: fc.oneof(fc.array(fc.oneof(arbJson, fc.record({ digest: arbDigest }))), arbJson),
    subject: fc.oneof(arbJson, fc.record({ digest: arbDigest })),
  },
  { requiredKeys: [] },
);
const documentBytes = fc.oneof(
  fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
  arbJson.map((v) => Buffer.from(JSON.stringify(v) ?? 'undefined')),
  manifestLike.map((v) => Buffer.from(JSON.stringify(v))),
);

test('manifests: a supported media type or a RegistryError; what is accepted is then read without throwing', (t) => {
  let accepted = 0;
  fc.assert(
    fc.property(
      documentBytes,
      contentType,
      fc.oneof(arbTag, arbDigest, fc.constant('sha256-abc.sig')),
      (bytes, ct, ref) => {
        const mediaType = typed(() => manifestMediaType(bytes, ct, 'test/repo:1', 'up.test'), RegistryError);
        if (mediaType instanceof Error) return;
        accepted++;
        t.true(MANIFEST_MEDIA_TYPES.includes(mediaType));
        const fetched: FetchedManifest = { bytes, mediaType, digest: arbDigestOf(bytes) };
        const parsed = boundedTime(() => parseManifest(fetched));
        for (const d of [...blobsOf(parsed), ...childrenOf(parsed)]) t.is(typeof d, 'string');
        const subject = evidenceSubject(ref, parsed);
        t.true(subject === undefined || typeof subject === 'string');
      },
    ),
    { numRuns: RUNS },
  );
  t.true(accepted > RUNS / 20, `${accepted} of ${RUNS} documents were accepted as manifests`);
});

function arbDigestOf(bytes: Buffer): string {
  return `sha256:${Buffer.from(bytes).toString('hex').padEnd(64, '0').slice(0, 64)}`;
}

test('indexes (referrers): a RegistryError, or an index whose every entry is a descriptor', (t) => {
  fc.assert(
    fc.property(documentBytes, (bytes) => {
      const index = typed(() => parseIndex(bytes, 'test referrers'), RegistryError);
      if (index instanceof Error) return;
      t.is(index.mediaType, MediaType.ociIndex);
      for (const d of index.manifests) t.true(typeof d === 'object' && d !== null && typeof d.digest === 'string');
    }),
    { numRuns: RUNS },
  );
});

test('tag lists: a RegistryError or a page of strings, whatever the upstream sent and the client asked', async (t) => {
  const body = fc.oneof(
    documentBytes,
    fc
      .array(fc.oneof(fc.string({ maxLength: 10 }), arbJson), { maxLength: 20 })
      .map((tags) => Buffer.from(JSON.stringify({ tags }))),
  );
  const link = fc.option(
    fc.oneof(fc.string(), fc.constant('</v2/x/tags/list?last=b&n=2>; rel="next"'), fc.constant('<::>; rel=next')),
    {
      nil: undefined,
    },
  );
  await fc.assert(
    fc.asyncProperty(
      body,
      fc.record({ n: fc.nat(50), last: fc.string({ maxLength: 5 }) }, { requiredKeys: [] }),
      link,
      async (bytes, page, l) => {
        let out;
        try {
          out = await boundedTimeAsync(() => tagPage(bytes, 'up.test/x', page, l));
        } catch (err) {
          if (err instanceof RegistryError) return;
          throw err;
        }
        for (const tag of out.tags) t.is(typeof tag, 'string');
        if (page.n !== undefined && !l) t.true(out.tags.length <= page.n);
      },
    ),
    { numRuns: RUNS },
  );
});

/** What the tag list scanner must find: JSON.parse's reading of the document, valid tags only. */
function parsedTags(bytes: Buffer): string[] | 'invalid' {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    return 'invalid';
  }
  const tags = (doc as { tags?: unknown } | null)?.tags;
  return Array.isArray(tags) ? tags.filter((x): x is string => typeof x === 'string' && isTag(x)) : [];
}

test('tag list scanner: exactly what JSON.parse reads (valid tags of the top-level list), or invalid when it throws', (t) => {
  const tagLike = fc.oneof(
    arbTag,
    fc.string({ maxLength: 8 }),
    fc.constantFrom('.a', '-a', '', 'a b', 'x'.repeat(129)),
  );
  const listDoc = fc
    .record(
      {
        name: fc.string(),
        tags: fc.oneof(fc.array(fc.oneof(tagLike, arbJson), { maxLength: 20 }), arbJson),
        other: arbJson,
      },
      { requiredKeys: [] },
    )
    .map((v) => Buffer.from(JSON.stringify(v)));
  // Valid documents cut or with one byte changed: mostly invalid JSON, sometimes still valid.
  const damaged = fc
    .tuple(listDoc, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.boolean())
    .map(([doc, at, byte, cut]) => {
      if (doc.length === 0) return doc;
      const i = at % doc.length;
      if (cut) return doc.subarray(0, i);
      const copy = Buffer.from(doc);
      copy[i] = byte;
      return copy;
    });
  fc.assert(
    fc.property(fc.oneof(listDoc, damaged, documentBytes), (bytes) => {
      const expected = parsedTags(bytes);
      const got = boundedTime(() => scanTagList(bytes, 1_000));
      if (expected === 'invalid') t.like(got, { ok: false, why: 'invalid' }, bytes.toString('latin1'));
      else t.deepEqual(got.ok ? got.tags : got, expected, bytes.toString('latin1'));
    }),
    { numRuns: RUNS * 5 },
  );
});

test('tag list scanner: fed in pieces cut anywhere, the same verdict as the whole document (error positions too)', (t) => {
  const listDoc = fc
    .record(
      {
        tags: fc.array(fc.oneof(arbTag, fc.string({ maxLength: 8 }), arbJson), { maxLength: 20 }),
        other: arbJson,
      },
      { requiredKeys: [] },
    )
    .map((v) => Buffer.from(JSON.stringify(v)));
  const damaged = fc.tuple(listDoc, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([doc, at, byte]) => {
    const copy = Buffer.from(doc);
    if (copy.length > 0) copy[at % copy.length] = byte;
    return copy;
  });
  fc.assert(
    fc.property(
      fc.oneof(listDoc, damaged, documentBytes),
      fc.array(fc.nat(), { maxLength: 10 }),
      fc.nat(20),
      (bytes, cuts, max) => {
        const whole = scanTagList(bytes, max);
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const s = new TagListScanner(max);
        let from = 0;
        let early: ReturnType<typeof s.write>;
        for (const to of [...points, bytes.length]) {
          early = s.write(bytes.subarray(from, to));
          from = to;
          if (early) break;
        }
        t.deepEqual(early ?? s.end(), whole, `${bytes.toString('latin1')} cut at ${points.join(',')}`);
      },
    ),
    { numRuns: RUNS * 5 },
  );
});

test('tag list scanner: never more than maxTags tags, and over it too-many, whatever the document', (t) => {
  fc.assert(
    fc.property(fc.array(fc.oneof(arbTag, fc.string({ maxLength: 4 })), { maxLength: 40 }), fc.nat(30), (tags, max) => {
      const got = scanTagList(Buffer.from(JSON.stringify({ tags })), max);
      const valid = tags.filter((x) => isTag(x));
      if (valid.length > max) t.deepEqual(got, { ok: false, why: 'too-many' });
      else t.deepEqual(got, { ok: true, tags: valid, dropped: tags.length - valid.length });
    }),
    { numRuns: RUNS },
  );
});

test('WWW-Authenticate: any header parses without throwing, quickly, into lowercase schemes', (t) => {
  const piece = fc.constantFrom(
    'Bearer',
    'Basic',
    ' ',
    ',',
    '=',
    '"',
    '\\',
    'realm',
    'service',
    'scope',
    '"https://a/t"',
    'x',
  );
  const header = fc.oneof(
    fc.string({ maxLength: 300 }),
    fc.array(piece, { maxLength: 60 }).map((p) => p.join('')),
    fc.integer({ min: 1_000, max: 16_000 }).map((n) => `Bearer realm="${'\\"'.repeat(n)}`),
  );
  fc.assert(
    fc.property(header, (h) => {
      const challenges = boundedTime(() => parseChallenges(h));
      for (const c of challenges) {
        t.is(c.scheme, c.scheme.toLowerCase());
        t.is(Object.getPrototypeOf(c.params), Object.prototype);
        for (const v of Object.values(c.params)) t.is(typeof v, 'string');
      }
    }),
    { numRuns: RUNS },
  );
});

const annotations = fc.dictionary(
  fc.oneof(fc.constantFrom(...Object.values(Annotation)), fc.string({ maxLength: 10 })),
  fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.constantFrom('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----', 'MEUCIQ==', '{}', 'null'),
    arbJson.map((v) => JSON.stringify(v) ?? ''),
  ),
  { maxKeys: 5 },
);

test('cosign layers and DSSE envelopes: bundles, or an EvidenceFormatError naming what is wrong', (t) => {
  const envelope = fc.oneof(
    documentBytes,
    fc
      .record(
        {
          payloadType: fc.oneof(fc.constant('application/vnd.in-toto+json'), arbJson),
          payload: fc.oneof(arbJson.map(b64), arbJson),
          signatures: fc.oneof(
            fc.array(
              fc.oneof(
                fc.record({ sig: fc.oneof(fc.base64String(), arbJson), keyid: arbJson }, { requiredKeys: [] }),
                arbJson,
              ),
              {
                maxLength: 5,
              },
            ),
            arbJson,
          ),
        },
        { requiredKeys: [] },
      )
      .map((e) => Buffer.from(JSON.stringify(e))),
  );
  fc.assert(
    fc.property(envelope, annotations, (bytes, ann) => {
      const bundles = typed(() => attestationBundles(bytes, ann), EvidenceFormatError);
      if (!(bundles instanceof Error)) t.true(bundles.length > 0);
      typed(() => simpleSigningBundle(bytes, ann), EvidenceFormatError);
      t.pass();
    }),
    { numRuns: RUNS },
  );
});

test('Notation JWS and COSE envelopes and X.509 certificates: only their typed errors', (t) => {
  const jws = fc.oneof(
    documentBytes,
    fc
      .record(
        {
          payload: fc.oneof(
            arbJson.map((v) => b64(v).replace(/=+$/, '')),
            arbJson,
          ),
          protected: fc.oneof(
            fc
              .record(
                { alg: fc.constantFrom('PS256', 'ES256', 'none'), crit: arbJson, cty: arbJson },
                { requiredKeys: [] },
              )
              .map((v) => b64(v).replace(/=+$/, '')),
            arbJson,
          ),
          header: fc.oneof(
            fc.record({ x5c: fc.oneof(fc.array(fc.base64String()), arbJson) }, { requiredKeys: [] }),
            arbJson,
          ),
          signature: fc.oneof(fc.base64String(), arbJson),
        },
        { requiredKeys: [] },
      )
      .map((e) => Buffer.from(JSON.stringify(e))),
  );
  const cbor = fc.oneof(
    fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
    // COSE_Sign1 tag (18) and an array header, then anything
    fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.concat([Buffer.from([0xd2, 0x84]), Buffer.from(a)])),
    // deeply nested arrays
    fc.integer({ min: 10, max: 5_000 }).map((n) => Buffer.concat([Buffer.from([0xd2]), Buffer.alloc(n, 0x81)])),
  );
  const der = fc.oneof(
    fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
    fc
      .uint8Array({ maxLength: 300 })
      .map((a) => Buffer.concat([Buffer.from([0x30, 0x82, 0x01, 0x00]), Buffer.from(a)])),
    fc.integer({ min: 10, max: 5_000 }).map((n) => Buffer.concat(Array(n).fill(Buffer.from([0x30, 0x80])))),
  );
  fc.assert(
    fc.property(jws, cbor, der, (j, c, d) => {
      typed(() => parseJws(j), EnvelopeError, Base64Error, StrictJsonError);
      typed(() => parseCose(c), EnvelopeError, Base64Error, StrictJsonError);
      typed(() => parseCertificate(d), CertificateError);
      t.pass();
    }),
    { numRuns: RUNS },
  );
});
