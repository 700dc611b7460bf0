#!/usr/bin/env node
// The `pullgate` command line.
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.ts';
import { startProxy } from '../server.ts';
import { ADMIN_COMMANDS } from './admin-commands.ts';
import { cacheLs, cachePrune, cacheVerify } from './cache.ts';
import { policyTest } from './policy-test.ts';
import { driftResolve, revalidateReport, revalidateRun } from './verdict-commands.ts';
import { check } from './check.ts';
import { stdio, type Output } from './output.ts';
import { policyLint } from './policy-lint.ts';

const USAGE = `usage: pullgate <command> [options]

  serve [--config FILE]                      run the proxy (embedded defaults without --config)
  check IMAGE [--config F] [--policy F]      evaluate the policy for an image; exit 0 allow, 1 deny
  policy lint FILE                           check a policy file (schema, semantics, reachability)
  policy reload                              make the running proxy reload its policy
  policy test CANDIDATE --replay 7d          what a candidate policy would change for the images pulled lately
  cache ls | cache prune [--max-bytes SIZE] [--older-than 7d] | cache verify
                                             the blob cache directory (verify re-hashes every entry)

admin commands (talk to a running proxy's admin API; --admin-url, --token or PULLGATE_ADMIN_TOKEN, or --config):
  pins ls | pins approve IMAGE:TAG DIGEST | pins rm IMAGE:TAG
  drift ls [--all] | drift resolve ID --reason TEXT
  revalidate report | revalidate run
  revoke DIGEST --reason TEXT | unrevoke DIGEST
  grant (--digest D | --repository R) --expires-in 4h --reason TEXT | grants [--all]
  audit tail [-n N] | audit query [--digest D] [--image R] [--kind K] [--since T] | audit verify

every command takes --json for machine-readable output.
`;

async function serve(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } }, strict: true });
  const proxy = await startProxy(loadConfig(values.config), { processMetrics: true, watchPolicy: true });
  process.on('SIGHUP', () => {
    proxy.policy.reload('signal');
    proxy.reloadTls();
  });
  await new Promise<void>((resolve) => {
    const stop = () => {
      proxy.close().then(resolve, resolve);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  return 0;
}

const COMMANDS: Record<string, (args: string[], out: Output) => Promise<number>> = {
  serve,
  check,
  'policy lint': policyLint,
  ...ADMIN_COMMANDS,
  'policy test': policyTest,
  'revalidate report': revalidateReport,
  'revalidate run': revalidateRun,
  'drift resolve': driftResolve,
  'cache ls': cacheLs,
  'cache prune': cachePrune,
  'cache verify': cacheVerify,
};

export async function main(argv: string[], out: Output = stdio): Promise<number> {
  const two = argv.slice(0, 2).join(' ');
  const [name, rest] = COMMANDS[two] ? [two, argv.slice(2)] : [argv[0] ?? '', argv.slice(1)];
  const run = COMMANDS[name];
  if (!run) {
    out.err(USAGE);
    return name === '' || name === 'help' || name === '--help' ? 0 : 2;
  }
  try {
    return await run(rest, out);
  } catch (err) {
    out.err(`pullgate ${name}: ${(err as Error).message}\n`);
    return 2;
  }
}

process.exitCode = await main(process.argv.slice(2));
