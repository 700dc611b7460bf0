import test from 'ava';
import { Worker } from 'node:worker_threads';
import { reclaimSlots, SharedAdmissionQueue, sharedSlots } from '../../../src/util/shared-admission-queue.ts';

const settled = async (p: Promise<unknown>, ms = 100): Promise<boolean> =>
  Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);

test('at most `running` at once, `waiting` queued, the next refused; a release hands the slot on', async (t) => {
  const q = new SharedAdmissionQueue(sharedSlots(), 2, 1);
  const a = await q.acquire();
  const b = await q.acquire();
  t.truthy(a && b);
  const c = q.acquire();
  t.false(await settled(c), 'the third waits');
  t.is(await q.acquire(), undefined, 'the fourth is refused: the queue is full');
  t.is(q.active, 2);
  t.is(q.queued, 1);
  a?.();
  a?.(); // a second call does nothing
  t.truthy(await c, 'the waiter got the freed slot');
  t.is(q.active, 2);
  t.is(q.queued, 0);
});

test('two queues over one buffer never run more than the limit together, and wake each other', async (t) => {
  const buffer = sharedSlots();
  const main = new SharedAdmissionQueue(buffer, 3, 10, 0);
  const other = new SharedAdmissionQueue(buffer, 3, 10, 1);
  const held = [await main.acquire(), await other.acquire(), await other.acquire()];
  t.is(main.active, 3);
  const waiting = main.acquire();
  t.false(await settled(waiting), 'the limit counts both');
  held[1]?.();
  t.truthy(await waiting, 'a release in the other queue frees a slot here');
  t.is(other.active, 3);
});

test('a waiter whose signal aborts leaves the queue with its reason', async (t) => {
  const q = new SharedAdmissionQueue(sharedSlots(), 1, 5);
  const first = await q.acquire();
  const ac = new AbortController();
  const waiting = q.acquire(ac.signal);
  ac.abort(new Error('deadline'));
  await t.throwsAsync(waiting, { message: 'deadline' });
  t.is(q.queued, 0);
  first?.();
  t.is(q.active, 0, 'nothing was taken for the aborted waiter');
});

test('a slot held by another thread is counted here, and its release in that thread wakes a waiter here', async (t) => {
  const buffer = sharedSlots();
  const q = new SharedAdmissionQueue(buffer, 1, 5);
  // The other thread takes the only slot through its own queue, then lets go when told.
  const worker = new Worker(
    `
    const { parentPort, workerData } = require('node:worker_threads');
    const counts = new Int32Array(workerData);
    Atomics.add(counts, 0, 1);
    parentPort.postMessage('held');
    parentPort.once('message', () => {
      Atomics.sub(counts, 0, 1);
      Atomics.add(counts, 1, 1);
      Atomics.notify(counts, 1);
      parentPort.postMessage('released');
    });
    `,
    { eval: true, workerData: buffer },
  );
  t.teardown(() => worker.terminate());
  await new Promise((r) => worker.once('message', r));
  t.is(q.active, 1);
  const waiting = q.acquire();
  t.false(await settled(waiting), 'the other thread holds the slot');
  worker.postMessage('go');
  t.truthy(await waiting, "the other thread's release woke this one");
});

test('the slots of a holder that ended without releasing them are given back, and a waiter gets one', async (t) => {
  const buffer = sharedSlots();
  const main = new SharedAdmissionQueue(buffer, 2, 5, 0);
  const thread = new SharedAdmissionQueue(buffer, 2, 5, 1);
  const mine = await main.acquire();
  t.truthy(await thread.acquire(), 'the other holder takes the second slot and never lets go');
  const waiting = main.acquire();
  t.false(await settled(waiting));
  t.is(reclaimSlots(buffer, 1), 1, "the other holder's one slot is given back");
  t.truthy(await waiting);
  t.is(main.active, 2);
  t.is(reclaimSlots(buffer, 1), 0, 'nothing more to give back');
  mine?.();
  t.is(main.active, 1);
});
