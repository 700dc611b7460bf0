// What every CLI command is: its spec (parser, --help, usage) and what it does with the parsed arguments.
import type { CommandSpec, Values } from './args.ts';
import type { Output } from './output.ts';

export interface Command {
  spec: CommandSpec;
  /** Talks to a running proxy's admin API (listed apart in the top-level usage). */
  admin?: boolean;
  /** Exit code: 0 success, 1 a negative answer (deny, tampered, not found), 2 an error. May throw UsageError. */
  run(values: Values, positionals: string[], out: Output): Promise<number>;
}
