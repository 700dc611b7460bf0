// The manifest types a client accepts, in one canonical form: requests that differ only in how
// their Accept header is written (order, q-values, extra types, wildcards) share one upstream
// fetch and one decision.
import { MANIFEST_MEDIA_TYPES } from './types.ts';

/** The manifest types named by an Accept header, in this proxy's order; every type when it names none or a wildcard. */
export function acceptedManifestTypes(accept: string | undefined): readonly string[] {
  if (!accept) return MANIFEST_MEDIA_TYPES;
  const named = new Set<string>();
  for (const part of accept.split(',')) {
    const type = part.split(';')[0]?.trim().toLowerCase() ?? '';
    if (type === '*/*' || type === 'application/*') return MANIFEST_MEDIA_TYPES;
    named.add(type);
  }
  const types = MANIFEST_MEDIA_TYPES.filter((t) => named.has(t));
  return types.length > 0 ? types : MANIFEST_MEDIA_TYPES;
}
