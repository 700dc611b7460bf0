// `pullgate policy lint FILE`: schema, semantic and reachability checks; exit 1 on any error.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { lintPolicy } from '../policy/lint.ts';
import type { Output } from './output.ts';

export async function policyLint(args: string[], out: Output): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: { json: { type: 'boolean' } },
  });
  const [file] = positionals;
  if (!file) {
    out.err('usage: pullgate policy lint FILE [--json]\n');
    return 2;
  }
  const findings = lintPolicy(readFileSync(file, 'utf8'), { file, baseDir: dirname(resolve(file)) });
  const errors = findings.filter((f) => f.level === 'error').length;
  out.result(values.json, findings, () =>
    [
      ...findings.map((f) => `${file}: ${f.level}: ${f.path || '/'}: ${f.message}`),
      `${errors} error(s), ${findings.length - errors} warning(s)`,
      '',
    ].join('\n'),
  );
  return errors > 0 ? 1 : 0;
}
