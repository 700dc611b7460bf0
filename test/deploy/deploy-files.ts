// Reading the files under deploy/: every structured file parsed by its format, and the Kubernetes
// manifests as documents. Parse errors name the file and say what is wrong.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseToml } from 'smol-toml';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/types.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const DEPLOY = join(ROOT, 'deploy');
export const K8S = join(DEPLOY, 'kubernetes');

/** A parsed YAML/TOML/JSON value: the tests' assertions are its schema. */
export type Doc = Record<string, any>;

/** Formats of the structured files; anything else under deploy/ must be in PROSE_OR_CODE. */
const PARSERS: Record<string, (text: string, file: string) => Doc[]> = {
  '.yaml': parseYamlDocuments,
  '.toml': (text) => [parseToml(text) as Doc],
  '.conf': (text) => [parseToml(text) as Doc], // registries.conf is TOML
  '.json': (text) => [JSON.parse(text) as Doc],
};
const PROSE_OR_CODE = new Set(['.md', '.ts', '.sh']);

export function parseYamlDocuments(text: string, file: string): Doc[] {
  return parseAllDocuments(text).map((d, i) => {
    const [error] = d.errors;
    if (error) throw new Error(`${file}: document ${i + 1}: ${error.message}`);
    return d.toJS() as Doc;
  });
}

/** Every file under `dir`, as paths relative to it, sorted. */
export function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

export interface ParsedFile {
  /** Relative to deploy/. */
  file: string;
  docs: Doc[];
}

/** Parses every structured file under deploy/; throws for a file of a format nobody checks. */
export function parseDeployFiles(): ParsedFile[] {
  const parsed: ParsedFile[] = [];
  for (const file of filesUnder(DEPLOY)) {
    const ext = extname(file);
    if (PROSE_OR_CODE.has(ext)) continue;
    const parse = PARSERS[ext];
    if (!parse)
      throw new Error(
        `deploy/${file}: no parser for "${ext}" files: add one to test/deploy/deploy-files.ts so the file is checked`,
      );
    try {
      parsed.push({ file, docs: parse(readFileSync(join(DEPLOY, file), 'utf8'), `deploy/${file}`) });
    } catch (err) {
      throw new Error(`deploy/${file}: ${(err as Error).message}`);
    }
  }
  return parsed;
}

export function parseFile(relativeToDeploy: string): Doc[] {
  const found = parseDeployFiles().find((p) => p.file === relativeToDeploy);
  if (!found) throw new Error(`deploy/${relativeToDeploy} does not exist`);
  return found.docs;
}

/** The Kubernetes objects in the YAML files directly in `dir` (a kustomization folder). */
export function manifestsIn(dir: string): { file: string; doc: Doc }[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
    .flatMap((f) => parseYamlDocuments(readFileSync(join(dir, f), 'utf8'), f).map((doc) => ({ file: f, doc })));
}

/**
 * The Kubernetes ConfigMap's files written to a temp dir (removed at teardown), and its
 * pullgate.yaml through the real loader with the Secret's values as the environment, as in a pod.
 */
export function kubernetesConfig(t: { teardown(fn: () => void): void }): {
  config: Config;
  dir: string;
  configMap: Doc;
  secret: Doc;
} {
  const manifests = manifestsIn(K8S).map((m) => m.doc);
  const configMap = manifests.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'pullgate-config')!;
  const secret = manifests.find((d) => d.kind === 'Secret' && d.metadata.name === 'pullgate-secrets')!;
  const dir = mkdtempSync(join(tmpdir(), 'pullgate-k8s-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(configMap.data as Record<string, string>))
    writeFileSync(join(dir, name), text);
  return { config: loadConfig(join(dir, 'pullgate.yaml'), { ...secret.stringData }), dir, configMap, secret };
}
