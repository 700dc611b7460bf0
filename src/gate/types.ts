// The seam between the HTTP edge and binary authorization: the edge asks the gate for what to
// serve; the gate fetches, decides, pins, checks permits and hands back bytes. It throws
// RegistryErrors, which only the edge turns into HTTP.
import type { BlobBody } from '../blobs/types.ts';
import type { FetchedManifest, ImageIndex } from '../oci/types.ts';

/** A repository at an allowlisted upstream (Docker Hub names normalised to library/...). */
export interface Repo {
  upstream: string;
  repository: string;
}

/** Who asked, as far as the proxy knows: recorded with the decisions a request causes. */
export interface ClientInfo {
  address?: string;
  userAgent?: string;
  /** The authenticated identity, when client authentication is on. */
  identity?: string;
}

export interface ManifestRequest {
  repo: Repo;
  reference: string;
  /** The client's Accept header, as sent. */
  accept: string | undefined;
  client?: ClientInfo;
  /** The client's connection: when it closes, upstream reads done only for it stop. */
  signal?: AbortSignal;
}

export interface TagPage {
  tags: string[];
  /** Set when there are more: the next page starts after this tag. */
  next?: string;
}

/** What the proxy would serve for an image now, and the steps that decide it (`pullgate check`). */
export interface Explanation {
  /** The image as asked: registry/repository:tag or @digest. */
  image: string;
  /** The digest the proxy would serve, or judged and refuses. */
  digest?: string;
  served: boolean;
  /** What a client would be told: `serves <digest>`, or the refusal. */
  message: string;
  steps: { step: string; outcome: string }[];
  reasons: string[];
  rule?: string;
}

export interface Gate {
  /** The exact manifest to serve, admitted now; throws DENIED or an upstream error otherwise. */
  manifest(req: ManifestRequest): Promise<FetchedManifest>;
  /** The blob's bytes, when it belongs to an image admitted now in this repository (or is its evidence). */
  blob(repo: Repo, digest: string): Promise<BlobBody>;
  /** The blob's length, under the same permit as `blob`. */
  blobSize(repo: Repo, digest: string): Promise<number | undefined>;
  /** One page of the repository's tags; `n` and `last` as in the distribution spec. */
  tags(repo: Repo, page: { n?: number; last?: string }, signal?: AbortSignal): Promise<TagPage>;
  /** The referrers of a digest, filtered by artifact type when one is given. */
  referrers(repo: Repo, digest: string, artifactType?: string, signal?: AbortSignal): Promise<ImageIndex>;
}
