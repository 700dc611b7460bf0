// Whether a directory's filesystem takes direct writes, asked of dd (which aligns its own buffers)
// rather than of the code under test.
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';

export function directIoWorks(dir: string): boolean {
  const probe = join(dir, '.dd-direct-probe');
  const r = spawnSync('dd', ['if=/dev/zero', `of=${probe}`, 'bs=4096', 'count=1', 'oflag=direct'], {
    stdio: 'ignore',
    timeout: 10_000,
  });
  rmSync(probe, { force: true });
  return r.status === 0;
}

/** Bytes of `file` in the page cache now, as util-linux's fincore counts them. */
export function pageCacheBytes(file: string): number {
  const r = spawnSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  if (r.status !== 0) throw new Error(`fincore ${file}: ${r.stderr || r.error?.message}`);
  return Number(r.stdout.trim());
}
