#!/usr/bin/env node
// The `pullgate` command line.
import { readFileSync } from 'node:fs';
import { COMMANDS } from './commands.ts';
import { runCli } from './dispatch.ts';
import { stdio } from './output.ts';

/** From the package.json beside src/ (the container image ships it too). */
function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

process.exitCode = await runCli(process.argv.slice(2), COMMANDS, version(), stdio);
