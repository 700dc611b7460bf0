// Where an attestor's evidence is looked up: the image's own repository, or a repository the
// policy names (`signaturesRepository: registry/repository`), possibly on another registry.

export interface EvidenceLocation {
  /** As the policy names it; resolved against the allowlist at decision time. */
  readonly registry: string;
  readonly repository: string;
}

const NAME_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const REPOSITORY_RE = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`);
const HOST_LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?';
const HOST_RE = new RegExp(`^(?:${HOST_LABEL}(?:\\.${HOST_LABEL})*|\\[[0-9A-Fa-f:.]+\\])(?::[0-9]{1,5})?$`);

/** Parses `registry/repository`; returns a sentence saying what is wrong otherwise. */
export function parseSignaturesRepository(text: string): EvidenceLocation | string {
  const slash = text.indexOf('/');
  const example = 'write registry/repository, e.g. ghcr.io/acme/signatures';
  if (slash <= 0) return `"${text}" names no registry; ${example}`;
  const registry = text.slice(0, slash);
  let repository = text.slice(slash + 1);
  if (!HOST_RE.test(registry) || !(registry.includes('.') || registry.includes(':') || registry === 'localhost'))
    return `"${registry}" is not a registry host (a name with a dot or a port, or localhost); ${example}`;
  if (/[:@]/.test(repository)) return `"${text}" names a tag or digest; give the repository only`;
  if (repository.length > 255 || !REPOSITORY_RE.test(repository))
    return `"${repository}" is not a valid repository name: lowercase components of [a-z0-9] separated by "/", ".", "_" or "-"`;
  // Docker Hub's official images live under library/, as the proxy's routing normalizes them.
  if (registry === 'docker.io' && !repository.includes('/')) repository = `library/${repository}`;
  return { registry, repository };
}
