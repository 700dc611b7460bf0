import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { openStore } from '../../src/store/open.ts';
import type { Store } from '../../src/store/types.ts';
import { conformance } from './conformance.ts';

const dir = mkdtempSync(join(tmpdir(), 'pullgate-sqlite-'));
const paths = new WeakMap<Store, string>();
let n = 0;
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

conformance(test, {
  async open() {
    const path = join(dir, `store-${++n}.db`);
    const s = await openStore({ kind: 'sqlite', path });
    paths.set(s, path);
    return s;
  },
  async tamper(s, sql) {
    const db = new DatabaseSync(paths.get(s)!);
    db.exec(sql);
    db.close();
  },
  async reopen(s) {
    const path = paths.get(s)!;
    const again = await openStore({ kind: 'sqlite', path });
    paths.set(again, path);
    return again;
  },
});
