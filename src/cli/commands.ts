// Every command of the CLI, in the order the top-level usage lists them.
import { ADMIN_COMMANDS } from './admin-commands.ts';
import { CACHE_COMMANDS } from './cache.ts';
import { check } from './check.ts';
import type { Command } from './command.ts';
import { policyLint } from './policy-lint.ts';
import { policyTest } from './policy-test.ts';
import { serve } from './serve.ts';
import { VERDICT_COMMANDS } from './verdict-commands.ts';

export const COMMANDS: Command[] = [
  serve,
  check,
  policyLint,
  policyTest,
  ...CACHE_COMMANDS,
  ...ADMIN_COMMANDS,
  ...VERDICT_COMMANDS,
];
