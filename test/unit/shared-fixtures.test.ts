import test, { type TestFn } from 'ava';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inCi, sharedFixtures } from '../shared-fixtures.ts';

const dir = mkdtempSync(join(tmpdir(), 'pullgate-fixtures-'));
mkdirSync(join(dir, 'cosign-real'));
writeFileSync(join(dir, 'cosign-real/cosign.pub'), 'key');
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

interface Registered {
  how: string;
  title?: string;
  /** What the registered implementation does with an execution context. */
  outcome?: string;
}

/** A stand-in for ava's `test` that records what is registered and runs nothing. */
function recorder(): { fake: TestFn; registered: Registered[] } {
  const registered: Registered[] = [];
  const run = (how: string) => (title: string, impl: (t: unknown) => unknown) => {
    const calls: string[] = [];
    impl({ fail: (m: string) => calls.push(`fail: ${m}`), pass: () => calls.push('pass') });
    registered.push({ how, title, outcome: calls.join(', ') || 'ran the test' });
  };
  const fake = Object.assign(run('test'), {
    skip: run('skip'),
    serial: Object.assign(run('serial'), { skip: run('serial.skip') }),
    before: () => registered.push({ how: 'before' }),
  });
  return { fake: fake as unknown as TestFn, registered };
}

const impl = () => undefined;

test('fixtures present: tests and hooks are registered as they are', (t) => {
  const { fake, registered } = recorder();
  const f = sharedFixtures(fake, ['cosign-real/cosign.pub'], { dir, ci: true });
  t.true(f.present);
  t.is(f.reason, '');
  f.before(impl);
  f.test('a', impl);
  f.serial('b', impl);
  t.deepEqual(registered, [
    { how: 'before' },
    { how: 'test', title: 'a', outcome: 'ran the test' },
    { how: 'serial', title: 'b', outcome: 'ran the test' },
  ]);
  t.is(f.path('cosign-real/cosign.pub'), join(dir, 'cosign-real/cosign.pub'));
});

test('fixtures missing, CI set: each test fails naming what is missing; hooks do not run', (t) => {
  const { fake, registered } = recorder();
  const f = sharedFixtures(fake, ['cosign-real/cosign.pub', 'cosign-real/cosign2.pub', 'notation-real'], {
    dir,
    ci: true,
  });
  t.false(f.present);
  t.deepEqual(f.missing, ['cosign-real/cosign2.pub', 'notation-real']);
  f.before(impl);
  f.test('a', impl);
  t.is(registered.length, 1);
  t.is(registered[0]?.how, 'test');
  t.is(registered[0]?.title, 'a');
  t.regex(
    registered[0]?.outcome ?? '',
    /^fail: needs the third-party fixtures in .* missing: cosign-real\/cosign2\.pub, notation-real; check out the shared fixtures beside the project \(CI is set, so this is a failure\)$/,
  );
});

test('fixtures missing, CI not set: each test is reported as not run, the reason in its title; hooks do not run', (t) => {
  const { fake, registered } = recorder();
  const f = sharedFixtures(fake, ['sigstore-public-good/artifact.txt'], { dir, ci: false });
  f.before(impl);
  f.test('a', impl);
  f.serial('b', impl);
  t.deepEqual(
    registered.map((r) => r.how),
    ['skip', 'serial.skip'],
  );
  t.regex(
    registered[0]?.title ?? '',
    /^a — did not run: needs the third-party fixtures in .*missing: sigstore-public-good\/artifact\.txt/,
  );
});

test('CI: set by any value but empty, 0 and false', (t) => {
  const cases: [string | undefined, boolean][] = [
    [undefined, false],
    ['', false],
    ['0', false],
    ['false', false],
    ['FALSE', false],
    ['1', true],
    ['true', true],
    ['yes', true],
  ];
  for (const [value, expected] of cases) t.is(inCi(value === undefined ? {} : { CI: value }), expected, String(value));
});

test('every test file that reads the shared fixtures registers through sharedFixtures', (t) => {
  const root = fileURLToPath(new URL('../', import.meta.url));
  const files = readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.test.ts'));
  const readers = files.filter((f) =>
    /\b(fixturePath|COSIGN_REAL|PUBLIC_GOOD|FIXTURES|SHARED_FIXTURES|loadCosignFixture)\b|shared\/fixtures/.test(
      readFileSync(join(root, f), 'utf8').replace(/^\s*(\/\/|\*).*$/gm, ''),
    ),
  );
  t.true(readers.length >= 5, readers.join(', '));
  for (const f of readers.filter((f) => f !== 'unit/shared-fixtures.test.ts'))
    t.regex(readFileSync(join(root, f), 'utf8'), /\bsharedFixtures\(test,/, `${f} reads ../shared/fixtures`);
});
