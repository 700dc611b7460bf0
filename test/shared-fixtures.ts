// The third-party fixtures (real cosign, Sigstore and Notation signatures) live in ../shared/fixtures,
// beside the project, and are read at run time. A fresh clone has no ../shared: every test that needs
// them registers through this helper, which checks the files first. When they are missing, such a
// test fails with a message naming them if CI is set (a CI run must not pass without them), and
// otherwise is reported on stdout as not run, with the reason in its title; its hooks do not run.
import type { ExecutionContext, Implementation, TestFn } from 'ava';
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SHARED_FIXTURES = fileURLToPath(new URL('../../shared/fixtures/', import.meta.url));

/** Whether CI is set: `CI=1`, `CI=true` (GitHub Actions, GitLab, …); `CI=0`/`false`/empty mean no. */
export function inCi(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.CI?.trim().toLowerCase();
  return v !== undefined && v !== '' && v !== '0' && v !== 'false';
}

export interface SharedFixtures {
  /** Every needed path exists. */
  readonly present: boolean;
  /** The needed paths that do not exist, relative to the fixtures folder. */
  readonly missing: string[];
  /** What is missing and how to fix it, in one line. */
  readonly reason: string;
  /** A path inside the fixtures folder. */
  path(relativePath: string): string;
  /** Registers a test that needs the fixtures. */
  test(title: string, impl: Implementation<[]>): void;
  serial(title: string, impl: Implementation<[]>): void;
  /** A before hook that needs the fixtures: it runs only when they are present. */
  before(impl: Implementation<[]>): void;
}

/** Checks `needed` (paths relative to ../shared/fixtures) once, for the tests of one file. */
export function sharedFixtures(
  test: TestFn,
  needed: string[],
  opts: { dir?: string; ci?: boolean } = {},
): SharedFixtures {
  const dir = opts.dir ?? SHARED_FIXTURES;
  const ci = opts.ci ?? inCi();
  const missing = needed.filter((p) => !existsSync(join(dir, p)));
  const shown = relative(process.cwd(), dir) || dir;
  const what = !existsSync(dir)
    ? 'which does not exist'
    : `missing: ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ` and ${missing.length - 3} more` : ''}`;
  const reason = missing.length
    ? `needs the third-party fixtures in ${shown} (${dir}), ${what}; check out the shared fixtures beside the project`
    : '';
  const register = (serial: boolean) => (title: string, impl: Implementation<[]>) => {
    const run = serial ? test.serial : test;
    if (!missing.length) run(title, impl);
    else if (ci) run(title, (t: ExecutionContext) => t.fail(`${reason} (CI is set, so this is a failure)`));
    else run.skip(`${title} — did not run: ${reason}`, (t: ExecutionContext) => t.pass());
  };
  return {
    present: missing.length === 0,
    missing,
    reason,
    path: (p) => join(dir, p),
    test: register(false),
    serial: register(true),
    before(impl) {
      if (!missing.length) test.before(impl);
    },
  };
}
