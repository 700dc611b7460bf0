// Fills node's compile cache (NODE_COMPILE_CACHE in package.json's start script and in the
// Dockerfile) with every module of src/, type-stripped and compiled. A proxy whose modules are all
// in the cache never loads node's TypeScript stripper (amaro, a WebAssembly build of swc), which
// otherwise stays resident for the life of the process: ~18 MiB of RSS at rest
// (docs/decisions.md, "Memory at rest"). Run by `npm start` (prestart) and when the image is built.
// A module changed since is stripped again when imported, as it would be without a cache.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { constants, enableCompileCache, flushCompileCache } from 'node:module';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = join(import.meta.dirname, '..');
/** Entry points: main.ts runs the CLI when imported, so it is cached by running it. */
const ENTRY = join(ROOT, 'src', 'cli', 'main.ts');

/**
 * NODE_COMPILE_CACHE when set (the image sets it, as node would use it), else the directory the
 * start script names, resolved against the package root (where npm runs it).
 */
function cacheDir(): string {
  if (process.env.NODE_COMPILE_CACHE) return resolve(process.env.NODE_COMPILE_CACHE);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
  const named = /(?:^|\s)NODE_COMPILE_CACHE=(\S+)/.exec(pkg.scripts.start)?.[1];
  if (!named) throw new Error(`package.json's start script sets no NODE_COMPILE_CACHE: ${pkg.scripts.start}`);
  return resolve(ROOT, named);
}

function modules(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? modules(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []))
    .sort();
}

const dir = cacheDir();
const enabled = enableCompileCache(dir);
if (enabled.status === constants.compileCacheStatus.FAILED)
  throw new Error(`cannot use ${dir} as the compile cache: ${enabled.message ?? 'unknown reason'}`);
// Worker entry points (*-worker.ts) do nothing when imported on a main thread: they are cached too,
// so a worker never loads the stripper either.
const files = modules(join(ROOT, 'src')).filter((f) => f !== ENTRY);
for (const file of files) await import(pathToFileURL(file).href);
flushCompileCache();
const entry = spawnSync(process.execPath, [ENTRY, '--version'], {
  env: { ...process.env, NODE_COMPILE_CACHE: dir },
  encoding: 'utf8',
  timeout: 60_000,
});
if (entry.status !== 0) throw new Error(`${relative(ROOT, ENTRY)} --version failed: ${entry.stderr || entry.error}`);
console.log(`compile cache ${relative(ROOT, dir) || dir}: ${files.length + 1} modules of src/`);
