// What a token grants: for each repository scope a client asked for, pull if a rule lets the
// identity pull that repository, or if the repository is on a pass-through upstream and the client
// came with its own credentials for it (the upstream then decides on every request). Nothing
// else is ever granted: pullgate is read-only. Pure.
import type { AccessRule } from './rules.ts';
import { pullRule } from './rules.ts';
import type { Grant, Identity } from './types.ts';

/** A requested repository scope with the canonical `upstream/repository` it names. */
export interface ResolvedScope {
  /** The canonical `upstream/repository`. */
  name: string;
  upstream: string;
  actions: string[];
}

export type Holder = { kind: 'identity'; identity: Identity } | { kind: 'pass-through' };

export function grantsFor(
  rules: readonly AccessRule[],
  holder: Holder,
  scopes: readonly ResolvedScope[],
  passThroughHosts: ReadonlySet<string>,
): Grant[] {
  return scopes.map((s) => {
    const asked = s.actions.includes('pull') || s.actions.includes('*');
    const allowed =
      holder.kind === 'identity'
        ? pullRule(rules, holder.identity, s.name) !== undefined
        : passThroughHosts.has(s.upstream);
    return { name: s.name, actions: asked && allowed ? ['pull'] : [] };
  });
}
