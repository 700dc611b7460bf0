// The bounded LRU map that replaced lru-cache: eviction order, expiry, and that it allocates per
// entry rather than for `max` up front (the reason it exists).
import test from 'ava';
import { Lru } from '../../../src/util/lru.ts';

function clock() {
  let t = 1_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

test('drops the least recently used entry once past max; a read makes an entry recent', (t) => {
  const lru = new Lru<string, number>({ max: 3 });
  lru.set('a', 1);
  lru.set('b', 2);
  lru.set('c', 3);
  t.is(lru.get('a'), 1, 'a is now the most recent');
  lru.set('d', 4);
  t.deepEqual(
    ['a', 'b', 'c', 'd'].map((k) => lru.get(k)),
    [1, undefined, 3, 4],
  );
  t.is(lru.size, 3);
  lru.set('c', 30);
  lru.set('e', 5);
  t.deepEqual(
    ['a', 'c', 'd', 'e'].map((k) => lru.get(k)),
    [undefined, 30, 4, 5],
    'setting an existing key updates it and makes it recent: a was the oldest',
  );
});

const expiry: [string, { cacheTtl?: number; setTtl?: number }, number, boolean][] = [
  ['no ttl: kept however old', {}, 10_000_000, true],
  ['cache ttl, before it', { cacheTtl: 100 }, 99, true],
  ['cache ttl, at it', { cacheTtl: 100 }, 100, false],
  ['set ttl overrides the cache ttl (longer)', { cacheTtl: 100, setTtl: 500 }, 499, true],
  ['set ttl overrides the cache ttl (shorter)', { cacheTtl: 500, setTtl: 100 }, 100, false],
  ['set ttl 0: until evicted', { cacheTtl: 100, setTtl: 0 }, 10_000_000, true],
];
for (const [name, { cacheTtl, setTtl }, after, live] of expiry) {
  test(`expiry: ${name}`, (t) => {
    const c = clock();
    const lru = new Lru<string, string>({ max: 10, ...(cacheTtl !== undefined ? { ttl: cacheTtl } : {}), now: c.now });
    lru.set('k', 'v', setTtl !== undefined ? { ttl: setTtl } : undefined);
    c.advance(after);
    t.is(lru.get('k'), live ? 'v' : undefined);
    t.is(lru.size, live ? 1 : 0, 'an expired entry read is dropped');
  });
}

test('setting an entry again restarts its ttl; delete and clear', (t) => {
  const c = clock();
  const lru = new Lru<string, string>({ max: 10, ttl: 100, now: c.now });
  lru.set('k', 'v1');
  c.advance(80);
  lru.set('k', 'v2');
  c.advance(80);
  t.is(lru.get('k'), 'v2');
  lru.set('x', 'y');
  t.true(lru.delete('k'));
  t.false(lru.delete('k'));
  t.is(lru.size, 1);
  lru.clear();
  t.is(lru.size, 0);
  t.is(lru.get('x'), undefined);
});

test('refuses a max that is not a positive integer', (t) => {
  for (const max of [0, -1, 1.5, Number.NaN]) t.throws(() => new Lru({ max }), { instanceOf: RangeError });
});

test('a large max costs nothing until used (lru-cache preallocated for max)', (t) => {
  const before = process.memoryUsage().heapUsed;
  const caches = Array.from({ length: 20 }, () => new Lru<string, number>({ max: 1_000_000 }));
  const grown = process.memoryUsage().heapUsed - before;
  t.is(caches.length, 20);
  // lru-cache would have taken about 20 x 16 MiB here; an empty Map is a few hundred bytes.
  t.true(grown < 8 * 1024 * 1024, `20 empty caches of max 1e6 took ${grown} bytes of heap`);
});
