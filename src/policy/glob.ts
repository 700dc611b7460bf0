// Image patterns: globs on `registry/repository[:tag]`. Parsing with errors an admin can act on,
// matching, specificity (for rule precedence), and language comparisons (for lint).

/** `star` is `*` (not across `/`), `any` is `**` (anything, `/` included), `one` is `?`. */
export type GlobToken = { kind: 'lit'; ch: string } | { kind: 'one' } | { kind: 'star' } | { kind: 'any' };

export interface Glob {
  readonly source: string;
  readonly name: readonly GlobToken[];
  /** Undefined when the pattern has no tag part: it then matches every tag and digest pulls. */
  readonly tag: readonly GlobToken[] | undefined;
  /** Literal characters, `:` before a tag included: more means more specific. */
  readonly literals: number;
  readonly wildcards: number;
}

export class GlobError extends Error {}

const ALLOWED = /^[A-Za-z0-9._\-/:*?]+$/;

export function parseGlob(pattern: string): Glob {
  if (pattern === '') throw new GlobError('pattern is empty');
  if (pattern.includes('@')) throw new GlobError('digests cannot be matched: match registry/repository[:tag]');
  if (!ALLOWED.test(pattern)) {
    throw new GlobError('may contain only letters, digits, ".", "_", "-", "/", ":" and the wildcards *, ** and ?');
  }
  if (pattern.includes('***'))
    throw new GlobError('"***" is ambiguous: use * (within one path segment) or ** (across segments)');
  const { name, tag } = splitTag(pattern);
  if (!name.includes('/') && !name.startsWith('**')) {
    throw new GlobError(
      `has no "/": patterns are registry/repository[:tag], e.g. ${pattern}/** for every repository of a registry`,
    );
  }
  if (/[A-Z]/.test(name))
    throw new GlobError(
      'registry and repository names are lower-case after normalization: this pattern would never match',
    );
  if (tag === '') throw new GlobError('empty tag after ":": drop the ":" to match every tag and digest pulls');
  if (tag?.includes(':')) throw new GlobError('a tag cannot contain ":"');
  if (tag?.includes('**')) throw new GlobError('"**" in the tag part: tags have no "/", use *');
  const nameTokens = tokenize(name);
  const tagTokens = tag === undefined ? undefined : tokenize(tag);
  const all = [...nameTokens, ...(tagTokens ?? [])];
  const wildcards = all.filter((t) => t.kind !== 'lit').length;
  const separator = tag === undefined ? 0 : 1;
  return { source: pattern, name: nameTokens, tag: tagTokens, literals: all.length - wildcards + separator, wildcards };
}

/** The tag part starts at the first `:` after the last `/` (a registry port comes before a `/`). */
function splitTag(text: string): { name: string; tag: string | undefined } {
  const colon = text.indexOf(':', text.lastIndexOf('/') + 1);
  return colon < 0 ? { name: text, tag: undefined } : { name: text.slice(0, colon), tag: text.slice(colon + 1) };
}

function tokenize(text: string): GlobToken[] {
  const tokens: GlobToken[] = [];
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (ch === '*' && text[i + 1] === '*') {
      tokens.push({ kind: 'any' });
      i++;
    } else if (ch === '*') tokens.push({ kind: 'star' });
    else if (ch === '?') tokens.push({ kind: 'one' });
    else tokens.push({ kind: 'lit', ch });
  }
  return tokens;
}

/** A subject as rules see it: `registry/repository` plus the tag for a tag pull, none for a digest pull. */
export interface Subject {
  name: string;
  tag: string | undefined;
}

/** `registry/repository:tag` or `registry/repository@digest` (or a bare name, treated like a digest pull). */
export function parseSubject(subject: string): Subject {
  const at = subject.indexOf('@');
  if (at >= 0) return { name: subject.slice(0, at), tag: undefined };
  return splitTag(subject);
}

const compiled = new WeakMap<readonly GlobToken[], RegExp>();

function tokensMatch(tokens: readonly GlobToken[], text: string): boolean {
  let re = compiled.get(tokens);
  if (!re) {
    const source = tokens
      .map((t) => {
        switch (t.kind) {
          case 'lit':
            return t.ch === '.' ? '\\.' : t.ch;
          case 'one':
            return '[^/]';
          case 'star':
            return '[^/]*';
          case 'any':
            return '.*';
        }
      })
      .join('');
    re = new RegExp(`^${source}$`, 's');
    compiled.set(tokens, re);
  }
  return re.test(text);
}

export function globMatches(glob: Glob, subject: Subject): boolean {
  if (!tokensMatch(glob.name, subject.name)) return false;
  if (glob.tag === undefined) return true;
  return subject.tag !== undefined && tokensMatch(glob.tag, subject.tag);
}

/** Whether `pattern` matches `subject` (`registry/repository:tag` or `registry/repository@digest`). */
export function globMatch(pattern: string, subject: string): boolean {
  return globMatches(parseGlob(pattern), parseSubject(subject));
}

/** Rule precedence: more literal characters first, then fewer wildcards. Negative when `a` wins. */
export function compareSpecificity(a: Glob, b: Glob): number {
  return b.literals - a.literals || a.wildcards - b.wildcards;
}

// ---- Language comparisons (lint) ----------------------------------------------------------
// A glob is a small NFA over characters; two of them are compared by walking both as subset
// automata in step over an alphabet of their literal characters, `/`, and one stand-in for any
// other character. The walk is bounded; `undefined` means "could not decide" and lint stays quiet.

const MAX_STATES = 20_000;
const EXAMPLE_DIGEST = '@sha256:…';

type StateSet = readonly number[];

function closure(tokens: readonly GlobToken[], states: Iterable<number>): StateSet {
  const set = new Set(states);
  for (const s of set) {
    const t = tokens[s];
    if (t && (t.kind === 'star' || t.kind === 'any')) set.add(s + 1);
  }
  return [...set].sort((x, y) => x - y);
}

function step(tokens: readonly GlobToken[], states: StateSet, ch: string): StateSet {
  const next: number[] = [];
  for (const s of states) {
    const t = tokens[s];
    if (!t) continue;
    if (t.kind === 'lit' ? t.ch === ch : t.kind === 'one' && ch !== '/') next.push(s + 1);
    else if (t.kind === 'any' || (t.kind === 'star' && ch !== '/')) next.push(s);
  }
  return closure(tokens, next);
}

function alphabet(a: readonly GlobToken[], b: readonly GlobToken[]): string[] {
  const chars = new Set<string>(['/']);
  for (const t of [...a, ...b]) if (t.kind === 'lit') chars.add(t.ch);
  const other = [...'xyzqjkw0123456789'].find((c) => !chars.has(c)) as string;
  return [...chars, other];
}

/**
 * Breadth-first search for the shortest string whose states in `a` and `b` satisfy `goal`;
 * `null` when none exists, `undefined` when the search was cut off.
 */
function search(
  a: readonly GlobToken[],
  b: readonly GlobToken[],
  goal: (acceptA: boolean, acceptB: boolean) => boolean,
): string | null | undefined {
  const symbols = alphabet(a, b);
  const start: [StateSet, StateSet, string] = [closure(a, [0]), closure(b, [0]), ''];
  const seen = new Set<string>([`${start[0]}|${start[1]}`]);
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    if (i >= MAX_STATES) return undefined;
    const [sa, sb, text] = queue[i] as [StateSet, StateSet, string];
    if (goal(sa.includes(a.length), sb.includes(b.length))) return text;
    if (sa.length === 0) continue;
    for (const ch of symbols) {
      const na = step(a, sa, ch);
      const nb = step(b, sb, ch);
      const key = `${na}|${nb}`;
      if (na.length === 0 || seen.has(key)) continue;
      seen.add(key);
      queue.push([na, nb, text + ch]);
    }
  }
  return null;
}

function tokensOverlap(a: readonly GlobToken[], b: readonly GlobToken[]): string | null | undefined {
  return search(a, b, (x, y) => x && y);
}

/** Whether every string `inner` matches is matched by `outer`. */
function tokensInclude(outer: readonly GlobToken[], inner: readonly GlobToken[]): boolean | undefined {
  const witness = search(inner, outer, (innerAccepts, outerAccepts) => innerAccepts && !outerAccepts);
  return witness === undefined ? undefined : witness === null;
}

/** An image both patterns match (e.g. `docker.io/x/app:v1`), `null` if none, `undefined` if undecided. */
export function globsOverlap(a: Glob, b: Glob): string | null | undefined {
  const name = tokensOverlap(a.name, b.name);
  if (typeof name !== 'string') return name;
  if (a.tag === undefined && b.tag === undefined) return `${name}${EXAMPLE_DIGEST}`;
  const tag = tokensOverlap(a.tag ?? (b.tag as GlobToken[]), b.tag ?? (a.tag as GlobToken[]));
  return typeof tag === 'string' ? `${name}:${tag}` : tag;
}

/** Whether every image `inner` matches is matched by `outer` (`undefined` if undecided). */
export function globCovers(outer: Glob, inner: Glob): boolean | undefined {
  const names = tokensInclude(outer.name, inner.name);
  if (names !== true || outer.tag === undefined) return names;
  // A tagged outer pattern never matches digest pulls, which a tagless inner one does.
  if (inner.tag === undefined) return false;
  return tokensInclude(outer.tag, inner.tag);
}
