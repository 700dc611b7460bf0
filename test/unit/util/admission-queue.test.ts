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
