// The decision queue: at most `running` at once, `waiting` more queued in order, the next refused.
import test from 'ava';
import { AdmissionQueue } from '../../../src/util/admission-queue.ts';

test('runs at most N at once, queues M in order, refuses the next, and frees slots on failure too', async (t) => {
  const q = new AdmissionQueue(2, 1);
  const order: string[] = [];
  const gates: (() => void)[] = [];
  const job =
    (name: string, fail = false) =>
    () =>
      new Promise<string>((resolve, reject) => {
        order.push(`start ${name}`);
        gates.push(() => (fail ? reject(new Error(name)) : resolve(name)));
      });
  const a = q.run(job('a', true));
  const b = q.run(job('b'));
  const c = q.run(job('c'));
  t.is(await q.run(job('d')), undefined, 'the queue is full: refused at once');
  t.deepEqual([q.active, q.queued], [2, 1]);
  t.deepEqual(order, ['start a', 'start b']);
  gates[0]!();
  await t.throwsAsync(a, { message: 'a' });
  await new Promise((r) => setImmediate(r));
  t.deepEqual(order, ['start a', 'start b', 'start c'], 'the failed job handed its slot to the waiter');
  gates[1]!();
  gates[2]!();
  t.deepEqual([await b, await c], [{ value: 'b' }, { value: 'c' }]);
  t.deepEqual([q.active, q.queued], [0, 0]);
});

test('acquire: a slot held until released (once), waiters served in order, a full queue refused', async (t) => {
  const q = new AdmissionQueue(1, 1);
  const first = await q.acquire();
  t.truthy(first);
  let secondGot = false;
  const second = q.acquire().then((r) => ((secondGot = true), r));
  t.is(await q.acquire(), undefined, 'one running, one waiting: the next is refused at once');
  await new Promise((r) => setImmediate(r));
  t.false(secondGot, 'the waiter waits while the slot is held');
  first!();
  first!(); // a second release must not free a slot it does not hold
  const release2 = await second;
  t.truthy(release2);
  t.deepEqual([q.active, q.queued], [1, 0], 'the slot passed to the waiter; the double release freed nothing');
  release2!();
  t.deepEqual([q.active, q.queued], [0, 0]);
});

test('acquire: a waiter whose signal aborts leaves the queue with the reason; its place is free again', async (t) => {
  const q = new AdmissionQueue(1, 1);
  const held = await q.acquire();
  const controller = new AbortController();
  const waiting = q.acquire(controller.signal);
  t.is(q.queued, 1);
  controller.abort(new Error('deadline'));
  await t.throwsAsync(waiting, { message: 'deadline' });
  t.deepEqual([q.active, q.queued], [1, 0]);
  const next = q.acquire();
  t.is(q.queued, 1, 'the queue takes a waiter again');
  held!();
  (await next)!();
  t.deepEqual([q.active, q.queued], [0, 0]);
  await t.throwsAsync(q.acquire(AbortSignal.abort(new Error('gone'))), { message: 'gone' });
  t.is(q.active, 0, 'an aborted signal takes no slot');
});
