// The backup and restore procedures of docs/deploy.md, run as written: an online SQLite copy
// (VACUUM INTO, as the container's node can run it) taken while the proxy's store is open, and a
// PostgreSQL pg_dump of the schema restored with pg_restore. The restored store has the same pins,
// revocations and audit trail, the chain verifies, and appends go on from where it was.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';
import { runChecked } from '../harness/index.ts';
import { openStore } from '../../src/store/open.ts';
import type { Store } from '../../src/store/types.ts';

const PG_URL = process.env.PULLGATE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const D = (c: string) => `sha256:${c.repeat(64)}`;
const dir = mkdtempSync(join(tmpdir(), 'pullgate-backup-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

async function fill(s: Store): Promise<void> {
  await s.createPin({
    upstream: 'r',
    repository: 'team/app',
    tag: '1.0',
    digest: D('a'),
    rule: 'default',
    attestors: [],
  });
  await s.revoke(D('b'), 'CVE-2099-0001', 'admin');
  for (let i = 0; i < 5; i++)
    await s.appendAudit({
      kind: 'allow',
      actor: 'policy',
      upstream: 'r',
      repository: 'team/app',
      digest: D(String(i)),
    });
}

async function same(t: import('ava').ExecutionContext, restored: Store): Promise<void> {
  t.is((await restored.getPin('r', 'team/app', '1.0'))?.digest, D('a'));
  t.is((await restored.getRevocation(D('b')))?.reason, 'CVE-2099-0001');
  const before = await restored.verifyAudit();
  t.true(before.ok, JSON.stringify(before.problems));
  t.is(before.records, 5);
  const next = await restored.appendAudit({ kind: 'admin', actor: 'admin', detail: { after: 'restore' } });
  t.is(next.seq, 6, 'the trail goes on from where the backup left it');
  t.true((await restored.verifyAudit()).ok);
}

test('SQLite: an online copy with VACUUM INTO while the store is open restores to the same state', async (t) => {
  const path = join(dir, 'live.db');
  const live = await openStore({ kind: 'sqlite', path });
  t.teardown(() => live.close());
  await fill(live);
  // docs/deploy.md: node -e "new (require('node:sqlite').DatabaseSync)(DB).exec(\"VACUUM INTO 'COPY'\")"
  const copy = join(dir, 'backup.db');
  await runChecked(process.execPath, [
    '-e',
    `new (require('node:sqlite').DatabaseSync)(${JSON.stringify(path)}).exec("VACUUM INTO '${copy}'")`,
  ]);
  await live.appendAudit({ kind: 'admin', actor: 'admin', detail: { after: 'backup' } });
  const restored = await openStore({ kind: 'sqlite', path: copy });
  t.teardown(() => restored.close());
  await same(t, restored);
  const check = new DatabaseSync(copy);
  t.is((check.prepare('PRAGMA integrity_check').get() as { integrity_check: string }).integrity_check, 'ok');
  check.close();
});

test('PostgreSQL: pg_dump of the schema, dropped, pg_restore: the same state, and the sequences go on', async (t) => {
  const schema = `pgbackup_${process.pid}_${Date.now()}`;
  const admin = async (sql: string) => {
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  t.teardown(() => admin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));
  const live = await openStore({ kind: 'postgres', url: PG_URL, schema });
  await fill(live);
  await live.recordDrift('r', 'team/app', '1.0', D('a'), D('c'));
  const dump = join(dir, 'pullgate.dump');
  await runChecked('pg_dump', ['--dbname', PG_URL, '--schema', schema, '--format', 'custom', '--file', dump]);
  await live.close();
  await admin(`DROP SCHEMA ${schema} CASCADE`);
  await runChecked('pg_restore', ['--dbname', PG_URL, '--exit-on-error', dump]);
  const restored = await openStore({ kind: 'postgres', url: PG_URL, schema });
  t.teardown(() => restored.close());
  await same(t, restored);
  const drift = await restored.recordDrift('r', 'team/app', '1.0', D('a'), D('d'));
  t.is(drift.event.id, 2, 'the drift id sequence was restored too');
});
