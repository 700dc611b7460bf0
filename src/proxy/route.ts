// Which upstream and repository a /v2/ request names. Pure: the request line in, a target or an
// OCI error out. Only configured upstreams can come out of here.
import { RegistryError } from '../oci/errors.ts';
import { assertBlobDigest, assertManifestReference, assertRepository } from '../oci/reference.ts';
import { looksLikeHost } from '../oci/image-name.ts';
import type { UpstreamNames } from '../oci/upstreams.ts';

export type { UpstreamNames } from '../oci/upstreams.ts';

export type Endpoint =
  | { kind: 'manifest'; reference: string }
  | { kind: 'blob'; digest: string }
  | { kind: 'tags' }
  | { kind: 'referrers'; digest: string };

export interface Target {
  /** The canonical host of the allowlisted upstream. */
  upstream: string;
  /** The repository at the upstream (Docker Hub names normalised to library/...). */
  repository: string;
  /** The name as the client wrote it in the path, for links the client follows back to us. */
  clientName: string;
  /** The `ns` query parameter the client sent, echoed into links. */
  ns?: string;
  endpoint: Endpoint;
}

const DOCKER_HUB = 'docker.io';
const ENDPOINT_RE = /^(.+?)\/(?:manifests\/([^/]+)|blobs\/([^/]+)|(tags)\/list|referrers\/([^/]+))$/;

/**
 * Parses `/v2/<name>/<endpoint>` (pathname undecoded, without the query). `ns` is containerd's
 * mirror parameter naming the registry the client meant.
 */
export function routeRequest(pathname: string, ns: string | undefined, upstreams: UpstreamNames): Target {
  if (pathname.includes('%')) {
    throw new RegistryError('invalid', 'NAME_INVALID', 'percent-encoded characters are not allowed in registry paths');
  }
  const rest = pathname.slice('/v2/'.length);
  const m = ENDPOINT_RE.exec(rest);
  if (!pathname.startsWith('/v2/') || !m) {
    throw new RegistryError(
      'not-found',
      'NAME_UNKNOWN',
      `no registry endpoint at ${pathname.slice(0, 200)}: expected /v2/<name>/manifests|blobs|tags/list|referrers/...`,
    );
  }
  const [, clientName = '', reference, blobDigest, tags, referrersDigest] = m;
  let endpoint: Endpoint;
  if (reference !== undefined) {
    assertManifestReference(reference);
    endpoint = { kind: 'manifest', reference };
  } else if (blobDigest !== undefined) {
    assertBlobDigest(blobDigest);
    endpoint = { kind: 'blob', digest: blobDigest };
  } else if (tags !== undefined) {
    endpoint = { kind: 'tags' };
  } else {
    assertBlobDigest(referrersDigest ?? '');
    endpoint = { kind: 'referrers', digest: referrersDigest ?? '' };
  }

  const { upstream, repository } = resolveName(clientName, ns, upstreams);
  return { upstream, repository, clientName, ...(ns !== undefined ? { ns } : {}), endpoint };
}

/** Whether a request path asks for a manifest (the pulls the deny counter counts), routable or not. */
export function isManifestPath(pathname: string): boolean {
  if (!pathname.startsWith('/v2/')) return false;
  return ENDPOINT_RE.exec(pathname.slice('/v2/'.length))?.[2] !== undefined;
}

/** The name a client wrote in a request path (`/v2/<name>/manifests/...`), if the path is a registry endpoint. */
export function clientNameOf(pathname: string): string | undefined {
  if (!pathname.startsWith('/v2/')) return undefined;
  return ENDPOINT_RE.exec(pathname.slice('/v2/'.length))?.[1];
}

/**
 * The allowlisted upstream and repository a client's name means: a registry host as its first
 * component, containerd's `ns`, or the default upstream. Also used for token scopes, which name
 * repositories as the client addressed them.
 */
export function resolveName(
  clientName: string,
  ns: string | undefined,
  upstreams: UpstreamNames,
): { upstream: string; repository: string } {
  let upstream: string | undefined;
  let repository = clientName;
  const first = clientName.split('/')[0] ?? '';
  if (ns !== undefined) {
    upstream = upstreams.canonical(ns.toLowerCase());
    if (!upstream) throw notAllowed(ns);
    // containerd with override_path on a path-prefixed host sends both: /v2/<registry>/<repo>?ns=<registry>
    if (clientName.includes('/') && upstreams.canonical(first) === upstream)
      repository = clientName.slice(first.length + 1);
  } else if (looksLikeHost(first) || upstreams.canonical(first)) {
    upstream = upstreams.canonical(first);
    if (!upstream) throw notAllowed(first);
    repository = clientName.slice(first.length + 1);
    if (!repository)
      throw new RegistryError(
        'invalid',
        'NAME_INVALID',
        `"${clientName}" names registry ${first} but no repository in it`,
      );
  } else if (upstreams.defaultUpstream) {
    upstream = upstreams.canonical(upstreams.defaultUpstream);
  }
  if (!upstream) {
    throw new RegistryError(
      'denied',
      'DENIED',
      `"${clientName}" names no upstream registry: prefix it with an allowlisted registry host (e.g. /v2/docker.io/${clientName}) or configure defaultUpstream`,
    );
  }
  assertRepository(repository);
  if (upstream === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  return { upstream, repository };
}

function notAllowed(host: string): RegistryError {
  return new RegistryError(
    'denied',
    'DENIED',
    `upstream not allowed: registry "${host.slice(0, 253)}" is not in this proxy's allowlist`,
  );
}
