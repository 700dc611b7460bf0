// One behaviour suite for every Store backend: each backend's test file registers it with a factory.
import type { TestFn } from 'ava';
import { migrations } from '../../src/store/migrations.ts';
import type { Store, StoreEvent } from '../../src/store/types.ts';

export interface Backend {
  /** A fresh, empty store. */
  open(): Promise<Store>;
  /** Runs raw SQL against the store's database, as an attacker with database access would. */
  tamper(store: Store, sql: string): Promise<void>;
  /** Opens another store on the same database, as a restarted or upgraded proxy does. */
  reopen(store: Store): Promise<Store>;
}

const D = (c: string) => `sha256:${c.repeat(64)}`;

export function conformance(test: TestFn, backend: Backend): void {
  const withStore = async (fn: (s: Store) => Promise<void>) => {
    const s = await backend.open();
    try {
      await fn(s);
    } finally {
      await s.close();
    }
  };

  test('upgrades: a restart keeps the data and migrates nothing twice; a schema newer than this pullgate is refused', async (t) => {
    const known = migrations('sqlite').length;
    t.is(migrations('postgres').length, known);
    const s = await backend.open();
    await s.revoke(D('a'), 'kept across restarts', 'admin');
    await s.close();
    const again = await backend.reopen(s);
    t.is((await again.getRevocation(D('a')))?.reason, 'kept across restarts');
    await again.close();
    // what a newer pullgate leaves behind: one more migration recorded
    await backend.tamper(s, `INSERT INTO schema_migrations (version, applied_at) VALUES (${known + 1}, 0)`);
    const err = await t.throwsAsync(backend.reopen(s));
    t.regex(
      err?.message ?? '',
      new RegExp(
        `schema is at version ${known + 1}, newer than this pullgate knows \\(${known}\\): a newer pullgate migrated it.*restore the backup`,
      ),
    );
    await backend.tamper(s, `DELETE FROM schema_migrations WHERE version = ${known + 1}`);
    await (await backend.reopen(s)).close();
  });

  test('pins: first writer wins, compare-and-set moves, delete, list', (t) =>
    withStore(async (s) => {
      const first = await s.createPin({
        upstream: 'r',
        repository: 'a/b',
        tag: '1',
        digest: D('a'),
        rule: 'default',
        attestors: ['ci'],
      });
      t.true(first.created);
      t.deepEqual(first.pin.attestors, ['ci']);
      const second = await s.createPin({
        upstream: 'r',
        repository: 'a/b',
        tag: '1',
        digest: D('b'),
        rule: 'default',
        attestors: [],
      });
      t.false(second.created);
      t.is(second.pin.digest, D('a'));
      t.false(await s.movePin('r', 'a/b', '1', D('c'), D('b'), 'x', []), 'a stale from-digest does not move the pin');
      t.true(await s.movePin('r', 'a/b', '1', D('a'), D('b'), 'rule:x', ['ci']));
      t.is((await s.getPin('r', 'a/b', '1'))?.digest, D('b'));
      await s.createPin({ upstream: 'r', repository: 'c/d', tag: '2', digest: D('c'), rule: 'default', attestors: [] });
      t.deepEqual(
        (await s.listPins({ repository: 'c/d' })).map((p) => p.tag),
        ['2'],
      );
      t.is((await s.listPins()).length, 2);
      t.true(await s.deletePin('r', 'a/b', '1'));
      t.false(await s.deletePin('r', 'a/b', '1'));
      t.is(await s.getPin('r', 'a/b', '1'), undefined);
    }));

  test('drift: one open event per moved-to digest, counted; resolving opens a new one next time', (t) =>
    withStore(async (s) => {
      const a = await s.recordDrift('r', 'a', '1', D('a'), D('b'));
      t.true(a.isNew);
      const again = await s.recordDrift('r', 'a', '1', D('a'), D('b'));
      t.false(again.isNew);
      t.is(again.event.id, a.event.id);
      t.is(again.event.count, 2);
      t.true((await s.recordDrift('r', 'a', '1', D('a'), D('c'))).isNew);
      t.is((await s.listDrift({ unresolvedOnly: true })).length, 2);
      t.true((await s.resolveDrift(a.event.id))?.resolved);
      t.is((await s.listDrift({ unresolvedOnly: true })).length, 1);
      t.true((await s.recordDrift('r', 'a', '1', D('a'), D('b'))).isNew);
      t.is((await s.listDrift()).length, 3);
    }));

  test('manifests and admissions: blobs and children are admitted per repository, revocation withdraws them', (t) =>
    withStore(async (s) => {
      const bytes = Buffer.from('{"schemaVersion":2}');
      await s.putManifest({ digest: D('1'), mediaType: 'application/vnd.oci.image.index.v1+json', bytes });
      await s.putManifest({ digest: D('1'), mediaType: 'application/vnd.oci.image.index.v1+json', bytes });
      t.true((await s.getManifest(D('1')))?.bytes.equals(bytes));
      t.is(await s.getManifest(D('9')), undefined);
      await s.admit({ upstream: 'r', repository: 'a', digest: D('1'), blobs: [], children: [D('2')] });
      await s.admit({ upstream: 'r', repository: 'a', digest: D('2'), blobs: [D('c'), D('d')], children: [] });
      t.true((await s.manifestsWithBlob('r', 'a', D('c'), 10)).length > 0);
      t.false((await s.manifestsWithBlob('r', 'other', D('c'), 10)).length > 0);
      t.false((await s.manifestsWithBlob('r', 'a', D('e'), 10)).length > 0);
      t.is(await s.admittedParent('r', 'a', D('2')), D('1'));
      t.is(await s.admittedParent('r', 'other', D('2')), undefined);
      t.truthy(await s.isAdmitted('r', 'a', D('1')));
      await s.revoke(D('2'), 'bad', 'admin');
      t.false(
        (await s.manifestsWithBlob('r', 'a', D('c'), 10)).length > 0,
        'blobs of a revoked manifest are no longer admitted',
      );
      t.is(await s.isAdmitted('r', 'a', D('2')), undefined);
      await s.revoke(D('1'), 'bad', 'admin');
      t.is(await s.admittedParent('r', 'a', D('2')), undefined, 'a revoked index admits no children');
    }));

  test('audited changes write their record in the same transaction, and only when something changed', (t) =>
    withStore(async (s) => {
      await s.revoke(D('a'), 'CVE-1', 'admin:alice', {
        kind: 'revoke',
        actor: 'admin:alice',
        digest: D('a'),
        reasons: ['CVE-1'],
      });
      t.false(await s.unrevoke(D('b'), { kind: 'unrevoke', actor: 'admin:alice', digest: D('b') }));
      t.true(await s.unrevoke(D('a'), { kind: 'unrevoke', actor: 'admin:alice', digest: D('a') }));
      t.deepEqual(
        (await s.queryAudit({})).map((r) => `${r.kind} ${r.digest}`),
        [`unrevoke ${D('a')}`, `revoke ${D('a')}`],
        'no record for the unrevoke that changed nothing',
      );
      const grant = await s.createGrant(
        { scope: { digest: D('c') }, reason: 'incident', actor: 'admin:bob', expiresAt: new Date(Date.now() + 60_000) },
        (g) => ({ kind: 'grant', actor: 'admin:bob', digest: D('c'), detail: { grant: g.id } }),
      );
      t.is((await s.queryAudit({ kind: 'grant' }))[0]?.detail?.grant, grant.id);
      t.true((await s.verifyAudit()).ok);
    }));

  test('approving a pin moves it, resolves its drift and records the approval at once; drift of a tag resolves together', (t) =>
    withStore(async (s) => {
      await s.createPin({ upstream: 'r', repository: 'a', tag: '1', digest: D('1'), rule: 'default', attestors: [] });
      const { event } = await s.recordDrift('r', 'a', '1', D('1'), D('2'), (e) => ({
        kind: 'drift',
        actor: 'proxy',
        digest: D('2'),
        detail: { drift: e.id },
      }));
      const again = await s.recordDrift('r', 'a', '1', D('1'), D('2'), () => ({ kind: 'drift', actor: 'proxy' }));
      t.false(again.isNew);
      t.is((await s.queryAudit({ kind: 'drift' })).length, 1, 'a drift is audited once, when new');
      const approved = await s.approvePin('r', 'a', '1', D('2'), 'admin:alice');
      t.is(approved.pin.digest, D('2'));
      t.is(approved.from, D('1'));
      t.deepEqual(approved.resolvedDrift, [event.id]);
      t.deepEqual(await s.listDrift({ unresolvedOnly: true }), []);
      const record = (await s.queryAudit({ kind: 'approve' }))[0];
      t.is(record?.actor, 'admin:alice');
      t.deepEqual(record?.detail, { from: D('1'), resolvedDrift: [event.id] });
      const fresh = await s.approvePin('r', 'a', 'new', D('3'), 'admin:alice');
      t.is(fresh.from, undefined);
      t.is(fresh.pin.rule, 'admin');

      await s.recordDrift('r', 'a', '1', D('2'), D('4'));
      await s.recordDrift('r', 'a', '1', D('2'), D('5'));
      const ids = await s.resolveTagDrift('r', 'a', '1', (i) => ({
        kind: 'drift',
        actor: 'proxy',
        detail: { resolved: i },
      }));
      t.is(ids.length, 2);
      t.deepEqual(await s.resolveTagDrift('r', 'a', '1', () => ({ kind: 'drift', actor: 'proxy' })), []);
      t.is((await s.queryAudit({ kind: 'drift' })).length, 2, 'one record for the resolution, none for a no-op');
    }));

  test('admissions keep the tag they were pulled by; a blob names the admitted manifests listing it, newest first', (t) =>
    withStore(async (s) => {
      await s.admit({ upstream: 'r', repository: 'a', digest: D('1'), blobs: [D('c')], children: [], tag: 'v1' });
      await new Promise((r) => setTimeout(r, 5));
      await s.admit({ upstream: 'r', repository: 'a', digest: D('2'), blobs: [D('c'), D('d')], children: [] });
      t.is((await s.getAdmission('r', 'a', D('1')))?.tag, 'v1');
      t.is((await s.getAdmission('r', 'a', D('2')))?.tag, undefined);
      t.is(await s.getAdmission('r', 'other', D('1')), undefined);
      t.deepEqual(await s.manifestsWithBlob('r', 'a', D('c'), 10), [D('2'), D('1')]);
      t.deepEqual(await s.manifestsWithBlob('r', 'a', D('c'), 1), [D('2')]);
      await s.admit({ upstream: 'r', repository: 'a', digest: D('1'), blobs: [D('c')], children: [] });
      t.is((await s.getAdmission('r', 'a', D('1')))?.tag, undefined, 'a later pull by digest replaces the context');
      await s.revoke(D('2'), 'bad', 'admin');
      t.deepEqual(await s.manifestsWithBlob('r', 'a', D('c'), 10), [D('1')]);
      t.is(await s.getAdmission('r', 'a', D('2')), undefined, 'a revoked digest has no admission');
      const recent = await s.recentAdmissions(new Date(Date.now() - 60_000), 10);
      t.deepEqual(
        recent.map((a) => [a.repository, a.digest, a.tag]),
        [['a', D('1'), undefined]],
        'recent admissions leave revoked digests out',
      );
      t.deepEqual(await s.recentAdmissions(new Date(Date.now() + 60_000), 10), []);
    }));

  test('revoking an index withdraws the platform manifests admitted through it, unless another live index lists them', (t) =>
    withStore(async (s) => {
      // Index 1 lists children 2 and 3; index 4 lists child 3 too. The gate admits each child with its blobs.
      await s.admit({ upstream: 'r', repository: 'a', digest: D('1'), blobs: [], children: [D('2'), D('3')] });
      await s.admit({ upstream: 'r', repository: 'a', digest: D('4'), blobs: [], children: [D('3')] });
      await s.admit({ upstream: 'r', repository: 'a', digest: D('2'), blobs: [D('b')], children: [] });
      await s.admit({ upstream: 'r', repository: 'a', digest: D('3'), blobs: [D('c')], children: [] });
      await s.admit({ upstream: 'r', repository: 'other', digest: D('2'), blobs: [D('b')], children: [] });
      await s.revoke(D('1'), 'compromised', 'admin');
      t.is(await s.isAdmitted('r', 'a', D('2')), undefined, 'a child only index 1 listed is withdrawn');
      t.false((await s.manifestsWithBlob('r', 'a', D('b'), 10)).length > 0, 'and so are its blobs');
      t.truthy(await s.isAdmitted('r', 'a', D('3')), 'a child that index 4 also lists stays');
      t.true((await s.manifestsWithBlob('r', 'a', D('c'), 10)).length > 0);
      t.is(await s.admittedParent('r', 'a', D('3')), D('4'));
      t.true(
        (await s.manifestsWithBlob('r', 'other', D('b'), 10)).length > 0,
        'the same manifest admitted on its own in another repository stays',
      );
      t.true(await s.unrevoke(D('1')));
      t.is(
        await s.admittedParent('r', 'a', D('2')),
        D('1'),
        'after unrevoking, the index vouches for its children again',
      );
      t.false(
        (await s.manifestsWithBlob('r', 'a', D('b'), 10)).length > 0,
        'their blobs come back when the child is admitted again',
      );
      await s.admit({ upstream: 'r', repository: 'a', digest: D('2'), blobs: [D('b')], children: [] });
      t.true((await s.manifestsWithBlob('r', 'a', D('b'), 10)).length > 0);
    }));

  test('every change publishes its own event to this process before it returns, and only when something changed', (t) =>
    withStore(async (s) => {
      const events: StoreEvent[] = [];
      s.subscribe(() => {
        throw new Error('a broken listener must not stop the others or the change');
      });
      const off = s.subscribe((e) => events.push(e));
      const take = () => events.splice(0).map((e) => JSON.stringify(e));
      const pin = { upstream: 'r', repository: 'a', tag: '1', digest: D('a'), rule: 'default', attestors: [] };
      await s.createPin(pin);
      t.deepEqual(take(), [
        JSON.stringify({ type: 'pin-changed', upstream: 'r', repository: 'a', tag: '1', digest: D('a') }),
      ]);
      await s.createPin({ ...pin, digest: D('b') });
      t.deepEqual(take(), [], 'a pin that already existed changed nothing');
      t.false(await s.movePin('r', 'a', '1', D('c'), D('b'), 'x', []));
      t.deepEqual(take(), []);
      await s.movePin('r', 'a', '1', D('a'), D('b'), 'x', []);
      t.deepEqual(take(), [
        JSON.stringify({ type: 'pin-changed', upstream: 'r', repository: 'a', tag: '1', digest: D('b') }),
      ]);
      await s.deletePin('r', 'a', '1');
      t.deepEqual(take(), [JSON.stringify({ type: 'pin-changed', upstream: 'r', repository: 'a', tag: '1' })]);
      await s.revoke(D('c'), 'bad', 'admin');
      await s.unrevoke(D('c'));
      await s.unrevoke(D('c'));
      t.deepEqual(take(), [
        JSON.stringify({ type: 'revoked', digest: D('c') }),
        JSON.stringify({ type: 'unrevoked', digest: D('c') }),
      ]);
      const grant = await s.createGrant({
        scope: { upstream: 'r', repository: 'a' },
        reason: 'x',
        actor: 'bob',
        expiresAt: new Date(Date.now() + 60_000),
      });
      await s.revokeGrant(grant.id);
      await s.revokeGrant(grant.id);
      t.deepEqual(take(), [
        JSON.stringify({ type: 'grant-changed', upstream: 'r', repository: 'a' }),
        JSON.stringify({ type: 'grant-changed', upstream: 'r', repository: 'a' }),
      ]);
      await s.publish({ type: 'policy-changed' });
      t.deepEqual(take(), [JSON.stringify({ type: 'policy-changed' })]);
      off();
      await s.publish({ type: 'policy-changed' });
      t.deepEqual(take(), [], 'unsubscribed');
    }));

  test('revocations: revoke, list, unrevoke, each published as an event', (t) =>
    withStore(async (s) => {
      const events: string[] = [];
      const off = s.subscribe((e) => events.push(`${e.type}:${e.digest ?? ''}`));
      const r = await s.revoke(D('a'), 'CVE-1', 'alice');
      t.is(r.reason, 'CVE-1');
      t.is((await s.getRevocation(D('a')))?.actor, 'alice');
      t.is((await s.listRevocations()).length, 1);
      t.true(await s.unrevoke(D('a')));
      t.false(await s.unrevoke(D('a')));
      await waitUntil(() => events.includes(`unrevoked:${D('a')}`));
      t.true(events.includes(`revoked:${D('a')}`));
      off();
    }));

  test('grants: by digest or repository, until they expire or are revoked', (t) =>
    withStore(async (s) => {
      const now = new Date();
      const byDigest = await s.createGrant({
        scope: { digest: D('a') },
        reason: 'incident',
        actor: 'bob',
        expiresAt: new Date(now.getTime() + 60_000),
      });
      await s.createGrant({
        scope: { upstream: 'r', repository: 'x/y' },
        reason: 'migration',
        actor: 'bob',
        expiresAt: new Date(now.getTime() + 60_000),
      });
      t.is((await s.findGrant('r', 'any', D('a'), now))?.id, byDigest.id);
      t.truthy(await s.findGrant('r', 'x/y', D('z'), now));
      t.is(await s.findGrant('r', 'x/y', D('z'), new Date(now.getTime() + 120_000)), undefined, 'expired');
      t.true(await s.revokeGrant(byDigest.id));
      t.is(await s.findGrant('r', 'any', D('a'), now), undefined);
      t.is((await s.listGrants()).length, 1);
      t.is((await s.listGrants(true)).length, 2);
    }));

  test('audit: a hash chain that verifies; queries by digest, image, kind and time, newest first', (t) =>
    withStore(async (s) => {
      const start = new Date(Date.now() - 1000);
      for (let i = 0; i < 5; i++) {
        await s.appendAudit({
          kind: i % 2 ? 'deny' : 'allow',
          actor: 'policy',
          upstream: 'r',
          repository: `team/app${i}`,
          digest: D(String(i)),
          reasons: [`r${i}`],
          detail: { i, nested: { b: 1, a: 2 } },
        });
      }
      const v = await s.verifyAudit();
      t.true(v.ok, JSON.stringify(v.problems));
      t.is(v.records, 5);
      t.deepEqual(
        (await s.queryAudit({ kind: 'deny' })).map((r) => r.seq),
        [4, 2],
      );
      t.is((await s.queryAudit({ digest: D('3') }))[0]?.repository, 'team/app3');
      t.is((await s.queryAudit({ image: 'r/team/app' })).length, 5);
      t.is((await s.queryAudit({ image: 'r/team/app_' })).length, 0, 'LIKE wildcards in the filter are literal');
      t.is((await s.queryAudit({ since: start, limit: 2 })).length, 2);
      t.is((await s.queryAudit({ until: start })).length, 0);
      t.deepEqual(
        (await s.queryAudit({ afterSeq: 3 })).map((r) => r.seq),
        [5, 4],
      );
      t.deepEqual((await s.queryAudit({ digest: D('1') }))[0]?.detail, { i: 1, nested: { b: 1, a: 2 } });
      t.is((await s.queryAudit({ limit: 0 })).length, 1, 'a limit below 1 returns one record');
      t.is((await s.queryAudit({ limit: Number.NaN })).length, 5, 'a limit that is not a number means the default');
    }));

  test('audit: one image exactly (upstream, repository, tag), and any of several kinds', (t) =>
    withStore(async (s) => {
      const rows = [
        { kind: 'deny', repository: 'team/app', tag: '1.0' },
        { kind: 'allow', repository: 'team/app', tag: '2.0' },
        { kind: 'pin', repository: 'team/app', tag: '2.0' },
        { kind: 'allow', repository: 'team/app-extra', tag: '1.0' },
        { kind: 'dryrun-deny', repository: 'team/app' },
      ] as const;
      for (const r of rows) await s.appendAudit({ actor: 'policy', upstream: 'r', digest: D('1'), ...r });
      await s.appendAudit({ kind: 'allow', actor: 'policy', upstream: 'q', repository: 'team/app', tag: '1.0' });
      const seqs = async (q: Parameters<Store['queryAudit']>[0]) => (await s.queryAudit(q)).map((r) => r.seq);
      t.deepEqual(await seqs({ upstream: 'r', repository: 'team/app', tag: '1.0' }), [1]);
      t.deepEqual(await seqs({ upstream: 'r', repository: 'team/app' }), [5, 3, 2, 1], 'not team/app-extra');
      t.deepEqual(await seqs({ repository: 'team/app', tag: '1.0' }), [6, 1]);
      t.deepEqual(await seqs({ upstream: 'r', kinds: ['allow', 'deny', 'dryrun-deny'] }), [5, 4, 2, 1]);
      t.deepEqual(await seqs({ upstream: 'r', repository: 'team/app', kinds: ['allow', 'deny'], limit: 1 }), [2]);
      t.deepEqual(await seqs({ kinds: ['allow'], kind: 'deny' }), [], 'kind and kinds both apply');
      t.deepEqual(await seqs({ kinds: [] }), [], 'no kinds match nothing');
      t.deepEqual(await seqs({ tag: "1.0' OR '1'='1" }), [], 'values are parameters, not SQL');
    }));

  test('audit: what is returned is what is stored and hashed, whatever the detail held', (t) =>
    withStore(async (s) => {
      const when = new Date('2024-05-01T00:00:00Z');
      const appended = await s.appendAudit({
        kind: 'admin',
        actor: 'a',
        tag: undefined,
        detail: { when, gone: undefined },
      });
      t.deepEqual(appended.detail, { when: when.toISOString() });
      t.false('tag' in appended);
      const [read] = await s.queryAudit({});
      t.deepEqual(read, appended);
      const v = await s.verifyAudit();
      t.true(v.ok, JSON.stringify(v.problems));
      await t.throwsAsync(s.appendAudit({ kind: 'admin', actor: 'a', detail: { n: 1n } }), {
        message: /cannot be stored/,
      });
      t.is((await s.verifyAudit()).records, 1, 'a rejected record leaves no trace');
    }));

  test('audit: verification reads one snapshot while appends go on, and pages through a long trail', (t) =>
    withStore(async (s) => {
      for (let i = 0; i < 2100; i++) await s.appendAudit({ kind: 'allow', actor: 'policy', detail: { i } });
      const appending = Promise.all(
        Array.from({ length: 60 }, (_, i) => s.appendAudit({ kind: 'deny', actor: 'policy', detail: { i } })),
      );
      const verifications = await Promise.all([s.verifyAudit(), s.verifyAudit(), s.verifyAudit()]);
      await appending;
      for (const v of verifications) t.true(v.ok, JSON.stringify(v.problems));
      const final = await s.verifyAudit();
      t.true(final.ok);
      t.is(final.records, 2160);
      await backend.tamper(s, "UPDATE audit SET actor = 'mallory' WHERE seq IN (1500, 2150)");
      t.deepEqual(
        (await s.verifyAudit()).problems.map((p) => [p.seq, p.problem]),
        [
          [1500, 'modified'],
          [2150, 'modified'],
        ],
      );
    }));

  test('audit tampering is detected and located: modified, deleted, inserted, cut off, appended', (t) =>
    withStore(async (s) => {
      for (let i = 0; i < 8; i++) await s.appendAudit({ kind: 'allow', actor: 'policy', digest: D(String(i)) });
      const problems = async () => (await s.verifyAudit()).problems.map((p) => [p.seq, p.problem]);
      await backend.tamper(s, "UPDATE audit SET kind = 'deny' WHERE seq = 2");
      t.deepEqual(await problems(), [[2, 'modified']]);
      await backend.tamper(s, "UPDATE audit SET kind = 'allow' WHERE seq = 2");
      t.true((await s.verifyAudit()).ok, 'restoring the content restores the chain');
      await backend.tamper(s, 'DELETE FROM audit WHERE seq = 4');
      t.deepEqual(await problems(), [[5, 'deleted-before']]);
      await backend.tamper(
        s,
        `INSERT INTO audit (seq, at, kind, actor, prev_hash, hash) VALUES (4, 0, 'allow', 'mallory', '${'0'.repeat(64)}', '${'f'.repeat(64)}')`,
      );
      t.deepEqual(await problems(), [[4, 'inserted']], 'a forged record in the gap');
      await backend.tamper(s, 'DELETE FROM audit WHERE seq >= 7');
      t.deepEqual(
        await problems(),
        [
          [4, 'inserted'],
          [9, 'deleted-before'],
        ],
        'the cut-off end too',
      );
      const appended = await s.appendAudit({ kind: 'admin', actor: 'ops' });
      t.is(appended.seq, 9, 'appends continue from the chain head, past the cut');
      t.deepEqual(
        await problems(),
        [
          [4, 'inserted'],
          [9, 'deleted-before'],
        ],
        'and do not hide it',
      );
      const last = (await s.queryAudit({ limit: 1 }))[0]!;
      await backend.tamper(
        s,
        `INSERT INTO audit (seq, at, kind, actor, prev_hash, hash) VALUES (10, 0, 'allow', 'mallory', '${last.hash}', '${'e'.repeat(64)}')`,
      );
      t.deepEqual(
        await problems(),
        [
          [4, 'inserted'],
          [9, 'deleted-before'],
          [10, 'inserted'],
        ],
        "a record appended behind the store's back",
      );
      t.is(
        (await s.appendAudit({ kind: 'admin', actor: 'ops' })).seq,
        11,
        'a forged record past the head does not block appends',
      );
    }));
}

async function waitUntil(cond: () => boolean, timeoutMs = 2000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
