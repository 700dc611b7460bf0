import test from 'ava';
import { parseCommandArgs, synopsis, usage, type CommandSpec } from '../../../src/cli/args.ts';

const REVOKE: CommandSpec = {
  name: 'revoke',
  args: ['DIGEST'],
  summary: 'deny a digest',
  options: {
    reason: { type: 'string', value: 'TEXT', help: 'why', required: true },
    lines: { type: 'string', short: 'n', value: 'N', help: 'how many' },
    json: { type: 'boolean', help: 'JSON' },
  },
};
const CHECK: CommandSpec = {
  name: 'check',
  args: ['[REGISTRY/]REPO[:TAG]', '[MORE]'],
  summary: 'check',
  options: {},
};

test('parsing: values, short options, inline values, -- ends the options', (t) => {
  const cases: [string[], Record<string, unknown>, string[]][] = [
    [['D', '--reason', 'why not'], { reason: 'why not' }, ['D']],
    [['--reason=x', 'D'], { reason: 'x' }, ['D']],
    [['D', '--reason', 'x', '-n', '3', '--json'], { reason: 'x', lines: '3', json: true }, ['D']],
    [['D', '--reason', 'x', '-n5'], { reason: 'x', lines: '5' }, ['D']],
    [['--reason=--odd', 'D'], { reason: '--odd' }, ['D']],
    [['--reason', 'x', '--', '--help'], { reason: 'x' }, ['--help']],
    [['--reason', 'a', '--reason', 'b', 'D'], { reason: 'b' }, ['D']],
  ];
  for (const [argv, values, positionals] of cases)
    t.deepEqual(parseCommandArgs(REVOKE, argv), { kind: 'ok', values, positionals }, argv.join(' '));
});

test('--help and -h anywhere before -- ask for help, whatever else is wrong', (t) => {
  for (const argv of [['--help'], ['-h'], ['D', '--help'], ['--bogus', '-h'], ['--reason', 'x', '--help']])
    t.deepEqual(parseCommandArgs(REVOKE, argv), { kind: 'help' }, argv.join(' '));
});

test('every usage error is one line in our words, naming the argument', (t) => {
  const cases: [string[], string][] = [
    [[], 'missing argument DIGEST'],
    [['--reason', 'x'], 'missing argument DIGEST'],
    [['D'], '--reason TEXT is required'],
    [['D', '--reason'], 'option --reason needs a value (--reason TEXT)'],
    [
      ['D', '--reason', '--json'],
      'option --reason needs a value, got the option --json (write --reason=--json if that is the value)',
    ],
    [['D', '--reason', 'x', '--bogus'], 'unknown option --bogus'],
    [['D', '--reason', 'x', '-z'], 'unknown option -z'],
    [['D', '--reason', 'x', '--json=yes'], 'option --json takes no value'],
    [['D', 'E', '--reason', 'x'], 'unexpected argument "E"'],
    [['D', 'E', 'F', '--reason', 'x'], 'unexpected arguments "E" "F"'],
  ];
  for (const [argv, message] of cases) {
    const r = parseCommandArgs(REVOKE, argv);
    t.deepEqual(r, { kind: 'error', message }, argv.join(' '));
    if (r.kind === 'error') t.false(r.message.includes('\n'));
  }
});

test('optional positionals: only an argument wholly in brackets is optional', (t) => {
  t.deepEqual(parseCommandArgs(CHECK, []), { kind: 'error', message: 'missing argument [REGISTRY/]REPO[:TAG]' });
  t.deepEqual(parseCommandArgs(CHECK, ['a']), { kind: 'ok', values: {}, positionals: ['a'] });
  t.deepEqual(parseCommandArgs(CHECK, ['a', 'b']), { kind: 'ok', values: {}, positionals: ['a', 'b'] });
  t.is(parseCommandArgs(CHECK, ['a', 'b', 'c']).kind, 'error');
});

test('usage: the synopsis shows arguments and required options; --help lists every option', (t) => {
  t.is(synopsis(REVOKE), 'pullgate revoke DIGEST --reason TEXT [options]');
  t.is(synopsis(CHECK), 'pullgate check [REGISTRY/]REPO[:TAG] [MORE]', 'no [options] without options');
  const text = usage(REVOKE);
  t.regex(text, /^usage: pullgate revoke DIGEST --reason TEXT \[options\]\n\ndeny a digest\n/);
  t.regex(text, /\n {6}--reason TEXT {2}why \(required\)\n/);
  t.regex(text, /\n {2}-n, --lines N {6}how many\n/);
  t.regex(text, /\n {2}-h, --help {9}show this help and exit\n$/);
});
