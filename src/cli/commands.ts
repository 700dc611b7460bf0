// Every command of the CLI, in the order the top-level usage lists them.
import { ADMIN_COMMANDS } from './admin-commands.ts';
import { CACHE_COMMANDS } from './cache.ts';
import { check } from './check.ts';
import type { Command } from './command.ts';
import { policyLint } from './policy-lint.ts';
import { serve } from './serve.ts';

export const COMMANDS: Command[] = [serve, check, policyLint, ...CACHE_COMMANDS, ...ADMIN_COMMANDS];
