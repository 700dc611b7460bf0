import test from 'ava';
import { classifyPg, classifySqlite, type FaultKind } from '../../../src/store/faults.ts';
import { nextHealth, type HealthState } from '../../../src/store/health.ts';

const pgCases: [string, Record<string, unknown>, FaultKind, RegExp][] = [
  [
    'statement timeout',
    { code: '57014', message: 'canceling statement due to statement timeout' },
    'timeout',
    /statementTimeoutMs/,
  ],
  [
    'lock timeout',
    { code: '55P03', message: 'canceling statement due to lock timeout' },
    'timeout',
    /lockTimeoutMs.*pg_locks/,
  ],
  [
    'idle in transaction',
    { code: '25P03', message: 'terminating connection due to idle-in-transaction timeout' },
    'timeout',
    /idle/,
  ],
  [
    'backend terminated',
    { code: '57P01', message: 'terminating connection due to administrator command' },
    'unreachable',
    /reconnects/,
  ],
  ['server starting', { code: '57P03', message: 'the database system is starting up' }, 'unreachable', /server is up/],
  ['connection failure class', { code: '08006', message: 'connection failure' }, 'unreachable', /reachable/],
  ['too many connections', { code: '53300', message: 'sorry, too many clients already' }, 'unreachable', /reachable/],
  ['standby', { code: '25006', message: 'cannot execute INSERT in a read-only transaction' }, 'readonly', /primary/],
  ['disk full', { code: '53100', message: 'could not extend file' }, 'full', /disk space/],
  ['data corrupted', { code: 'XX001', message: 'invalid page in block' }, 'corrupt', /damaged/],
  ['socket reset', { code: 'ECONNRESET', message: 'read ECONNRESET' }, 'unreachable', /reachable/],
  ['refused', { code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:5432' }, 'unreachable', /reachable/],
  ['terminated', { message: 'Connection terminated unexpectedly' }, 'unreachable', /reachable/],
  ['pool acquire', { message: 'timeout exceeded when trying to connect' }, 'timeout', /connectTimeoutMs.*poolSize/],
  ['client read timeout', { message: 'Query read timeout' }, 'timeout', /partition/],
  ['a defect', { code: '42P01', message: 'relation "pins" does not exist' }, 'error', /unexpected/],
  ['no privilege', { code: '42501', message: 'permission denied for table pins' }, 'error', /unexpected/],
];

test('PostgreSQL errors are classified by SQLSTATE or driver message, keeping the cause', (t) => {
  for (const [name, err, kind, fix] of pgCases) {
    const fault = classifyPg(Object.assign(new Error(String(err.message)), err));
    t.is(fault.kind, kind, name);
    t.regex(fault.fix, fix, name);
    t.true(fault.cause.includes(String(err.message)), name);
    if (typeof err.code === 'string') t.true(fault.cause.includes(err.code), name);
  }
});

const sqliteCases: [string, number, FaultKind, RegExp][] = [
  ['disk full', 13, 'full', /free space on the volume holding \/var\/lib\/p\.db/],
  ['read-only', 8, 'readonly', /make \/var\/lib\/p\.db.*writable/],
  ['read-only, extended code (DBMOVED)', 1032, 'readonly', /writable/],
  ['permission', 3, 'readonly', /writable/],
  ['busy', 5, 'busy', /another process holds the write lock on \/var\/lib\/p\.db/],
  ['busy, extended code (SNAPSHOT)', 517, 'busy', /another process/],
  ['corrupt', 11, 'corrupt', /\/var\/lib\/p\.db is damaged.*backup/],
  ['not a database', 26, 'corrupt', /damaged/],
  ['cannot open', 14, 'readonly', /directory exists and is writable/],
  ['I/O error', 10, 'unreachable', /file system failed/],
  ['constraint (a defect)', 19, 'error', /unexpected/],
];

test('SQLite errors are classified by result code, with the file and the fix', (t) => {
  for (const [name, errcode, kind, fix] of sqliteCases) {
    const err = Object.assign(new Error('sqlite says'), { code: 'ERR_SQLITE_ERROR', errcode, errstr: 'x' });
    const fault = classifySqlite(err, '/var/lib/p.db');
    t.is(fault.kind, kind, name);
    t.regex(fault.fix, fix, name);
    t.is(fault.cause, `sqlite says (SQLite code ${errcode})`, name);
  }
  t.is(classifySqlite(new Error('no code'), 'p').kind, 'error');
});

const HOLD = 1000;
const up: HealthState = { up: true };
const healthCases: [string, HealthState, Parameters<typeof nextHealth>[1], HealthState][] = [
  [
    'an unusable fault takes it down',
    up,
    { type: 'fault', kind: 'unreachable', cause: 'c', at: 10 },
    { up: false, downSince: 10, lastFaultAt: 10, cause: 'c' },
  ],
  [
    'a timeout too',
    up,
    { type: 'fault', kind: 'timeout', cause: 'c', at: 10 },
    { up: false, downSince: 10, lastFaultAt: 10, cause: 'c' },
  ],
  ['a defect does not', up, { type: 'fault', kind: 'error', cause: 'c', at: 10 }, up],
  [
    'a failed probe does',
    up,
    { type: 'probe-failed', cause: 'p', at: 10 },
    { up: false, downSince: 10, lastFaultAt: 10, cause: 'p' },
  ],
  ['a probe while up changes nothing', up, { type: 'probe-ok', at: 10 }, up],
  [
    'a later fault keeps downSince, moves lastFaultAt',
    { up: false, downSince: 10, lastFaultAt: 10, cause: 'c' },
    { type: 'fault', kind: 'full', cause: 'd', at: 500 },
    { up: false, downSince: 10, lastFaultAt: 500, cause: 'd' },
  ],
  [
    'a probe right after a fault does not bring it up (real queries still fail)',
    { up: false, downSince: 10, lastFaultAt: 500, cause: 'c' },
    { type: 'probe-ok', at: 500 + HOLD - 1 },
    { up: false, downSince: 10, lastFaultAt: 500, cause: 'c' },
  ],
  [
    'a probe once the hold passed without faults does',
    { up: false, downSince: 10, lastFaultAt: 500, cause: 'c' },
    { type: 'probe-ok', at: 500 + HOLD },
    up,
  ],
];

test('store health: down at once on an unusable fault, up on a probe after a quiet hold', (t) => {
  for (const [name, state, event, want] of healthCases) t.deepEqual(nextHealth(state, event, HOLD), want, name);
});
