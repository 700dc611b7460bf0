// SQLite failures under real conditions keep their real cause, name the file and the fix, and leave
// the store usable once the condition is gone: a full database (PRAGMA max_page_count on the
// store's own connection), a file the kernel refuses to write (chattr +i: root ignores modes), a
// second process holding the write lock past the busy timeout, and a damaged file.
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runChecked } from '../harness/index.ts';
import { httpStatus } from '../../src/proxy/http-errors.ts';
import { localBus } from '../../src/store/events.ts';
import { StoreError } from '../../src/store/faults.ts';
import { HealthMonitor } from '../../src/store/health.ts';
import { migrate } from '../../src/store/migrations.ts';
import { openStore } from '../../src/store/open.ts';
import { SqlStore } from '../../src/store/sql-store.ts';
import { openSqlite } from '../../src/store/sqlite.ts';

const dir = mkdtempSync(join(tmpdir(), 'pullgate-sqlite-faults-'));
let n = 0;
const immutable: string[] = [];
test.after.always(async () => {
  for (const path of immutable) await runChecked('chattr', ['-i', path]).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

const pin = (tag: string) => ({
  upstream: 'r',
  repository: 'app',
  tag,
  digest: `sha256:${'a'.repeat(64)}`,
  rule: 'default',
  attestors: [],
});

function fresh(): string {
  return join(dir, `s${++n}.db`);
}

test('a full database: the write fails as "full" with the file and the fix, never "cannot rollback"; reads go on; writes work again once there is room', async (t) => {
  const path = fresh();
  const health = new HealthMonitor({ store: 'SQLite', intervalMs: 60_000 });
  const faults: StoreError[] = [];
  const db = openSqlite(path, { onFault: (e) => (faults.push(e), health.fault(e)) });
  await migrate(db);
  const store = new SqlStore(db, localBus(), health);
  t.teardown(() => store.close());
  await store.createPin(pin('before'));
  const pages = Number((await db.query('PRAGMA page_count'))[0]?.page_count);
  await db.query(`PRAGMA max_page_count = ${pages + 1}`);
  const err = await t.throwsAsync(
    store.putManifest({ digest: `sha256:${'b'.repeat(64)}`, mediaType: 'x', bytes: Buffer.alloc(256 * 1024, 7) }),
    { instanceOf: StoreError },
  );
  t.is(err.failure, 'unavailable');
  t.is(httpStatus(err), 503);
  t.is(err.code, 'UNAVAILABLE');
  t.is(err.kind, 'full');
  t.regex(err.message, /SQLite store is unavailable \(the database is out of space\).*failed closed/);
  t.regex(err.operator, /database or disk is full \(SQLite code 13\)/);
  t.true(err.operator.includes(path), err.operator);
  t.regex(err.operator, /free space on the volume/);
  t.notRegex(err.operator, /cannot rollback/);
  t.false(health.up, 'the store is reported unusable');
  t.is(faults.length, 1);
  t.is((await store.getPin('r', 'app', 'before'))?.tag, 'before', 'reads still work');
  await db.query('PRAGMA max_page_count = 1073741823');
  await store.putManifest({ digest: `sha256:${'b'.repeat(64)}`, mediaType: 'x', bytes: Buffer.alloc(256 * 1024, 7) });
  t.is((await store.getManifest(`sha256:${'b'.repeat(64)}`))?.bytes.length, 256 * 1024);
});

test('a database file the kernel will not write: writes fail as "readonly" naming the file and how to fix it', async (t) => {
  const path = fresh();
  const first = await openStore({ kind: 'sqlite', path });
  await first.createPin(pin('kept'));
  await first.close();
  await runChecked('chattr', ['+i', path]);
  immutable.push(path);
  const store = await openStore({ kind: 'sqlite', path });
  t.teardown(() => store.close());
  t.is((await store.getPin('r', 'app', 'kept'))?.tag, 'kept', 'reads work');
  const err = await t.throwsAsync(store.createPin(pin('new')), { instanceOf: StoreError });
  t.is(err.kind, 'readonly');
  t.regex(err.operator, /attempt to write a readonly database \(SQLite code 8\)/);
  t.true(err.operator.includes(`make ${path}`), err.operator);
  t.false(store.health.up);
});

test('a directory where the -wal file cannot be created: opening fails naming the file and the directory fix', async (t) => {
  const sub = join(dir, `ro${++n}`);
  const path = join(sub, 'state.db');
  const first = await openStore({ kind: 'sqlite', path });
  await first.close();
  await runChecked('chattr', ['+i', sub]);
  immutable.push(sub);
  const err = await t.throwsAsync(openStore({ kind: 'sqlite', path }));
  t.true(err.message.includes(path), err.message);
  t.regex(err.message, /unable to open database file \(SQLite code 14\).*directory exists and is writable/);
});

test('another process holding the write lock past the busy timeout: the write fails as "busy" within the bound, and works once the lock is gone', async (t) => {
  const path = fresh();
  const store = await openStore({ kind: 'sqlite', path, busyTimeoutMs: 300 });
  t.teardown(() => store.close());
  const holder = spawn(
    process.execPath,
    [
      '-e',
      `const { DatabaseSync } = require('node:sqlite'); const db = new DatabaseSync(${JSON.stringify(path)});
       db.exec('BEGIN IMMEDIATE'); console.log('locked'); setTimeout(() => {}, 30000);`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.teardown(() => void holder.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    holder.stdout.once('data', () => resolve());
    holder.once('exit', (code) => reject(new Error(`the lock holder exited (${code})`)));
  });
  const started = performance.now();
  const err = await t.throwsAsync(store.createPin(pin('blocked')), { instanceOf: StoreError });
  const ms = performance.now() - started;
  t.is(err.kind, 'busy');
  t.regex(err.operator, /database is locked \(SQLite code 5\)/);
  t.true(err.operator.includes(`another process holds the write lock on ${path}`), err.operator);
  t.true(ms >= 250 && ms < 2_000, `failed after ${Math.round(ms)} ms (busy timeout 300 ms)`);
  holder.kill('SIGKILL');
  await new Promise((r) => holder.once('exit', r));
  t.true((await store.createPin(pin('later'))).created);
});

test('a damaged database file: opening fails as damaged, naming the file and the way back', async (t) => {
  const path = fresh();
  writeFileSync(path, Buffer.alloc(8192, 0x5a));
  const err = await t.throwsAsync(openStore({ kind: 'sqlite', path }));
  t.true(err.message.includes(path), err.message);
  t.regex(err.message, /file is not a database \(SQLite code 26\).*damaged or not a pullgate database.*backup/);
});
