// An upstream repository as the blob store's origin for one blob: the gate binds it to a
// repository the blob was admitted in. A plain GET must answer 200 with the whole blob.
import type { BlobOrigin, UpstreamBlob } from './types.ts';
import { discard } from '../oci/body.ts';
import type { RegistryClient, UpstreamResponse } from '../oci/client.ts';
import { RegistryError } from '../oci/errors.ts';

export function blobOrigin(client: RegistryClient, repository: string, digest: string): BlobOrigin {
  const where = `${client.host}/${repository}@${digest}`;
  const length = (res: UpstreamResponse): number | undefined => {
    const v = res.headers['content-length'];
    const n = Number(Array.isArray(v) ? v[0] : v);
    return v !== undefined && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
  };
  return {
    upstream: client.host,
    repository,
    async get(): Promise<UpstreamBlob> {
      const res = await client.blob('GET', repository, digest);
      if (res.status === 200) return { size: length(res), body: res.body };
      if (res.status === 206) {
        discard(res.body);
        throw new RegistryError(
          'upstream',
          'UNAVAILABLE',
          `upstream ${client.host} answered a plain GET of blob ${where} with 206 partial content; refusing it`,
        );
      }
      throw await client.statusError(res, 'BLOB_UNKNOWN');
    },
    async head(): Promise<{ size: number | undefined }> {
      const res = await client.blob('HEAD', repository, digest);
      if (res.status === 200) {
        discard(res.body);
        return { size: length(res) };
      }
      throw await client.statusError(res, 'BLOB_UNKNOWN');
    },
  };
}
