// How the proxy runs as shipped: the environment and node flags of package.json's `start` script
// (the Dockerfile carries the same, checked by test/deploy/dockerfile.test.ts). Tests and the
// benchmark that measure memory or speed start the proxy this way, so they measure what users run.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');

export interface ShippedRuntime {
  env: Record<string, string>;
  nodeArgs: string[];
}

/** Parses `[VAR=value ...] node [--flag ...] src/cli/main.ts serve`. */
export function shippedRuntime(): ShippedRuntime {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
  const words = pkg.scripts.start.trim().split(/\s+/);
  const env: Record<string, string> = {};
  let i = 0;
  for (; i < words.length && /^[A-Z_][A-Z0-9_]*=/.test(words[i]!); i++) {
    const [name, ...value] = words[i]!.split('=');
    env[name!] = value.join('=');
  }
  if (words[i] !== 'node') throw new Error(`package.json start script does not run node: ${pkg.scripts.start}`);
  const nodeArgs: string[] = [];
  for (i++; i < words.length && words[i]!.startsWith('--'); i++) nodeArgs.push(words[i]!);
  if (words[i] !== 'src/cli/main.ts' || words[i + 1] !== 'serve')
    throw new Error(`package.json start script does not run src/cli/main.ts serve: ${pkg.scripts.start}`);
  return { env, nodeArgs };
}
