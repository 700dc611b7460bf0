// A pin the SQLite store acknowledged survives kill -9 of the process mid-write.
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openStore } from '../../src/store/open.ts';

test('every pin acknowledged before SIGKILL is there after reopening, and the audit chain is intact', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pullgate-kill-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'state.db');
  const child = spawn(process.execPath, [fileURLToPath(new URL('./pin-writer.ts', import.meta.url)), path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const acked: string[] = [];
  let buffered = '';
  await new Promise<void>((resolve, reject) => {
    const deadline = setTimeout(() => { child.kill('SIGKILL'); reject(new Error('the writer acknowledged too few pins in 20 s')); }, 20_000);
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      acked.push(...lines);
      if (acked.length >= 300 && !child.killed) {
        child.kill('SIGKILL');
        clearTimeout(deadline);
      }
    });
    child.on('exit', () => resolve());
  });
  t.true(acked.length >= 300);
  const store = await openStore({ kind: 'sqlite', path });
  t.teardown(() => store.close());
  const pinned = new Set((await store.listPins()).map((p) => p.tag));
  const lost = acked.filter((tag) => !pinned.has(tag));
  t.deepEqual(lost, [], 'no acknowledged pin was lost');
  const audit = await store.verifyAudit();
  t.true(audit.ok, JSON.stringify(audit.problems));
  t.true(audit.records >= acked.length);
});
