// What evidence discovery needs from a registry. The proxy implements it with its OCI client,
// bound to one upstream; every method refuses hosts that are not allowlisted by construction.
import type { FetchedManifest, ImageIndex } from '../oci/types.ts';

export interface EvidenceSource {
  /** A manifest by tag or digest; undefined when the registry answers 404. Size-limited, digest computed. */
  manifest(repository: string, reference: string): Promise<FetchedManifest | undefined>;
  /**
   * A small blob (signature payloads, bundles), fully read and checked against its digest;
   * size-limited. With `stop`, each piece is shown to it as it arrives: once it returns true the
   * rest is not read and the answer is undefined (the caller knows why it stopped).
   */
  blob(
    repository: string,
    digest: string,
    maxBytes: number,
    stop?: (piece: Buffer) => boolean,
  ): Promise<Buffer | undefined>;
  /** The referrers of a digest (OCI 1.1 API, falling back to the `sha256-<hex>` tag schema); empty index when none. */
  referrers(repository: string, digest: string, artifactType?: string): Promise<ImageIndex>;
  /**
   * The source for another registry, where an attestor keeps its signatures (signaturesRepository):
   * `registry` is the canonical name the allowlist knows it by (the image's own registry gives this
   * source back). Undefined when that registry is not allowlisted: it is never contacted.
   */
  forRegistry(registry: string): { registry: string; source: EvidenceSource } | undefined;
}
