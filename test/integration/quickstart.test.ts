// The README quickstart's seeding script against a real registry: the config and policy it writes
// are accepted, and `pullgate check` judges its two images as the README says.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { loadConfig } from '../../src/config/load.ts';
import { startRegistry } from '../harness/index.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

test('demo:seed pushes a signed and an unsigned image; check admits the first and denies the second', async (t) => {
  const registry = await startRegistry();
  const out = mkdtempSync(join(tmpdir(), 'pullgate-quickstart-'));
  t.teardown(async () => {
    await registry.stop();
    rmSync(out, { recursive: true, force: true });
  });
  const seeded = await run(
    process.execPath,
    [join(ROOT, 'scripts/demo-seed.ts'), '--registry', registry.host, '--out', out],
    { timeout: 60_000 },
  );
  t.regex(seeded.stdout, /demo\/signed:1\.0 = sha256:[a-f0-9]{64} \(signed by ci\.pub\)/);
  const config = loadConfig(join(out, 'pullgate.yaml'), {});
  t.is(config.listen.port, 5050);
  t.is(config.defaultUpstream, 'registry.demo');
  const check = (image: string) =>
    run(
      process.execPath,
      [join(ROOT, 'src/cli/main.ts'), 'check', image, '--offline', '--config', join(out, 'pullgate.yaml')],
      {
        timeout: 60_000,
      },
    ).then(
      (r) => ({ code: 0, stdout: r.stdout }),
      (err: { code: number; stdout: string }) => ({ code: err.code, stdout: err.stdout }),
    );
  const signed = await check('registry.demo/demo/signed:1.0');
  t.is(signed.code, 0, signed.stdout);
  t.regex(signed.stdout, /^ALLOW/);
  const unsigned = await check('registry.demo/demo/unsigned:1.0');
  t.is(unsigned.code, 1);
  t.regex(unsigned.stdout, /attestor "ci": no signatures or attestations found/);
});
