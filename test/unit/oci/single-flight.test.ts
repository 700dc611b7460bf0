import test from 'ava';
import { SingleFlight } from '../../../src/util/single-flight.ts';

/** A run that ends only when told to, or when its signal aborts. */
function controllable() {
  let finish!: (v: string) => void;
  let runSignal!: AbortSignal;
  const fn = (signal: AbortSignal) => {
    runSignal = signal;
    return new Promise<string>((resolve, reject) => {
      finish = resolve;
      signal.addEventListener('abort', () => reject(signal.reason as Error));
    });
  };
  return { fn, finish: (v: string) => finish(v), signal: () => runSignal };
}

test('a shared run continues while any waiter remains, and stops once every waiter left', async (t) => {
  const flights = new SingleFlight<string>();
  const run = controllable();
  const a = new AbortController();
  const b = new AbortController();
  const pa = flights.run('k', run.fn, a.signal);
  const pb = flights.run('k', run.fn, b.signal);
  a.abort(new Error('a left'));
  await t.throwsAsync(pa, { message: 'a left' });
  t.false(run.signal().aborted, 'b still waits: the run goes on');
  b.abort(new Error('b left'));
  await t.throwsAsync(pb, { message: 'b left' });
  t.true(run.signal().aborted, 'nobody waits: the run is told to stop');
  t.is(flights.size, 0, 'a later caller starts afresh');
});

test('a waiter without a signal keeps the run going; everyone gets its result', async (t) => {
  const flights = new SingleFlight<string>();
  const run = controllable();
  const a = new AbortController();
  const pa = flights.run('k', run.fn, a.signal);
  const pinned = flights.run('k', run.fn);
  a.abort(new Error('a left'));
  await t.throwsAsync(pa);
  t.false(run.signal().aborted);
  run.finish('done');
  t.is(await pinned, 'done');
  t.is(flights.size, 0);
  await t.throwsAsync(flights.run('x', run.fn, AbortSignal.abort(new Error('gone'))), { message: 'gone' });
});
