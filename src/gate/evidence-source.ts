// Evidence discovery reads signatures through the same allowlisted client the proxy uses.
import { isNotFound } from '../oci/errors.ts';
import type { RegistryClient } from '../oci/client.ts';
import type { FetchedManifest, ImageIndex } from '../oci/types.ts';
import type { EvidenceSource } from '../verify/source.ts';

export function registryEvidenceSource(client: RegistryClient, manifestMaxBytes: number): EvidenceSource {
  return {
    async manifest(repository: string, reference: string): Promise<FetchedManifest | undefined> {
      try {
        return await client.manifest(repository, reference, undefined, manifestMaxBytes);
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    blob: (repository, digest, maxBytes) => client.smallBlob(repository, digest, maxBytes),
    async referrers(repository: string, digest: string, artifactType?: string): Promise<ImageIndex> {
      const { index } = await client.referrers(repository, digest, manifestMaxBytes);
      return artifactType
        ? { ...index, manifests: index.manifests.filter((d) => d.artifactType === artifactType) }
        : index;
    },
  };
}
