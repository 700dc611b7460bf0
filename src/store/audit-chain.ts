// The audit trail's hash chain, as pure functions: each record's hash covers its own fields and
// the previous record's hash, so a modified, inserted or deleted record breaks the chain there.
import { createHash } from 'node:crypto';
import type { AuditProblem, AuditRecord } from './types.ts';

export const GENESIS = '0'.repeat(64);

type Hashed = Omit<AuditRecord, 'prevHash' | 'hash'>;

/** The fields the hash covers, in a fixed order with absent fields as null. */
function canonical(r: Hashed): string {
  return JSON.stringify([
    r.seq, r.at.getTime(), r.kind, r.actor, r.upstream ?? null, r.repository ?? null, r.tag ?? null, r.digest ?? null,
    r.rule ?? null, r.reasons ?? null, r.detail === undefined ? null : sortKeys(r.detail),
  ]);
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]));
  return v;
}

export function chainHash(prevHash: string, record: Hashed): string {
  return createHash('sha256').update(prevHash).update(canonical(record)).digest('hex');
}

/** Checks records in ascending seq order and says where the chain is broken and how. */
export function verifyChain(records: readonly AuditRecord[]): AuditProblem[] {
  const problems: AuditProblem[] = [];
  let prevHash = GENESIS;
  let prevSeq = 0;
  for (const r of records) {
    if (r.seq !== prevSeq + 1) {
      problems.push(r.seq > prevSeq + 1
        ? { seq: r.seq, problem: 'deleted-before', message: `records ${prevSeq + 1}..${r.seq - 1} are missing before record ${r.seq}` }
        : { seq: r.seq, problem: 'inserted', message: `record ${r.seq} is out of sequence after record ${prevSeq}` });
    } else if (r.prevHash !== prevHash) {
      problems.push({ seq: r.seq, problem: r.hash === chainHash(r.prevHash, r) ? 'inserted' : 'broken-link', message: `record ${r.seq} does not link to record ${prevSeq}'s hash` });
    }
    if (r.hash !== chainHash(r.prevHash, r)) {
      problems.push({ seq: r.seq, problem: 'modified', message: `record ${r.seq}'s content does not match its hash` });
    }
    prevHash = r.hash;
    prevSeq = r.seq;
  }
  return problems;
}
