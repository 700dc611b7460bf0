// Property tests (fast-check) of the request route parser and the reference grammar: whatever the
// path, routeRequest either names a configured upstream and a name the distribution grammar
// allows, or throws a RegistryError; generated valid paths round-trip; every call is fast.
import test from 'ava';
import fc from 'fast-check';
import { RegistryError } from '../../../src/oci/errors.ts';
import { resolveImage } from '../../../src/oci/image-name.ts';
import {
  assertBlobDigest,
  assertManifestReference,
  isTag,
  isValidRepository,
  parseDigest,
} from '../../../src/oci/reference.ts';
import { routeRequest, type UpstreamNames } from '../../../src/proxy/route.ts';
import { arbDigest, arbRepository, arbTag, boundedTime, RUNS } from './arbitraries.ts';

const CANONICAL = new Map([
  ['docker.io', 'docker.io'],
  ['index.docker.io', 'docker.io'],
  ['ghcr.io', 'ghcr.io'],
  ['registry.test:5000', 'registry.test:5000'],
  ['hub', 'docker.io'],
]);
const UPSTREAMS = new Set(CANONICAL.values());
const names = (defaultUpstream?: string): UpstreamNames => ({
  // A Map, not an object: `__proto__` or `constructor` in a path must not find anything.
  canonical: (n) => CANONICAL.get(n),
  defaultUpstream,
});

/** Path-ish text: mostly the characters registry paths are made of, so the parser's branches are reached. */
const pathChar = fc.constantFrom(...'abz09/._-:%@?#~ AZ'.split(''), 'manifests', 'blobs', 'tags', 'list', 'referrers');
const pathish = fc.array(pathChar, { maxLength: 40 }).map((parts) => parts.join(''));
const endpoint = fc.oneof(
  arbTag.map((t) => `manifests/${t}`),
  arbDigest.map((d) => `manifests/${d}`),
  arbDigest.map((d) => `blobs/${d}`),
  fc.constant('tags/list'),
  arbDigest.map((d) => `referrers/${d}`),
);
const anyPath = fc.oneof(
  fc.string({ maxLength: 300 }),
  pathish.map((p) => `/v2/${p}`),
  fc.tuple(pathish, endpoint).map(([p, e]) => `/v2/${p}/${e}`),
  fc
    .tuple(fc.constantFrom(...CANONICAL.keys(), 'evil.example', 'localhost', '127.0.0.1:1'), pathish, endpoint)
    .map(([h, p, e]) => `/v2/${h}/${p}/${e}`),
);
const anyNs = fc.option(
  fc.oneof(fc.constantFrom(...CANONICAL.keys(), 'GHCR.IO', 'evil.example', '__proto__'), fc.string()),
  {
    nil: undefined,
  },
);

test('routeRequest: a configured upstream and a grammatical name, or a RegistryError, quickly', (t) => {
  let accepted = 0;
  fc.assert(
    fc.property(
      anyPath,
      anyNs,
      fc.option(fc.constantFrom('docker.io', 'ghcr.io'), { nil: undefined }),
      (path, ns, def) => {
        const target = boundedTime(() => {
          try {
            return routeRequest(path, ns, names(def));
          } catch (err) {
            if (err instanceof RegistryError) return undefined;
            throw err;
          }
        });
        if (!target) return;
        t.true(UPSTREAMS.has(target.upstream), `upstream ${target.upstream} is configured`);
        t.true(isValidRepository(target.repository), `repository ${target.repository} is grammatical`);
        const e = target.endpoint;
        if (e.kind === 'manifest') t.notThrows(() => assertManifestReference(e.reference));
        if (e.kind === 'blob' || e.kind === 'referrers') t.notThrows(() => assertBlobDigest(e.digest));
        t.false(path.includes('%'), 'percent-encoded paths are refused');
      },
    ),
    { numRuns: RUNS },
  );
});

test('routeRequest: generated valid paths round-trip to their upstream, repository and endpoint', (t) => {
  fc.assert(
    fc.property(fc.constantFrom(...CANONICAL.keys()), arbRepository, endpoint, (host, repository, e) => {
      const target = routeRequest(`/v2/${host}/${repository}/${e}`, undefined, names());
      const upstream = CANONICAL.get(host) as string;
      t.is(target.upstream, upstream);
      const expected = upstream === 'docker.io' && !repository.includes('/') ? `library/${repository}` : repository;
      t.is(target.repository, expected);
      t.is(target.clientName, `${host}/${repository}`);
      const [kind, value] = e.split('/') as [string, string];
      const want =
        kind === 'manifests'
          ? { kind: 'manifest', reference: value }
          : kind === 'blobs'
            ? { kind: 'blob', digest: value }
            : kind === 'tags'
              ? { kind: 'tags' }
              : { kind: 'referrers', digest: value };
      t.deepEqual(target.endpoint, want);
      // containerd's form names the same thing.
      const viaNs = routeRequest(`/v2/${repository}/${e}`, host, names());
      t.is(viaNs.upstream, upstream);
      t.is(viaNs.repository, expected);
    }),
    { numRuns: RUNS },
  );
});

test('routeRequest: long and adversarial paths are answered in bounded time', (t) => {
  const long = fc.tuple(
    fc.constantFrom('a/', 'manifests/', '/', 'a-', '__', 'blobs/sha256:'),
    fc.integer({ min: 100, max: 8_000 }),
  );
  fc.assert(
    fc.property(long, endpoint, ([unit, n], e) => {
      boundedTime(() => {
        try {
          routeRequest(`/v2/${unit.repeat(n)}${e}`, undefined, names('docker.io'));
        } catch (err) {
          if (!(err instanceof RegistryError)) throw err;
        }
      });
      t.pass();
    }),
    { numRuns: 200 },
  );
});

/** The distribution grammar written out by hand, without the regular expressions under test. */
function grammaticalName(name: string): boolean {
  if (name.length === 0 || name.length > 255) return false;
  const alnum = (c: string) => (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  return name.split('/').every((component) => {
    // component: alnum+ (separator alnum+)*, separator: "." | "_" | "__" | "-"+
    let i = 0;
    const run = () => {
      const s = i;
      while (i < component.length && alnum(component[i] as string)) i++;
      return i > s;
    };
    if (!run()) return false;
    while (i < component.length) {
      const c = component[i];
      if (c === '.') i++;
      else if (c === '_') i += component[i + 1] === '_' ? 2 : 1;
      else if (c === '-') while (component[i] === '-') i++;
      else return false;
      if (!run()) return false;
    }
    return true;
  });
}

test('repository names: the grammar check agrees with the grammar written out by hand', (t) => {
  const nameChars = fc.constantFrom(...'ab09._-/A:'.split(''));
  fc.assert(
    fc.property(
      fc.oneof(
        arbRepository,
        fc.string({ maxLength: 300 }),
        fc.array(nameChars, { maxLength: 30 }).map((c) => c.join('')),
      ),
      (name) => {
        t.is(
          boundedTime(() => isValidRepository(name)),
          grammaticalName(name),
          JSON.stringify(name),
        );
      },
    ),
    { numRuns: RUNS },
  );
});

test('tags and digests: generated valid ones are accepted, anything else never throws but a RegistryError', (t) => {
  fc.assert(
    fc.property(arbTag, arbDigest, fc.string({ maxLength: 200 }), (tag, digest, junk) => {
      t.true(isTag(tag));
      t.notThrows(() => assertManifestReference(tag));
      t.notThrows(() => assertManifestReference(digest));
      t.deepEqual(parseDigest(digest), { algorithm: 'sha256', hex: digest.slice('sha256:'.length) });
      const parsed = boundedTime(() => parseDigest(junk));
      t.true(typeof parsed === 'string' || /^[a-f0-9]+$/.test(parsed.hex));
      try {
        boundedTime(() => assertManifestReference(junk));
        t.true(isTag(junk) || (typeof parsed !== 'string' && parsed.algorithm === 'sha256'));
      } catch (err) {
        t.true(err instanceof RegistryError);
      }
    }),
    { numRuns: RUNS },
  );
});

test('resolveImage: image names as admins type them round-trip, and nothing makes it throw', (t) => {
  const n = names('docker.io');
  fc.assert(
    fc.property(
      fc.constantFrom(...CANONICAL.keys()),
      arbRepository,
      fc.option(arbTag, { nil: undefined }),
      fc.option(arbDigest, { nil: undefined }),
      (host, repository, tag, digest) => {
        const text = `${host}/${repository}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}`;
        const r = resolveImage(text, n);
        if (typeof r === 'string') return t.fail(`${text}: ${r}`);
        t.is(r.upstream, CANONICAL.get(host) as string);
        t.is(r.tag, tag);
        t.is(r.digest, digest);
      },
    ),
    { numRuns: RUNS },
  );
  fc.assert(
    fc.property(fc.oneof(fc.string({ maxLength: 600 }), pathish), (text) => {
      const r = boundedTime(() => resolveImage(text, n));
      if (typeof r === 'string') return;
      t.true(UPSTREAMS.has(r.upstream));
      t.true(isValidRepository(r.repository), r.repository);
    }),
    { numRuns: RUNS },
  );
});
