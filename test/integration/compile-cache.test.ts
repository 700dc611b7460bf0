// Memory at rest (docs/decisions.md): with the compile cache that scripts/warm-compile-cache.ts
// fills (npm start's prestart, the image's build), the proxy's modules load without node's
// TypeScript stripper (amaro, ~18 MiB resident) and without node's bundled undici (~14 MiB, pulled
// in by an ESM import of node:http). A cold cache is the control: it does load amaro.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCommand } from '../harness/index.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WARM = join(ROOT, 'scripts', 'warm-compile-cache.ts');
const HEAVY = ['internal/deps/amaro/dist/index', 'internal/deps/undici/undici'];
// Loads what `pullgate serve` loads (its command table and the composition root) and prints which
// of node's heavy internal modules came with them.
const PROBE = `await import(${JSON.stringify(join(ROOT, 'src/cli/commands.ts'))});
await import(${JSON.stringify(join(ROOT, 'src/cli/serve-proxy.ts'))});
const heavy = ${JSON.stringify(HEAVY)};
console.log(JSON.stringify(heavy.filter((m) => process.moduleLoadList.includes('NativeModule ' + m))));`;

async function heavyLoaded(cache: string): Promise<string[]> {
  const r = await runCommand(process.execPath, ['--input-type=module', '-e', PROBE], {
    env: { NODE_COMPILE_CACHE: cache },
    timeoutMs: 60_000,
  });
  if (r.code !== 0) throw new Error(`probe failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim()) as string[];
}

test('a warmed compile cache: the proxy loads neither amaro nor node’s bundled undici; a cold one loads amaro', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pullgate-compile-cache-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.deepEqual(
    await heavyLoaded(join(dir, 'cold')),
    ['internal/deps/amaro/dist/index'],
    'cold: types stripped by amaro',
  );
  const warm = join(dir, 'warm');
  const r = await runCommand(process.execPath, [WARM], { env: { NODE_COMPILE_CACHE: warm }, timeoutMs: 90_000 });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^compile cache .*: \d+ modules of src\/\n$/);
  t.deepEqual(await heavyLoaded(warm), [], 'warm: nothing heavy');
});
