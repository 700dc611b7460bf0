// Which identities may pull which repositories: `auth.rules`, each a list of identity patterns
// and a list of `upstream/repository` globs (the policy's glob). Access is the union of the rules
// that match; nothing matches, nothing is allowed. Pure.
import { globMatches, parseGlob, GlobError, type Glob } from '../policy/glob.ts';
import type { Identity } from './types.ts';

export type SubjectKind = 'name' | 'group' | 'namespace' | 'serviceaccount';

export interface SubjectPattern {
  source: string;
  kind: SubjectKind;
  /** `serviceaccount:` patterns match namespace and name separately. */
  patterns: RegExp[];
}

export interface AccessRule {
  subjects: SubjectPattern[];
  repositories: Glob[];
}

const PATTERN_CHARS = /^[A-Za-z0-9._@:*\/-]{1,256}$/;
const PREFIXES: Record<string, SubjectKind> = {
  'user:': 'name',
  'group:': 'group',
  'namespace:': 'namespace',
  'serviceaccount:': 'serviceaccount',
};

/** `*` matches any run of characters; everything else is literal. */
function star(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map(escape).join('.*')}$`, 's');
}
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/**
 * `NAME` or `user:NAME` (an htpasswd user, a full service-account name, a pass-through user),
 * `group:GROUP`, `namespace:NS` (every service account in it), `serviceaccount:NS/NAME`; `*` is a
 * wildcard in each. A message when the pattern is malformed.
 */
export function parseSubjectPattern(text: string): SubjectPattern | string {
  if (!PATTERN_CHARS.test(text))
    return `"${text.slice(0, 100)}" may contain only letters, digits, ".", "_", "-", "@", ":", "/" and *`;
  const prefix = Object.keys(PREFIXES).find((p) => text.startsWith(p));
  const kind = prefix ? (PREFIXES[prefix] as SubjectKind) : 'name';
  const body = prefix ? text.slice(prefix.length) : text;
  if (body === '') return `"${text}" has nothing after "${prefix}"`;
  if (kind === 'serviceaccount') {
    const parts = body.split('/');
    if (parts.length !== 2 || !parts[0] || !parts[1])
      return `"${text}": a service account is serviceaccount:NAMESPACE/NAME (wildcards allowed)`;
    return { source: text, kind, patterns: parts.map(star) };
  }
  return { source: text, kind, patterns: [star(body)] };
}

/** A repository pattern of a rule: a glob on `upstream/repository`, without a tag part. */
export function parseRepositoryPattern(text: string): Glob | string {
  let glob: Glob;
  try {
    glob = parseGlob(text);
  } catch (err) {
    if (err instanceof GlobError) return `"${text.slice(0, 200)}": ${err.message}`;
    throw err;
  }
  if (glob.tag !== undefined)
    return `"${text}" has a tag part: access is granted per repository (upstream/repository), for every tag`;
  return glob;
}

export function subjectMatches(s: SubjectPattern, id: Identity): boolean {
  const [first, second] = s.patterns as [RegExp, RegExp | undefined];
  switch (s.kind) {
    case 'name':
      return first.test(id.name);
    case 'group':
      return id.groups.some((g) => first.test(g));
    case 'namespace':
      return id.serviceAccount !== undefined && first.test(id.serviceAccount.namespace);
    case 'serviceaccount':
      return (
        id.serviceAccount !== undefined &&
        first.test(id.serviceAccount.namespace) &&
        second !== undefined &&
        second.test(id.serviceAccount.name)
      );
  }
}

/** The index of the first rule that lets `id` pull `name` (`upstream/repository`), or undefined: denied. */
export function pullRule(rules: readonly AccessRule[], id: Identity, name: string): number | undefined {
  const subject = { name, tag: undefined };
  const i = rules.findIndex(
    (r) => r.subjects.some((s) => subjectMatches(s, id)) && r.repositories.some((g) => globMatches(g, subject)),
  );
  return i < 0 ? undefined : i;
}
