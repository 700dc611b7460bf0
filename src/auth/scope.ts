// Token scopes as clients ask for them (`repository:NAME:pull,push`, several per parameter,
// separated by spaces). Bounded: a request asks for a few repositories, never thousands. Pure.

export interface ScopeRequest {
  type: string;
  /** The name as the client addressed it (may contain ":" for a registry port). */
  name: string;
  actions: string[];
}

export const MAX_SCOPES = 16;
const MAX_SCOPE_LENGTH = 512;
const TYPE_RE = /^[a-z0-9]+$/;
const ACTION_RE = /^[a-z*]+$/;

export function parseScopes(params: readonly string[]): ScopeRequest[] | string {
  const items = params.flatMap((p) => p.split(' ')).filter(Boolean);
  if (items.length > MAX_SCOPES) return `more than ${MAX_SCOPES} scopes in one token request`;
  const out: ScopeRequest[] = [];
  for (const item of items) {
    if (item.length > MAX_SCOPE_LENGTH) return `a scope is longer than ${MAX_SCOPE_LENGTH} characters`;
    const first = item.indexOf(':');
    const last = item.lastIndexOf(':');
    if (first <= 0 || last === first) return `scope "${item.slice(0, 100)}" is not TYPE:NAME:ACTIONS`;
    const type = item.slice(0, first);
    const name = item.slice(first + 1, last);
    const actions = item
      .slice(last + 1)
      .split(',')
      .filter(Boolean);
    if (!TYPE_RE.test(type) || name === '' || !actions.every((a) => ACTION_RE.test(a)))
      return `scope "${item.slice(0, 100)}" is not TYPE:NAME:ACTIONS`;
    const same = out.find((s) => s.type === type && s.name === name);
    if (same) same.actions = [...new Set([...same.actions, ...actions])];
    else out.push({ type, name, actions: [...new Set(actions)] });
  }
  return out;
}

/** The challenge scope for a repository as the client addressed it. */
export function pullScope(name: string): string {
  return `repository:${name}:pull`;
}
