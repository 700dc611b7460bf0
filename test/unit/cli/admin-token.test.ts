import test from 'ava';
import { adminTokenOf } from '../../../src/cli/admin-commands.ts';
import { UsageError } from '../../../src/cli/args.ts';
import type { AdminIdentity } from '../../../src/config/types.ts';

const auditor: AdminIdentity = { name: 'auditor', token: 'auditor-token-0123456789', readOnly: true };
const ops: AdminIdentity = { name: 'ops', token: 'ops-token-0123456789abcd', readOnly: false };
const admin: AdminIdentity = { name: 'admin', token: 'admin-token-0123456789ab', readOnly: false };

const cases: [string, AdminIdentity[], string | undefined, string | undefined][] = [
  ['no admin tokens at all', [], undefined, undefined],
  ['admin.token alone (listed as "admin")', [admin], undefined, admin.token],
  ['admin.token before admin.tokens', [admin, auditor, ops], undefined, admin.token],
  ['admin.tokens only: the first one not read-only', [auditor, ops], undefined, ops.token],
  ['only read-only tokens: the first (changes are refused with 403 read-only)', [auditor], undefined, auditor.token],
  ['--token-name picks that identity, read-only or not', [admin, auditor, ops], 'auditor', auditor.token],
];
for (const [name, identities, tokenName, want] of cases) {
  test(`admin token from --config: ${name}`, (t) => {
    t.is(adminTokenOf(identities, tokenName), want);
  });
}

test('--token-name naming no identity is a usage error listing the names there are', (t) => {
  const err = t.throws(() => adminTokenOf([auditor, ops], 'root'), { instanceOf: UsageError });
  t.regex(err.message, /--token-name root: .*names no such identity \(it has: auditor, ops\)/);
});
