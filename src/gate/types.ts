// The seam between the registry proxy and binary authorization: the proxy asks the gate what
// manifest to serve and whether a blob may be served; the gate owns fetching, deciding and pinning.
import type { FetchedManifest } from '../oci/types.ts';
import type { Target } from '../proxy/route.ts';

export interface ManifestRequest {
  target: Target;
  reference: string;
  accept: string | undefined;
}

export interface Gate {
  /** The exact manifest to serve, already admitted; throws a RegistryError (DENIED, upstream errors) otherwise. */
  manifest(req: ManifestRequest): Promise<FetchedManifest>;
  /**
   * Resolves when `digest` may be served from `target`'s repository, with the most bytes it may
   * have (evidence blobs are small; image blobs unbounded); throws DENIED otherwise.
   */
  blob(target: Target, digest: string): Promise<{ maxBytes: number }>;
}
