// CPU readings of processes the tests and the benchmark start, from /proc: to wait until what a
// request started has finished before the next measurement begins.
import { readFileSync } from 'node:fs';

/** CPU time (user + system) of a process so far, in ms: /proc/<pid>/stat counts clock ticks of 10 ms. */
export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * Waits until the processes together spent under `belowMs` of CPU in 200 ms, or `timeoutMs` passed
 * (then it returns anyway: a measurement on a machine that never settles is still made).
 */
export async function cpuIdle(pids: number[], opts: { belowMs: number; timeoutMs: number }): Promise<void> {
  const total = (): number => pids.reduce((sum, pid) => sum + cpuMs(pid), 0);
  const until = performance.now() + opts.timeoutMs;
  for (let last = total(); performance.now() < until;) {
    await new Promise((r) => setTimeout(r, 200));
    const now = total();
    if (now - last < opts.belowMs) return;
    last = now;
  }
}
