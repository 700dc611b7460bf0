// Pins the SQLite store acknowledged survive kill -9 of the writing process at arbitrary points,
// and the database and its audit chain stay intact across several such crashes.
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';
import { openStore } from '../../src/store/open.ts';

const NODE = fileURLToPath(new URL('../../node_modules/.bin/node', import.meta.url));
const WRITER = fileURLToPath(new URL('./pin-writer.ts', import.meta.url));
const ROUNDS = 3;

/** Runs the writer until it has acknowledged `killAfter` pins, then SIGKILLs it; returns every acknowledged tag. */
async function writeUntilKilled(
  path: string,
  prefix: string,
  killAfter: number,
  track: (c: ChildProcess) => void,
): Promise<string[]> {
  const child = spawn(NODE, [WRITER, path, prefix], { stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  const acked: string[] = [];
  let buffered = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  await new Promise<void>((resolve, reject) => {
    const deadline = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`the writer acknowledged only ${acked.length} of ${killAfter} pins in 30 s; its stderr: ${stderr}`),
      );
    }, 30_000);
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      acked.push(...lines);
      if (acked.length >= killAfter) child.kill('SIGKILL');
    });
    child.on('exit', (code, signal) => {
      clearTimeout(deadline);
      if (signal === 'SIGKILL') resolve();
      else reject(new Error(`the writer exited by itself (code ${code}); its stderr: ${stderr}`));
    });
  });
  return acked;
}

test('every pin acknowledged before SIGKILL is there after reopening, the database is not corrupt and the audit chain is intact', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pullgate-kill-'));
  const children: ChildProcess[] = [];
  t.teardown(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const path = join(dir, 'state.db');
  const allAcked: string[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    // A different, random point each round, so the kill lands anywhere in a write.
    const killAfter = 50 + Math.floor(Math.random() * 200);
    const acked = await writeUntilKilled(path, `r${round}-`, killAfter, (c) => children.push(c));
    t.true(acked.length >= killAfter, `round ${round}`);
    allAcked.push(...acked);

    const check = new DatabaseSync(path);
    t.is(
      (check.prepare('PRAGMA integrity_check').get() as { integrity_check: string }).integrity_check,
      'ok',
      `round ${round}: integrity_check`,
    );
    t.is((check.prepare('PRAGMA journal_mode').get() as { journal_mode: string }).journal_mode, 'wal');
    check.close();

    const store = await openStore({ kind: 'sqlite', path });
    try {
      const pinned = new Set((await store.listPins()).map((p) => p.tag));
      t.deepEqual(
        allAcked.filter((tag) => !pinned.has(tag)),
        [],
        `round ${round}: no acknowledged pin was lost`,
      );
      const audit = await store.verifyAudit();
      t.true(audit.ok, `round ${round}: ${JSON.stringify(audit.problems)}`);
      t.true(audit.records >= allAcked.length);
    } finally {
      await store.close();
    }
  }
});
