// The deployment docs stay accurate to the files: every repository path they name exists, and
// every file that carries the proxy's name is among those they tell readers to edit for another name.
import test from 'ava';
import { existsSync, globSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEPLOY, ROOT, filesUnder } from './deploy-files.ts';
import { SHIPPED_PROXY } from './node-fixture.ts';

const DOCS = [
  'docs/deploy.md',
  ...filesUnder(DEPLOY)
    .filter((f) => f.endsWith('.md'))
    .map((f) => `deploy/${f}`),
];

/** `deploy/...`, `docs/...` and similar paths written in backticks. */
function repositoryPaths(markdown: string): string[] {
  return [...markdown.matchAll(/`((?:deploy|docs|test|config|src)\/[^`\s]*)`/g)].map((m) => m[1]!);
}

test('every repository path the deployment docs name exists', (t) => {
  for (const doc of DOCS) {
    const paths = repositoryPaths(readFileSync(join(ROOT, doc), 'utf8'));
    for (const path of paths) {
      const exists = path.includes('*') ? globSync(path, { cwd: ROOT }).length > 0 : existsSync(join(ROOT, path));
      t.true(exists, `${doc} names ${path}`);
    }
  }
});

test('docs/deploy.md lists every shipped file that carries the proxy name, as files to edit for another name', (t) => {
  const deployDoc = readFileSync(join(ROOT, 'docs/deploy.md'), 'utf8');
  const carriers = filesUnder(DEPLOY).filter(
    (f) => !f.endsWith('.md') && readFileSync(join(DEPLOY, f), 'utf8').includes(SHIPPED_PROXY),
  );
  const named = repositoryPaths(deployDoc.slice(0, deployDoc.indexOf('## 0.')));
  for (const file of carriers) {
    t.true(
      named.some((p) => globSync(p, { cwd: ROOT }).includes(`deploy/${file}`)),
      `docs/deploy.md lists deploy/${file} among the files to edit`,
    );
  }
  t.true(carriers.length >= 8);
});
