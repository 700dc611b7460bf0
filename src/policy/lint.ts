// `pullgate policy lint`: every error that would stop the policy from loading, plus warnings about
// parts that never apply or do less than they seem to (shadowed rules, tag rules that digest pulls
// bypass, dry-run, fail-open defaults, unused attestors and trust roots).
import { checkPolicy } from './check.ts';
import { compareSpecificity, globCovers, globsOverlap, parseGlob, type Glob } from './glob.ts';
import { DEFAULT_TRUST_ROOT } from '../verify/attestor.ts';
import { referencedAttestors } from './requirements.ts';
import type { PolicyDocument, RuleSpec } from './types.ts';

export interface LintFinding {
  level: 'error' | 'warning';
  /** JSON pointer into the document; `''` for the document as a whole. */
  path: string;
  message: string;
}

export function lintPolicy(text: string, opts: { file: string; baseDir: string }): LintFinding[] {
  const { doc, problems } = checkPolicy(text, opts.baseDir);
  const errors = problems.map((p): LintFinding => ({ level: 'error', path: p.path, message: p.problem }));
  if (doc === undefined) return errors;
  const warnings = [...patternWarnings(doc), ...ruleWarnings(doc), ...unusedWarnings(doc)];
  return [...errors, ...warnings.map((w): LintFinding => ({ level: 'warning', ...w }))];
}

type Warning = Omit<LintFinding, 'level'>;

/** Parses a pattern for analysis; invalid ones are already reported as errors. */
function tryGlob(pattern: string): Glob | undefined {
  try {
    return parseGlob(pattern);
  } catch {
    return undefined;
  }
}

interface Entry {
  path: string;
  glob: Glob;
  index: number;
}

function entries(patterns: readonly string[], at: (i: number) => string): Entry[] {
  return patterns.flatMap((pattern, index) => {
    const glob = tryGlob(pattern);
    return glob ? [{ path: at(index), glob, index }] : [];
  });
}

function patternWarnings(doc: PolicyDocument): Warning[] {
  const warnings: Warning[] = [];
  const allowlist = entries(doc.allowlist ?? [], (i) => `/allowlist/${i}`);
  const rules = entries(
    (doc.rules ?? []).map((r) => r.match),
    (i) => `/rules/${i}/match`,
  );
  for (const a of allowlist) {
    const wider = allowlist.find(
      (b) =>
        b !== a && globCovers(b.glob, a.glob) === true && (b.index < a.index || globCovers(a.glob, b.glob) !== true),
    );
    if (wider)
      warnings.push({
        path: a.path,
        message: `redundant: ${wider.path} ("${wider.glob.source}") already allowlists every image "${a.glob.source}" matches`,
      });
  }
  for (const e of [...allowlist, ...rules]) {
    const host = hostWarning(e.glob.source);
    if (host) warnings.push({ path: e.path, message: host });
  }
  const beats = (x: Entry, y: Entry): boolean => (compareSpecificity(x.glob, y.glob) || x.index - y.index) < 0;
  for (const r of rules) {
    const allowed = allowlist.find((a) => globCovers(a.glob, r.glob) === true);
    if (allowed) {
      warnings.push({
        path: r.path,
        message: `never applies: every image "${r.glob.source}" matches is allowlisted by ${allowed.path} ("${allowed.glob.source}"), and the allowlist is checked first`,
      });
      continue;
    }
    const shadow = rules.find((s) => beats(s, r) && globCovers(s.glob, r.glob) === true);
    if (shadow) {
      warnings.push({
        path: r.path,
        message: `never applies: ${shadow.path} ("${shadow.glob.source}") takes precedence and matches every image "${r.glob.source}" matches`,
      });
      continue;
    }
    for (const s of rules) {
      if (s.index >= r.index || compareSpecificity(s.glob, r.glob) !== 0) continue;
      const example = globsOverlap(s.glob, r.glob);
      if (typeof example === 'string') {
        warnings.push({
          path: r.path,
          message: `as specific as ${s.path} ("${s.glob.source}"): for images both match, e.g. ${example}, the earlier rule applies; make one of them more specific if that is not intended`,
        });
      }
    }
    if (r.glob.tag !== undefined) {
      const repository = r.glob.source.slice(0, r.glob.source.lastIndexOf(':'));
      warnings.push({
        path: r.path,
        message:
          `matches pulls by tag only: a pull by digest (${repository}@sha256:…) never matches "${r.glob.source}" and is judged by a rule without a tag part or by the default rule; ` +
          `add a rule "${repository}" if digest pulls must meet the same requirements`,
      });
    }
  }
  return warnings;
}

/**
 * Images are matched after normalization (`nginx` is `docker.io/library/nginx`), so a pattern
 * whose first segment cannot be a registry host is almost always a Docker Hub name written short.
 */
function hostWarning(pattern: string): string | undefined {
  const first = pattern.split('/')[0] as string;
  if (first.includes('*') || first.includes('?') || /[.:]/.test(first) || first === 'localhost') return undefined;
  return `"${first}" does not look like a registry host: images are matched by their normalized name, so for Docker Hub write docker.io/${pattern}`;
}

function ruleWarnings(doc: PolicyDocument): Warning[] {
  const warnings: Warning[] = [];
  const check = (rule: RuleSpec, at: string): void => {
    if (rule.enforcementMode === 'dryrun') {
      warnings.push({
        path: `${at}/enforcementMode`,
        message:
          'dry-run: images this rule would deny are served anyway (the denial is only logged); set enforce once the logs look right',
      });
    }
    if (rule.evaluationMode !== 'requireAttestation') {
      for (const field of ['requireAttestors', 'attestations'] as const) {
        if (rule[field] !== undefined)
          warnings.push({
            path: `${at}/${field}`,
            message: `ignored: evaluationMode is ${rule.evaluationMode}, only requireAttestation checks evidence`,
          });
      }
    }
  };
  check(doc.defaultRule, '/defaultRule');
  if (doc.defaultRule.evaluationMode === 'alwaysAllow') {
    warnings.push({
      path: '/defaultRule/evaluationMode',
      message: 'fail-open: images that match no allowlist entry and no rule are admitted without any evidence',
    });
  }
  (doc.rules ?? []).forEach((rule, i) => check(rule, `/rules/${i}`));
  return warnings;
}

function unusedWarnings(doc: PolicyDocument): Warning[] {
  const warnings: Warning[] = [];
  const used = new Set([doc.defaultRule, ...(doc.rules ?? [])].flatMap(referencedAttestors));
  for (const name of Object.keys(doc.attestors ?? {})) {
    if (!used.has(name))
      warnings.push({ path: `/attestors/${name}`, message: `attestor "${name}" is not referenced by any rule` });
  }
  const roots = new Set(Object.values(doc.attestors ?? {}).map((a) => a.trustRoot ?? DEFAULT_TRUST_ROOT));
  for (const name of Object.keys(doc.trustRoots ?? {})) {
    if (!roots.has(name))
      warnings.push({ path: `/trustRoots/${name}`, message: `trust root "${name}" is not used by any attestor` });
  }
  return warnings;
}
