// Image names as admins type them into the CLI: the registry part is optional when the proxy has a
// defaultUpstream, exactly as for pulls (route.ts), and aliases name their upstream. Pure.
import { isTag, isValidRepository, parseDigest } from './reference.ts';
import type { UpstreamNames } from './upstreams.ts';

/** Looks like a registry host (has a dot or a port, or is localhost) rather than a repository component. */
export function looksLikeHost(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost';
}

export interface ResolvedImage {
  /** The canonical host of an allowlisted upstream. */
  upstream: string;
  repository: string;
  tag?: string;
  digest?: string;
}

const DOCKER_HUB = 'docker.io';
const MAX_TEXT = 512;

/** Which upstream `text` names and what remains after it, or an error. */
function splitRegistry(text: string, names: UpstreamNames): { upstream: string; rest: string } | string {
  const slash = text.indexOf('/');
  const first = slash < 0 ? text : text.slice(0, slash);
  if (slash > 0 && (looksLikeHost(first) || names.canonical(first))) {
    const upstream = names.canonical(first);
    if (!upstream) return `registry "${first}" is not an allowlisted upstream of this proxy`;
    return { upstream, rest: text.slice(slash + 1) };
  }
  const fallback = names.defaultUpstream === undefined ? undefined : names.canonical(names.defaultUpstream);
  if (!fallback)
    return `"${text}" names no registry and this proxy has no defaultUpstream: write it as registry/repository, like docker.io/library/nginx`;
  return { upstream: fallback, rest: text };
}

function normalise(upstream: string, repository: string): string {
  return upstream === DOCKER_HUB && !repository.includes('/') ? `library/${repository}` : repository;
}

/** `[registry/]repository[:tag][@digest]`; Docker Hub single names become library/... */
export function resolveImage(text: string, names: UpstreamNames): ResolvedImage | string {
  if (text.length > MAX_TEXT) return `image name longer than ${MAX_TEXT} characters`;
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    const parsed = parseDigest(digest);
    if (typeof parsed === 'string') return parsed;
  }
  const split = splitRegistry(rest, names);
  if (typeof split === 'string') return split;
  let repository = split.rest;
  let tag: string | undefined;
  const colon = repository.lastIndexOf(':');
  if (colon >= 0) {
    tag = repository.slice(colon + 1);
    repository = repository.slice(0, colon);
    if (!isTag(tag)) return `"${tag}" is not a valid tag`;
  }
  if (repository === '') return `"${text}" names a registry but no repository in it`;
  if (!isValidRepository(repository)) return `"${repository}" is not a valid repository name`;
  return {
    upstream: split.upstream,
    repository: normalise(split.upstream, repository),
    ...(tag ? { tag } : {}),
    ...(digest ? { digest } : {}),
  };
}

/**
 * An audit filter: with a tag or digest, exactly that image; without, a prefix of
 * "upstream/repository" (a registry alone, or the start of repository names).
 */
export function resolveImageFilter(text: string, names: UpstreamNames): ResolvedImage | { prefix: string } | string {
  if (text.length > MAX_TEXT) return `image name longer than ${MAX_TEXT} characters`;
  if (!/[/:@]/.test(text) && (names.canonical(text) || looksLikeHost(text))) {
    const upstream = names.canonical(text);
    return upstream ? { prefix: `${upstream}/` } : `registry "${text}" is not an allowlisted upstream of this proxy`;
  }
  const split = splitRegistry(text, names);
  if (typeof split === 'string') return split;
  if (/[:@]/.test(split.rest)) return resolveImage(text, names);
  return { prefix: `${split.upstream}/${normalise(split.upstream, split.rest)}` };
}
