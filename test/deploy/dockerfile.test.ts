// The Dockerfile, read instruction by instruction (no Docker engine here to build it): the
// properties the image promises, and that what it copies exists, passes .dockerignore and is a
// working configuration.
import test from 'ava';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import { loadPolicyFile } from '../../src/policy/load.ts';
import { ROOT } from './deploy-files.ts';
import { type Copy, execForm, type Instruction, parseCopy, parseDockerfile } from './dockerfile.ts';
import { shippedRuntime } from '../harness/shipped-runtime.ts';

const stages = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const build = stages[0]!;
const final = stages.at(-1)!;
const all = (stage: typeof final, keyword: string): Instruction[] =>
  stage.instructions.filter((i) => i.keyword === keyword);
function only(keyword: string): Instruction {
  const found = all(final, keyword);
  if (found.length !== 1)
    throw new Error(`Dockerfile: expected one ${keyword} in the final stage, found ${found.length}`);
  return found[0]!;
}
const finalCopies = all(final, 'COPY').map((i) => parseCopy(i.args));
const workdir = all(final, 'WORKDIR').at(-1)?.args ?? '/';
/** Where a COPY from the build context puts `source` in the image. */
function destinationOf(source: string): string {
  const copy = finalCopies.find((c) => c.from === undefined && c.sources.includes(source));
  if (!copy) throw new Error(`the final stage does not COPY ${source}`);
  return posix.resolve(workdir, copy.dest);
}
const contextCopies = (): Copy[] =>
  stages.flatMap((s) => all(s, 'COPY').map((i) => parseCopy(i.args))).filter((c) => c.from === undefined);

test('multi-stage on the official node:24-slim image, pinned by tag (a digest may be added)', (t) => {
  t.true(stages.length >= 2);
  for (const s of stages) t.regex(s.from, /^node:24-slim(@sha256:[0-9a-f]{64})?$/);
  t.truthy(build.name);
});

test('the build stage installs production dependencies only, from the lockfile', (t) => {
  const copyLock = build.instructions.findIndex(
    (i) => i.keyword === 'COPY' && parseCopy(i.args).sources.includes('package-lock.json'),
  );
  const install = build.instructions.findIndex((i) => i.keyword === 'RUN' && /\bnpm ci\b/.test(i.args));
  t.true(copyLock >= 0, 'COPY package-lock.json');
  t.true(install > copyLock, 'npm ci after the lockfile is copied');
  t.regex(build.instructions[install]!.args, /--omit=dev/);
  const fromBuild = finalCopies.find((c) => c.from === build.name);
  t.deepEqual(fromBuild?.sources, ['/app/node_modules'], 'the final stage takes node_modules from the build stage');
});

test('the final stage runs node directly: no npm at run time, exec-form ENTRYPOINT and CMD', (t) => {
  for (const run of all(final, 'RUN')) t.notRegex(run.args, /\bnpm\b/, `line ${run.line}`);
  const entrypoint = execForm(only('ENTRYPOINT').args);
  // The same node flags and environment as `npm start`: what the tests and the benchmark measure.
  const shipped = shippedRuntime();
  t.deepEqual(entrypoint, ['node', ...shipped.nodeArgs, 'src/cli/main.ts']);
  for (const [name, value] of Object.entries(shipped.env))
    t.true(
      all(final, 'ENV').some((e) => e.args === `${name}=${value}`),
      `ENV ${name}=${value}`,
    );
  t.true(existsSync(join(ROOT, destinationOf('src').replace(/^\/app\//, ''), 'cli/main.ts')));
  const cmd = execForm(only('CMD').args);
  t.truthy(cmd, 'CMD in exec form');
  for (const arg of [...entrypoint!, ...cmd!]) t.false(/\bnpm\b/.test(arg), arg);
  t.is(cmd![0], 'serve');
});

test('non-root numeric user, state on a volume it owns, the proxy ports exposed', (t) => {
  const [uid, gid] = only('USER').args.split(':');
  t.regex(uid ?? '', /^[1-9][0-9]*$/, 'numeric, non-zero UID: runAsNonRoot can verify it');
  t.regex(gid ?? '', /^[1-9][0-9]*$/);
  t.deepEqual(execForm(only('VOLUME').args), ['/var/lib/pullgate']);
  t.true(
    all(final, 'RUN').some((r) => r.args.includes(`chown ${uid}:${gid} /var/lib/pullgate`)),
    'the volume is writable by the user',
  );
  const user = final.instructions.indexOf(only('USER'));
  t.true(
    final.instructions.slice(0, user).some((i) => i.keyword === 'RUN'),
    'the chown runs before USER',
  );
  t.true(
    final.instructions.slice(user + 1).every((i) => i.keyword !== 'RUN'),
    'no build step runs as the service user',
  );
  const config = loadConfig(join(ROOT, 'deploy/docker/pullgate.yaml'), {});
  t.deepEqual(only('EXPOSE').args.split(/\s+/).map(Number), [config.listen.port, config.admin.port]);
});

test('the compile cache is filled at build time, as root, where the shipped NODE_COMPILE_CACHE points', (t) => {
  // Memory at rest (docs/decisions.md): a warm cache means the proxy never loads node's TypeScript
  // stripper. Filled before USER, so the proxy's user reads it and cannot rewrite the code it holds.
  const dir = shippedRuntime().env.NODE_COMPILE_CACHE;
  t.truthy(dir, "package.json's start script sets NODE_COMPILE_CACHE");
  const at = (pred: (i: Instruction) => boolean) => final.instructions.findIndex(pred);
  const env = at((i) => i.keyword === 'ENV' && i.args === `NODE_COMPILE_CACHE=${dir}`);
  const warm = at((i) => i.keyword === 'RUN' && /^node scripts\/warm-compile-cache\.ts$/.test(i.args));
  const sources = at((i) => i.keyword === 'COPY' && parseCopy(i.args).sources.includes('src'));
  const user = at((i) => i.keyword === 'USER');
  t.true(env >= 0 && warm > env, 'warmed into the directory the proxy reads');
  t.true(warm > sources, 'after the sources are in');
  t.true(warm < user, 'as root, before USER');
  t.is(destinationOf('scripts/warm-compile-cache.ts'), '/app/scripts/warm-compile-cache.ts');
});

test('HEALTHCHECK runs node (no curl in slim) with the shipped health check script', (t) => {
  const hc = only('HEALTHCHECK');
  const [, options = '', cmd = ''] = /^(.*?)CMD\s+(.*)$/.exec(hc.args) ?? [];
  t.regex(options, /--interval=\d+s/);
  t.regex(options, /--timeout=\d+s/);
  const argv = execForm(cmd);
  t.is(argv?.[0], 'node');
  t.is(argv?.length, 2);
  t.is(posix.resolve(workdir, argv![1]!), destinationOf('deploy/docker/healthcheck.ts'));
  t.notRegex(hc.args, /curl|wget/);
});

test('the default config: all interfaces, SQLite on the volume, the policy the image carries', (t) => {
  const cmd = execForm(only('CMD').args)!;
  const configPath = cmd[cmd.indexOf('--config') + 1] ?? '';
  t.is(configPath, destinationOf('deploy/docker/pullgate.yaml'));
  t.is(configPath, '/etc/pullgate/pullgate.yaml');
  const config = loadConfig(join(ROOT, 'deploy/docker/pullgate.yaml'), {});
  t.is(config.listen.host, '0.0.0.0');
  t.like(config.store, { kind: 'sqlite', path: '/var/lib/pullgate/pullgate.db' });
  // the config names the policy relative to itself: the same relative path from /etc/pullgate
  t.is(
    posix.resolve(posix.dirname(configPath), posix.relative(join(ROOT, 'deploy/docker'), config.policyFile!)),
    destinationOf('config/policy.example.yaml'),
  );
  t.truthy(loadPolicyFile(join(ROOT, 'config/policy.example.yaml')).doc.defaultRule);
});

test('.dockerignore: an allowlist that lets through exactly what the Dockerfile copies', (t) => {
  const lines = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  t.is(lines[0], '*', 'everything is excluded first');
  const included = lines.slice(1).map((l) => {
    t.true(l.startsWith('!'), `${l}: only re-inclusions follow`);
    return l.slice(1).replace(/\/$/, '');
  });
  const sources = [...new Set(contextCopies().flatMap((c) => c.sources))].sort();
  t.deepEqual([...included].sort(), sources);
  for (const source of sources) t.true(existsSync(join(ROOT, source)), `${source} exists`);
});

/** Packages a module imports by bare name (static and dynamic imports, require.resolve), without node: builtins. */
function importedPackages(source: string): string[] {
  // Comments may say "from 'x'" in prose: only code counts.
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const specifiers = [...code.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+|\.resolve\(\s*)'([^'.][^']*)'/g)].map(
    (m) => m[1]!,
  );
  return specifiers
    .filter((s) => !s.startsWith('node:'))
    .map((s) =>
      s
        .split('/')
        .slice(0, s.startsWith('@') ? 2 : 1)
        .join('/'),
    );
}

test('npm ci --omit=dev keeps every package the image runs: all are runtime dependencies', (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  const files = readdirSync(join(ROOT, 'src'), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join('src', f));
  files.push('deploy/docker/healthcheck.ts');
  const used = new Set(files.flatMap((f) => importedPackages(readFileSync(join(ROOT, f), 'utf8'))));
  t.true(used.has('express') && used.has('@sigstore/tuf'), 'the scan finds imports and require.resolve');
  for (const name of used)
    t.true(
      name in pkg.dependencies,
      `${name} is imported at run time, so it must be in dependencies (not devDependencies)`,
    );
});
