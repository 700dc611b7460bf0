// Which command a command line names, and running it: --help and --version at every level, usage
// errors as one line plus the command's usage on stderr (exit 2), help on stdout (exit 0).
import { parseCommandArgs, synopsis, usage, UsageError } from './args.ts';
import type { Command } from './command.ts';
import type { Output } from './output.ts';

export type Resolution =
  | { kind: 'command'; command: Command; rest: string[] }
  | { kind: 'help'; text: string }
  | { kind: 'version' }
  | { kind: 'error'; message: string; usage: string };

const HELP = new Set(['--help', '-h']);
const VERSION = new Set(['--version', '-V']);

function listing(commands: Command[], width: number): string {
  return commands
    .map((c) => `  ${[c.spec.name, ...c.spec.args].join(' ').padEnd(width)}  ${c.spec.summary}`)
    .join('\n');
}

function widthOf(commands: Command[]): number {
  return Math.max(...commands.map((c) => [c.spec.name, ...c.spec.args].join(' ').length));
}

export function topUsage(commands: Command[]): string {
  return [
    'usage: pullgate <command> [options]',
    '',
    'commands:',
    listing(
      commands.filter((c) => !c.admin),
      widthOf(commands),
    ),
    '',
    "admin commands (a running proxy's admin API: --admin-url, --token or PULLGATE_ADMIN_TOKEN, or --config):",
    listing(
      commands.filter((c) => c.admin),
      widthOf(commands),
    ),
    '',
    'pullgate <command> --help     the options of a command',
    'pullgate --version            the version',
    '',
  ].join('\n');
}

function groupUsage(group: string, members: Command[]): string {
  return [
    `usage: pullgate ${group} <subcommand> [options]`,
    '',
    'subcommands:',
    listing(members, widthOf(members)),
    '',
    `pullgate ${group} <subcommand> --help     the options of a subcommand`,
    '',
  ].join('\n');
}

/** Pure: the command named by the first words of `argv` (two-word commands first), or what to print instead. */
export function resolveCommand(argv: string[], commands: Command[]): Resolution {
  const byName = new Map(commands.map((c) => [c.spec.name, c]));
  const [first, second] = argv;
  if (first === undefined) return { kind: 'error', message: 'no command given', usage: topUsage(commands) };
  if (HELP.has(first)) return { kind: 'help', text: topUsage(commands) };
  if (VERSION.has(first)) return { kind: 'version' };
  if (first === 'help') {
    // `pullgate help pins approve` is `pullgate pins approve --help`
    if (argv.length === 1) return { kind: 'help', text: topUsage(commands) };
    const asked = resolveCommand([...argv.slice(1), '--help'], commands);
    return asked.kind === 'command' ? { kind: 'help', text: usage(asked.command.spec) } : asked;
  }
  const two = second === undefined ? undefined : byName.get(`${first} ${second}`);
  if (two) return { kind: 'command', command: two, rest: argv.slice(2) };
  const one = byName.get(first);
  if (one) return { kind: 'command', command: one, rest: argv.slice(1) };
  const members = commands.filter((c) => c.spec.name.startsWith(`${first} `));
  if (members.length) {
    const text = groupUsage(first, members);
    if (second !== undefined && HELP.has(second)) return { kind: 'help', text };
    const names = members.map((c) => c.spec.name.slice(first.length + 1)).join(', ');
    return {
      kind: 'error',
      message:
        second === undefined
          ? `${first} needs a subcommand: ${names}`
          : `unknown subcommand "${first} ${second}" (subcommands: ${names})`,
      usage: text,
    };
  }
  return { kind: 'error', message: `unknown command "${first}"`, usage: topUsage(commands) };
}

export async function runCli(argv: string[], commands: Command[], version: string, out: Output): Promise<number> {
  const resolved = resolveCommand(argv, commands);
  switch (resolved.kind) {
    case 'help':
      out.out(resolved.text);
      return 0;
    case 'version':
      out.out(`pullgate ${version}\n`);
      return 0;
    case 'error':
      out.err(`pullgate: ${resolved.message}\n\n${resolved.usage}`);
      return 2;
  }
  const { command, rest } = resolved;
  const { spec } = command;
  const parsed = parseCommandArgs(spec, rest);
  if (parsed.kind === 'help') {
    out.out(usage(spec));
    return 0;
  }
  if (parsed.kind === 'error') {
    out.err(`pullgate ${spec.name}: ${parsed.message}\n\n${usage(spec)}`);
    return 2;
  }
  try {
    return await command.run(parsed.values, parsed.positionals, out);
  } catch (err) {
    if (err instanceof UsageError) {
      out.err(`pullgate ${spec.name}: ${err.message}\n\n${usage(spec)}`);
      return 2;
    }
    out.err(`pullgate ${spec.name}: ${(err as Error).message}\n`);
    return 2;
  }
}
