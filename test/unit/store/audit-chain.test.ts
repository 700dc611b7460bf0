// The hash chain's verifier on hand-built trails: each kind of tampering is reported, at the right seq.
import test from 'ava';
import {
  GENESIS,
  chainHash,
  normaliseAuditInput,
  verifyChain,
  type ChainHead,
} from '../../../src/store/audit-chain.ts';
import type { AuditProblem, AuditRecord } from '../../../src/store/types.ts';

/** A valid trail of `n` records and its head, built the way the store appends. */
function trail(n: number): { records: AuditRecord[]; head: ChainHead } {
  const records: AuditRecord[] = [];
  let prevHash = GENESIS;
  for (let seq = 1; seq <= n; seq++) {
    const base = {
      seq,
      at: new Date(1_700_000_000_000 + seq),
      kind: 'allow' as const,
      actor: 'policy',
      digest: `sha256:${String(seq).padStart(64, '0')}`,
      detail: { seq },
    };
    const record = { ...base, prevHash, hash: chainHash(prevHash, base) };
    records.push(record);
    prevHash = record.hash;
  }
  return { records, head: { seq: n, hash: prevHash } };
}

/** Re-hashes a record in place, as someone who knows the scheme would after editing it. */
function rehash(r: AuditRecord): AuditRecord {
  return { ...r, hash: chainHash(r.prevHash, r) };
}

const found = (problems: AuditProblem[]) => problems.map((p) => [p.seq, p.problem]);

test('an intact trail verifies, also when streamed', async (t) => {
  const { records, head } = trail(5);
  t.deepEqual(await verifyChain(records, head), { records: 5, problems: [] });
  async function* stream() {
    yield* records;
  }
  t.deepEqual(await verifyChain(stream(), head), { records: 5, problems: [] });
  t.deepEqual(await verifyChain([], { seq: 0, hash: GENESIS }), { records: 0, problems: [] });
});

test('a field edited in place is modified at that seq', async (t) => {
  const { records, head } = trail(5);
  records[1] = { ...records[1]!, kind: 'deny' };
  t.deepEqual(found((await verifyChain(records, head)).problems), [[2, 'modified']]);
});

test('a record edited and re-hashed breaks the link after it', async (t) => {
  const { records, head } = trail(5);
  records[2] = rehash({ ...records[2]!, actor: 'mallory' });
  t.deepEqual(found((await verifyChain(records, head)).problems), [[4, 'broken-link']]);
});

test('the newest record edited and re-hashed disagrees with the chain head', async (t) => {
  const { records, head } = trail(5);
  records[4] = rehash({ ...records[4]!, actor: 'mallory' });
  t.deepEqual(found((await verifyChain(records, head)).problems), [[5, 'modified']]);
});

test('a record deleted from the middle is reported before the next one', async (t) => {
  const { records, head } = trail(6);
  records.splice(3, 1);
  const { problems } = await verifyChain(records, head);
  t.deepEqual(found(problems), [[5, 'deleted-before']]);
  t.regex(problems[0]!.message, /records 4\.\.4 are missing/);
});

test('the first records deleted', async (t) => {
  const { records, head } = trail(4);
  t.deepEqual(found((await verifyChain(records.slice(2), head)).problems), [[3, 'deleted-before']]);
});

test('records cut off the end are caught by the chain head', async (t) => {
  const { records, head } = trail(6);
  const { problems } = await verifyChain(records.slice(0, 4), head);
  t.deepEqual(found(problems), [[7, 'deleted-before']]);
  t.regex(problems[0]!.message, /records 5\.\.6 are missing at the end/);
});

test('a forged record in place of a deleted one is inserted at its seq, nothing else', async (t) => {
  const { records, head } = trail(6);
  records[3] = { seq: 4, at: new Date(0), kind: 'allow', actor: 'mallory', prevHash: GENESIS, hash: 'f'.repeat(64) };
  t.deepEqual(found((await verifyChain(records, head)).problems), [[4, 'inserted']]);
});

test('a forged record with a self-consistent hash in place of another is still inserted', async (t) => {
  const { records, head } = trail(6);
  records[3] = rehash({ ...records[3]!, actor: 'mallory', prevHash: 'a'.repeat(64) });
  t.deepEqual(found((await verifyChain(records, head)).problems), [[4, 'inserted']]);
});

test('a record appended past the head, even correctly chained, is inserted', async (t) => {
  const { records, head } = trail(4);
  const last = records.at(-1)!;
  const forged = { seq: 5, at: new Date(), kind: 'allow' as const, actor: 'mallory' };
  records.push({ ...forged, prevHash: last.hash, hash: chainHash(last.hash, forged) });
  t.deepEqual(found((await verifyChain(records, head)).problems), [[5, 'inserted']]);
});

test('a reused or non-positive seq is inserted', async (t) => {
  const { records, head } = trail(3);
  const dup = { ...records[1]!, actor: 'mallory' };
  t.deepEqual(found((await verifyChain([records[0]!, records[1]!, dup, records[2]!], head)).problems), [
    [2, 'inserted'],
  ]);
  const zero = { ...records[0]!, seq: 0 };
  t.deepEqual(found((await verifyChain([zero, ...records], head)).problems), [[0, 'inserted']]);
});

test('a missing chain head is reported', async (t) => {
  const { records } = trail(3);
  t.deepEqual(found((await verifyChain(records, undefined)).problems), [[3, 'broken-link']]);
  t.deepEqual((await verifyChain([], undefined)).problems, []);
});

test('the hash covers every field, seq and time included', (t) => {
  const base = {
    seq: 1,
    at: new Date(1000),
    kind: 'allow' as const,
    actor: 'a',
    upstream: 'u',
    repository: 'r',
    tag: 't',
    digest: 'd',
    rule: 'x',
    reasons: ['why'],
    detail: { k: 1 },
  };
  const h = chainHash(GENESIS, base);
  const variants = [
    { ...base, seq: 2 },
    { ...base, at: new Date(1001) },
    { ...base, kind: 'deny' as const },
    { ...base, actor: 'b' },
    { ...base, upstream: 'v' },
    { ...base, repository: 's' },
    { ...base, tag: 'u' },
    { ...base, digest: 'e' },
    { ...base, rule: 'y' },
    { ...base, reasons: ['other'] },
    { ...base, detail: { k: 2 } },
  ];
  for (const v of variants) t.not(chainHash(GENESIS, v), h);
  t.not(chainHash('1'.repeat(64), base), h, 'and the previous hash');
  t.is(chainHash(GENESIS, { ...base, detail: { k: 1 } }), h, 'deterministic');
});

test('detail key order does not change the hash', (t) => {
  const a = { seq: 1, at: new Date(0), kind: 'admin' as const, actor: 'a', detail: { b: 1, a: { y: 2, x: 1 } } };
  const b = { ...a, detail: { a: { x: 1, y: 2 }, b: 1 } };
  t.is(chainHash(GENESIS, a), chainHash(GENESIS, b));
});

test('normalising keeps what JSON keeps, and names the kind when detail is not JSON', (t) => {
  const when = new Date(5000);
  const n = normaliseAuditInput({
    kind: 'admin',
    actor: 'a',
    tag: undefined,
    detail: { when, gone: undefined, list: [1, undefined] },
    extra: 'dropped',
  } as never);
  t.deepEqual(n, { kind: 'admin', actor: 'a', detail: { when: when.toISOString(), list: [1, null] } });
  t.throws(() => normaliseAuditInput({ kind: 'admin', actor: 'a', detail: { n: 1n } }), {
    message: /audit record of kind admin cannot be stored/,
  });
});
