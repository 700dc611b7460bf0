// `pullgate policy lint FILE`: schema, semantic and reachability checks; exit 1 on any error.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { lintPolicy } from '../policy/lint.ts';
import type { Command } from './command.ts';

export const policyLint: Command = {
  spec: {
    name: 'policy lint',
    args: ['FILE'],
    summary: 'check a policy file; exit 1 on any error',
    options: { json: { type: 'boolean', help: 'print the findings as JSON' } },
  },
  async run(values, [file = ''], out) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const findings = lintPolicy(text, { file, baseDir: dirname(resolve(file)) });
    const errors = findings.filter((f) => f.level === 'error').length;
    out.result(values.json, findings, () =>
      [
        ...findings.map((f) => `${file}: ${f.level}: ${f.path || '/'}: ${f.message}`),
        `${errors} error(s), ${findings.length - errors} warning(s)`,
        '',
      ].join('\n'),
    );
    return errors > 0 ? 1 : 0;
  },
};
