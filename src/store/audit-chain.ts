// The audit trail's hash chain, as pure functions: each record's hash covers its own fields and the
// previous record's hash, and a chain-head row holds the newest record's seq and hash. Verification
// looks at every link twice (from the record before and from the record after), which tells an
// edited record from a foreign one and says at which seq it happened.
import { createHash } from 'node:crypto';
import type { AuditInput, AuditProblem, AuditRecord } from './types.ts';

export const GENESIS = '0'.repeat(64);

/** The newest record's seq and hash, as written by the append that added it. */
export interface ChainHead {
  seq: number;
  hash: string;
}

type Unhashed = Omit<AuditRecord, 'prevHash' | 'hash'>;

/**
 * The record as it will be stored and read back: known fields only, `reasons` and `detail` through
 * JSON (a Date becomes its ISO string, undefined members vanish), so its hash verifies after reading.
 */
export function normaliseAuditInput(e: AuditInput): AuditInput {
  const out: AuditInput = { kind: e.kind, actor: e.actor };
  for (const key of ['upstream', 'repository', 'tag', 'digest', 'rule'] as const) {
    const v = e[key];
    if (v !== undefined && v !== null) out[key] = String(v);
  }
  try {
    if (e.reasons !== undefined) out.reasons = JSON.parse(JSON.stringify(e.reasons)) as string[];
    if (e.detail !== undefined) out.detail = JSON.parse(JSON.stringify(e.detail)) as Record<string, unknown>;
  } catch (err) {
    throw new Error(
      `audit record of kind ${e.kind} cannot be stored: its reasons or detail are not JSON (${(err as Error).message})`,
    );
  }
  return out;
}

/** The fields the hash covers, in a fixed order with absent fields as null and object keys sorted. */
function canonical(r: Unhashed): string {
  return JSON.stringify([
    r.seq,
    r.at.getTime(),
    r.kind,
    r.actor,
    r.upstream ?? null,
    r.repository ?? null,
    r.tag ?? null,
    r.digest ?? null,
    r.rule ?? null,
    r.reasons ?? null,
    r.detail === undefined ? null : sortKeys(r.detail),
  ]);
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object')
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
    );
  return v;
}

export function chainHash(prevHash: string, record: Unhashed): string {
  return createHash('sha256').update(prevHash).update(canonical(record)).digest('hex');
}

/** A record waiting for its successor, which decides whether the link after it holds. */
interface Pending {
  record: AuditRecord;
  linkIn: boolean | undefined;
  afterForeign: boolean;
}

/**
 * Checks records streamed in ascending seq order against the chain head. A link is checked only
 * between consecutive seqs (a gap is reported as a deletion instead). Per record, the first that applies:
 * - `deleted-before`: seqs are missing before it (or, at seq head+1, at the end of the trail);
 * - `inserted`: it lies past the chain head, reuses a seq, or neither links to its predecessor nor is
 *   linked from its successor (a forged record put in place of another);
 * - `modified`: its content does not match its own hash, or (newest record) its hash is not the head's;
 * - `broken-link`: it does not carry its predecessor's hash although both verify alone: one of the
 *   two was rewritten and its hash recomputed.
 */
export async function verifyChain(
  records: Iterable<AuditRecord> | AsyncIterable<AuditRecord>,
  head: ChainHead | undefined,
): Promise<{ records: number; problems: AuditProblem[] }> {
  const problems: AuditProblem[] = [];
  let count = 0;
  let pending: Pending | undefined;

  /** Settles the pending record once the state of its outgoing link is known; says whether it is foreign. */
  const settle = (p: Pending, linkOut: boolean | undefined, isNewest: boolean): boolean => {
    const { record: r, linkIn } = p;
    if (head && r.seq > head.seq) {
      problems.push({
        seq: r.seq,
        problem: 'inserted',
        message: `record ${r.seq} lies past the chain head (record ${head.seq}): it was not appended by the store`,
      });
      return true;
    }
    if (linkIn === false && linkOut === false) {
      problems.push({
        seq: r.seq,
        problem: 'inserted',
        message: `record ${r.seq} links to neither record ${r.seq - 1} nor record ${r.seq + 1}: it was put in place of the original`,
      });
      return true;
    }
    if (r.hash !== chainHash(r.prevHash, r)) {
      problems.push({
        seq: r.seq,
        problem: 'modified',
        message: `record ${r.seq}'s content does not match its hash: it was edited after it was written`,
      });
    } else if (linkIn === false && !p.afterForeign) {
      problems.push({
        seq: r.seq,
        problem: 'broken-link',
        message: `record ${r.seq} does not carry record ${r.seq - 1}'s hash: one of the two was rewritten with a recomputed hash`,
      });
    } else if (isNewest && linkOut === false) {
      problems.push({
        seq: r.seq,
        problem: 'modified',
        message: `record ${r.seq}'s hash is not the one the chain head recorded: it (or the head) was rewritten`,
      });
    }
    return false;
  };

  for await (const r of records) {
    count++;
    const expected = pending ? pending.record.seq + 1 : 1;
    // A seq that is not a whole number (SQLite stores what it is given) fails every comparison below.
    if (!Number.isSafeInteger(r.seq) || r.seq < expected) {
      problems.push({
        seq: r.seq,
        problem: 'inserted',
        message: `record ${r.seq} reuses a seq or is out of sequence (expected ${expected} or later)`,
      });
      continue;
    }
    const linkIn = r.seq === expected ? r.prevHash === (pending ? pending.record.hash : GENESIS) : undefined;
    const foreign = pending ? settle(pending, linkIn, false) : false;
    if (r.seq > expected) {
      problems.push({
        seq: r.seq,
        problem: 'deleted-before',
        message: `records ${expected}..${r.seq - 1} are missing before record ${r.seq}`,
      });
    }
    pending = { record: r, linkIn, afterForeign: foreign };
  }

  const newestSeq = pending?.record.seq ?? 0;
  if (pending) {
    const linkOut = head && head.seq === newestSeq ? head.hash === pending.record.hash : undefined;
    settle(pending, linkOut, true);
  }
  if (!head) {
    if (count > 0)
      problems.push({
        seq: newestSeq,
        problem: 'broken-link',
        message: 'the chain head is missing: whether records were cut off the end cannot be told',
      });
  } else if (head.seq > newestSeq) {
    problems.push({
      seq: head.seq + 1,
      problem: 'deleted-before',
      message: `records ${newestSeq + 1}..${head.seq} are missing at the end of the trail: the chain head says the newest record is ${head.seq}`,
    });
  }
  return { records: count, problems };
}
