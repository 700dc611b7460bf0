import test from 'ava';
import { COMMANDS } from '../../../src/cli/commands.ts';
import type { Command } from '../../../src/cli/command.ts';
import { UsageError } from '../../../src/cli/args.ts';
import { resolveCommand, runCli } from '../../../src/cli/dispatch.ts';
import type { Output } from '../../../src/cli/output.ts';

function capture(): Output & { stdout: string; stderr: string } {
  const o = {
    stdout: '',
    stderr: '',
    out(text: string) {
      o.stdout += text;
    },
    err(text: string) {
      o.stderr += text;
    },
    result(_json: unknown, _data: unknown, human: () => string) {
      o.stdout += human();
    },
  };
  return o;
}

async function run(argv: string[], commands: Command[] = COMMANDS) {
  const out = capture();
  const code = await runCli(argv, commands, '9.8.7', out);
  return { code, stdout: out.stdout, stderr: out.stderr };
}

const FAKE: Command[] = [
  {
    spec: { name: 'grant', args: [], summary: 'issue', options: { digest: { type: 'string', help: 'd' } } },
    run: async (v) => {
      if (v.digest === 'conflict') throw new UsageError('give exactly one of --digest or --repository');
      if (v.digest === 'boom') throw new Error('cannot reach the admin API');
      return v.digest === 'no' ? 1 : 0;
    },
  },
  { spec: { name: 'grant revoke', args: ['ID'], summary: 'cancel', options: {} }, run: async () => 0 },
  { spec: { name: 'pins ls', args: [], summary: 'list', options: {} }, run: async () => 0 },
  { spec: { name: 'pins rm', args: ['IMAGE'], summary: 'remove', options: {} }, run: async () => 0 },
];

test('resolution: two-word commands first, then one word, then groups', (t) => {
  const name = (argv: string[]) => {
    const r = resolveCommand(argv, FAKE);
    return r.kind === 'command' ? `${r.command.spec.name} | ${r.rest.join(' ')}` : r.kind;
  };
  const cases: [string[], string][] = [
    [['grant', 'revoke', 'x'], 'grant revoke | x'],
    [['grant', '--digest', 'd'], 'grant | --digest d'],
    [['grant', 'revoked'], 'grant | revoked'],
    [['pins', 'ls', '--json'], 'pins ls | --json'],
    [['pins'], 'error'],
    [['pins', 'bogus'], 'error'],
    [['pins', '--help'], 'help'],
    [['pins', '-h'], 'help'],
    [[], 'error'],
    [['--help'], 'help'],
    [['-h'], 'help'],
    [['help'], 'help'],
    [['help', 'pins', 'rm'], 'help'],
    [['help', 'nothing'], 'error'],
    [['--version'], 'version'],
    [['-V'], 'version'],
    [['bogus'], 'error'],
  ];
  for (const [argv, expected] of cases) t.is(name(argv), expected, argv.join(' '));
});

test('exit codes and streams: help and version on stdout with 0; usage errors on stderr with 2', async (t) => {
  const cases: [string[], number, 'stdout' | 'stderr', RegExp][] = [
    [['--help'], 0, 'stdout', /^usage: pullgate <command>/],
    [['--version'], 0, 'stdout', /^pullgate 9\.8\.7\n$/],
    [['help', 'pins', 'rm'], 0, 'stdout', /^usage: pullgate pins rm IMAGE\n/],
    [
      ['pins', '--help'],
      0,
      'stdout',
      /^usage: pullgate pins <subcommand>[^]*pins ls +list\n {2}pins rm IMAGE +remove\n/,
    ],
    [['pins', 'rm', '--help'], 0, 'stdout', /^usage: pullgate pins rm IMAGE\n/],
    [['grant', '--help'], 0, 'stdout', /^usage: pullgate grant \[options\]\n/],
    [[], 2, 'stderr', /^pullgate: no command given\n\nusage: pullgate <command>/],
    [['bogus'], 2, 'stderr', /^pullgate: unknown command "bogus"\n\nusage: pullgate <command>/],
    [['pins'], 2, 'stderr', /^pullgate: pins needs a subcommand: ls, rm\n\nusage: pullgate pins <subcommand>/],
    [
      ['pins', 'x'],
      2,
      'stderr',
      /^pullgate: unknown subcommand "pins x" \(subcommands: ls, rm\)\n\nusage: pullgate pins/,
    ],
    [['pins', 'rm'], 2, 'stderr', /^pullgate pins rm: missing argument IMAGE\n\nusage: pullgate pins rm IMAGE\n/],
    [['grant', '--nope'], 2, 'stderr', /^pullgate grant: unknown option --nope\n\nusage: pullgate grant/],
    [
      ['grant', '--digest', 'conflict'],
      2,
      'stderr',
      /^pullgate grant: give exactly one of --digest or --repository\n\nusage: pullgate grant/,
    ],
    [['grant', '--digest', 'boom'], 2, 'stderr', /^pullgate grant: cannot reach the admin API\n$/],
    [['grant', '--digest', 'no'], 1, 'stdout', /^$/],
    [['grant', '--digest', 'yes'], 0, 'stdout', /^$/],
  ];
  for (const [argv, code, stream, text] of cases) {
    const r = await run(argv, FAKE);
    const label = `pullgate ${argv.join(' ')}`;
    t.is(r.code, code, label);
    t.regex(r[stream], text, label);
    t.is(r[stream === 'stdout' ? 'stderr' : 'stdout'], '', `${label}: nothing on the other stream`);
  }
});

test('every real command and command group answers --help on stdout with exit 0 and its own usage', async (t) => {
  const groups = new Set(COMMANDS.filter((c) => c.spec.name.includes(' ')).map((c) => c.spec.name.split(' ')[0]!));
  for (const c of COMMANDS) {
    for (const flag of ['--help', '-h']) {
      const r = await run([...c.spec.name.split(' '), flag]);
      t.is(r.code, 0, `${c.spec.name} ${flag}`);
      t.true(r.stdout.startsWith(`usage: pullgate ${c.spec.name}`), `${c.spec.name} ${flag}: ${r.stdout}`);
      t.regex(r.stdout, /-h, --help +show this help and exit/);
      t.is(r.stderr, '');
    }
    t.true((await run(['--help'])).stdout.includes(`  ${[c.spec.name, ...c.spec.args].join(' ')} `), c.spec.name);
  }
  for (const group of groups) {
    const r = await run([group, '--help']);
    t.is(r.code, 0, group);
    t.true(r.stdout.startsWith(`usage: pullgate ${group}`), group);
  }
});

test('every real command prints a one-line error and its usage for an unknown option, exit 2', async (t) => {
  for (const c of COMMANDS) {
    const r = await run([...c.spec.name.split(' '), '--no-such-option']);
    t.is(r.code, 2, c.spec.name);
    const [first, blank, usageLine] = r.stderr.split('\n');
    t.is(first, `pullgate ${c.spec.name}: unknown option --no-such-option`);
    t.is(blank, '');
    t.true(usageLine?.startsWith(`usage: pullgate ${c.spec.name}`), c.spec.name);
    t.is(r.stdout, '');
  }
});
