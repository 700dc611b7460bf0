// Evidence discovery reads signatures through the same allowlisted clients the proxy uses: the
// image's own upstream, and any other allowlisted upstream an attestor keeps its signatures on.
import { isNotFound } from '../oci/errors.ts';
import type { RegistryClient } from '../oci/client.ts';
import type { FetchedManifest, ImageIndex } from '../oci/types.ts';
import type { EvidenceSource } from '../verify/source.ts';

/** The allowlist as evidence discovery sees it (proxy/upstreams.ts implements it). */
export interface EvidenceRegistries {
  /** The canonical host of an allowlisted registry named by host or alias; undefined when not allowlisted. */
  canonical(name: string): string | undefined;
  /** The client of an allowlisted upstream, by canonical host. */
  client(host: string): RegistryClient;
}

/** The evidence source of `upstream` (canonical host), able to reach the other allowlisted registries. */
export function registryEvidenceSource(
  registries: EvidenceRegistries,
  upstream: string,
  manifestMaxBytes: number,
): EvidenceSource {
  const sources = new Map<string, EvidenceSource>();
  const sourceFor = (host: string): EvidenceSource => {
    let source = sources.get(host);
    if (!source) {
      source = clientSource(registries.client(host), manifestMaxBytes, forRegistry);
      sources.set(host, source);
    }
    return source;
  };
  const forRegistry = (registry: string): { registry: string; source: EvidenceSource } | undefined => {
    const host = registries.canonical(registry);
    return host === undefined ? undefined : { registry: host, source: sourceFor(host) };
  };
  return sourceFor(upstream);
}

function clientSource(
  client: RegistryClient,
  manifestMaxBytes: number,
  forRegistry: EvidenceSource['forRegistry'],
): EvidenceSource {
  return {
    async manifest(repository: string, reference: string): Promise<FetchedManifest | undefined> {
      try {
        // Without the parsed document: up to limits.evidence.manifests of these are held together
        // while a decision runs, and their parsed forms would cost several times their bytes.
        const { bytes, mediaType, digest } = await client.manifest(repository, reference, undefined, manifestMaxBytes);
        return { bytes, mediaType, digest };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    blob: (repository, digest, maxBytes, stop) => client.smallBlobUnless(repository, digest, maxBytes, stop),
    async referrers(repository: string, digest: string, artifactType?: string): Promise<ImageIndex> {
      const { index } = await client.referrers(repository, digest, manifestMaxBytes);
      return artifactType
        ? { ...index, manifests: index.manifests.filter((d) => d.artifactType === artifactType) }
        : index;
    },
    forRegistry,
  };
}
