// One page of a repository's tags from the upstream's answer. Registries that ignore `n`/`last`
// (distribution 2.8 does for tags) are paged here, in the spec's lexical order; an upstream that
// pages itself keeps its own cursor. Pure.
import { RegistryError } from '../oci/errors.ts';
import type { TagPage } from './types.ts';

export function tagPage(
  upstreamBody: Buffer,
  where: string,
  page: { n?: number; last?: string },
  upstreamLink?: string,
): TagPage {
  let doc: { tags?: unknown };
  try {
    doc = JSON.parse(upstreamBody.toString('utf8')) as { tags?: unknown };
  } catch {
    throw new RegistryError('upstream', 'UNAVAILABLE', `upstream ${where} answered its tag list with invalid JSON`);
  }
  let tags = Array.isArray(doc?.tags) ? doc.tags.filter((x): x is string => typeof x === 'string') : [];
  const upstreamNext = upstreamLink ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(upstreamLink)?.[1] : undefined;
  if (upstreamNext) {
    const next = new URL(upstreamNext, 'http://upstream.invalid').searchParams.get('last') ?? undefined;
    return next === undefined ? { tags } : { tags, next };
  }
  if (page.n === undefined) return { tags };
  tags = [...tags].sort();
  const { last } = page;
  if (last !== undefined) tags = tags.filter((tag) => tag > last);
  if (tags.length <= page.n) return { tags };
  tags = tags.slice(0, page.n);
  const next = tags.at(-1);
  return next === undefined ? { tags } : { tags, next };
}
