// The per-upstream fetch budget (limits.upstreamRequests, upstreamBlobRequests, upstreamQueue):
// slots held until a response body closes, separate budgets for blobs, and past both the budget and
// its queue a typed 503 TOOMANYREQUESTS naming the key.
import test from 'ava';
import { PassThrough } from 'node:stream';
import { releaseWith, UpstreamFetchBudget } from '../../../src/oci/fetch-budget.ts';
import { RegistryError } from '../../../src/oci/errors.ts';
import { errorHeaders, httpStatus } from '../../../src/proxy/http-errors.ts';

const CASES: {
  name: string;
  limits: { requests: number; blobRequests: number; queue: number };
  /** Slots taken (and held) before the one asked for. */
  held: ('requests' | 'blobs')[];
  ask: 'requests' | 'blobs';
  /** granted, queued (waits), or refused naming this key. */
  out: 'granted' | 'queued' | RegExp;
}[] = [
  {
    name: 'a free slot',
    limits: { requests: 2, blobRequests: 1, queue: 0 },
    held: ['requests'],
    ask: 'requests',
    out: 'granted',
  },
  {
    name: 'requests full, no queue',
    limits: { requests: 1, blobRequests: 1, queue: 0 },
    held: ['requests'],
    ask: 'requests',
    out: /1 requests are in flight and 0 are waiting \(limits\.upstreamRequests 1, limits\.upstreamQueue 0\)/,
  },
  {
    name: 'blobs full, no queue',
    limits: { requests: 4, blobRequests: 1, queue: 0 },
    held: ['blobs'],
    ask: 'blobs',
    out: /limits\.upstreamBlobRequests 1, limits\.upstreamQueue 0/,
  },
  {
    name: 'blobs full do not hold up manifests',
    limits: { requests: 1, blobRequests: 1, queue: 0 },
    held: ['blobs'],
    ask: 'requests',
    out: 'granted',
  },
  {
    name: 'full with room in the queue',
    limits: { requests: 1, blobRequests: 1, queue: 1 },
    held: ['requests'],
    ask: 'requests',
    out: 'queued',
  },
  {
    name: 'full and the queue full',
    limits: { requests: 1, blobRequests: 1, queue: 1 },
    held: ['requests', 'requests'],
    ask: 'requests',
    out: /1 requests are in flight and 1 are waiting/,
  },
];

for (const c of CASES) {
  test(`fetch budget: ${c.name}`, async (t) => {
    const budget = new UpstreamFetchBudget('up.test', c.limits);
    // Held slots; a held one past the budget waits in the queue (never awaited here).
    for (const kind of c.held) void budget.acquire(kind).catch(() => undefined);
    await Promise.resolve();
    const asked = budget.acquire(c.ask);
    const outcome = await Promise.race([
      asked.then(
        () => 'granted' as const,
        (err: unknown) => err,
      ),
      new Promise<'queued'>((r) => setTimeout(() => r('queued'), 50)),
    ]);
    if (c.out instanceof RegExp) {
      t.true(outcome instanceof RegistryError, String(outcome));
      const err = outcome as RegistryError;
      t.is(err.code, 'TOOMANYREQUESTS');
      t.is(httpStatus(err), 503);
      t.deepEqual(errorHeaders(err), { 'retry-after': '2' });
      t.regex(err.message, /upstream up\.test/);
      t.regex(err.message, c.out);
    } else {
      t.is(outcome, c.out);
    }
  });
}

test('fetch budget: a slot is held until the response body closes, then the waiter gets it', async (t) => {
  const budget = new UpstreamFetchBudget('up.test', { requests: 1, blobRequests: 1, queue: 1 });
  const body = new PassThrough();
  releaseWith(body, await budget.acquire('requests'));
  let waiterGot = false;
  const waiter = budget.acquire('requests').then((r) => ((waiterGot = true), r));
  body.write('partial');
  await new Promise((r) => setTimeout(r, 20));
  t.false(waiterGot, 'a body still open holds its slot');
  t.deepEqual(budget.usage('requests'), { active: 1, queued: 1 });
  body.destroy();
  (await waiter)();
  t.deepEqual(budget.usage('requests'), { active: 0, queued: 0 });
  const done = new PassThrough();
  done.destroy();
  await new Promise((r) => setImmediate(r));
  releaseWith(done, await budget.acquire('requests'));
  t.deepEqual(budget.usage('requests'), { active: 0, queued: 0 }, 'an already closed body releases at once');
});
