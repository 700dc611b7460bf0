// Argument handling for every command: one spec per command gives its parser, its --help text and
// its usage line, so they cannot disagree. Pure: argv in, a parse result or a one-line error out.
import { parseArgs } from 'node:util';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** What the value is, in the usage text (FILE, N, TEXT). */
  value?: string;
  help: string;
  required?: boolean;
}

export interface CommandSpec {
  /** The words that select the command: `pins approve`. */
  name: string;
  /** Positional arguments as the usage shows them; one wholly in [brackets] is optional. */
  args: string[];
  summary: string;
  options: Record<string, OptionSpec>;
  /** Lines added to --help after the options (constraints, examples). */
  notes?: string[];
}

export type Values = Record<string, string | boolean | undefined>;

export type ParseResult =
  { kind: 'help' } | { kind: 'error'; message: string } | { kind: 'ok'; values: Values; positionals: string[] };

/** A usage error found by a command after parsing (conflicting options, say): printed with the usage, exit 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export const HELP_OPTION: OptionSpec = { type: 'boolean', short: 'h', help: 'show this help and exit' };

function optional(arg: string): boolean {
  return /^\[[^\]]*\]$/.test(arg);
}

function flag(name: string, spec: OptionSpec): string {
  return `--${name}${spec.type === 'string' ? ` ${spec.value ?? 'VALUE'}` : ''}`;
}

/** `pullgate revoke DIGEST --reason TEXT [options]`: positionals and required options. */
export function synopsis(spec: CommandSpec): string {
  const required = Object.entries(spec.options)
    .filter(([, o]) => o.required)
    .map(([name, o]) => flag(name, o));
  const hasOptional = Object.values(spec.options).some((o) => !o.required);
  return ['pullgate', spec.name, ...spec.args, ...required, ...(hasOptional ? ['[options]'] : [])].join(' ');
}

export function usage(spec: CommandSpec): string {
  const options = [...Object.entries(spec.options), ['help', HELP_OPTION] as const];
  const shown = options.map(([name, o]) => `${o.short ? `-${o.short}, ` : '    '}${flag(name, o)}`);
  const width = Math.max(...shown.map((s) => s.length));
  return [
    `usage: ${synopsis(spec)}`,
    '',
    spec.summary,
    '',
    'options:',
    ...options.map(([, o], i) => `  ${(shown[i] ?? '').padEnd(width)}  ${o.help}${o.required ? ' (required)' : ''}`),
    ...(spec.notes?.length ? ['', ...spec.notes] : []),
    '',
  ].join('\n');
}

/**
 * Parses `argv` (the words after the command name) against `spec`. `--help`/`-h` anywhere before
 * `--` wins over any error, so a user who asks for help gets it.
 */
export function parseCommandArgs(spec: CommandSpec, argv: string[]): ParseResult {
  const terminator = argv.indexOf('--');
  const beforeTerminator = terminator < 0 ? argv : argv.slice(0, terminator);
  if (beforeTerminator.includes('--help') || beforeTerminator.includes('-h')) return { kind: 'help' };

  const options = Object.fromEntries(
    Object.entries(spec.options).map(([name, o]) => [name, { type: o.type, ...(o.short ? { short: o.short } : {}) }]),
  );
  const shortNames = new Map(Object.entries(spec.options).flatMap(([name, o]) => (o.short ? [[o.short, name]] : [])));
  // Non-strict with tokens: every problem is reported below in our words, not the parser's.
  const { tokens } = parseArgs({ args: argv, options, strict: false, allowPositionals: true, tokens: true });
  const values: Values = {};
  const positionals: string[] = [];
  const error = (message: string): ParseResult => ({ kind: 'error', message });
  for (const token of tokens) {
    if (token.kind === 'option-terminator') continue;
    if (token.kind === 'positional') {
      positionals.push(token.value);
      continue;
    }
    const name = token.rawName.startsWith('--') ? token.name : (shortNames.get(token.name) ?? token.name);
    const o = spec.options[name];
    if (!o) return error(`unknown option ${token.rawName}`);
    if (o.type === 'boolean') {
      if (token.inlineValue) return error(`option ${token.rawName} takes no value`);
      values[name] = true;
      continue;
    }
    if (token.value === undefined) return error(`option ${token.rawName} needs a value (${flag(name, o)})`);
    if (!token.inlineValue && token.value.startsWith('-') && token.value !== '-')
      return error(
        `option ${token.rawName} needs a value, got the option ${token.value} (write ${token.rawName}=${token.value} if that is the value)`,
      );
    values[name] = token.value;
  }
  const min = spec.args.filter((a) => !optional(a)).length;
  if (positionals.length < min) {
    const missing = spec.args.filter((a) => !optional(a)).slice(positionals.length);
    return error(`missing argument${missing.length > 1 ? 's' : ''} ${missing.join(' ')}`);
  }
  if (positionals.length > spec.args.length) {
    const extra = positionals.slice(spec.args.length);
    return error(`unexpected argument${extra.length > 1 ? 's' : ''} ${extra.map((a) => JSON.stringify(a)).join(' ')}`);
  }
  for (const [name, o] of Object.entries(spec.options)) {
    if (o.required && values[name] === undefined) return error(`${flag(name, o)} is required`);
  }
  return { kind: 'ok', values, positionals };
}
