import test from 'ava';
import { parseDigest } from '../../../src/oci/reference.ts';
import { upstreamStatusError } from '../../../src/oci/body.ts';

test('parseDigest accepts sha256 and sha512 only, lowercase hex of the right length', (t) => {
  t.deepEqual(parseDigest(`sha256:${'0'.repeat(64)}`), { algorithm: 'sha256', hex: '0'.repeat(64) });
  t.is(typeof parseDigest(`sha256:${'0'.repeat(63)}`), 'string');
  t.is(typeof parseDigest(`sha256:${'A'.repeat(64)}`), 'string');
  t.is(typeof parseDigest(`sha512:${'f'.repeat(128)}`), 'object');
});

test('upstream answers map to OCI errors that name the upstream', (t) => {
  const nf = upstreamStatusError(
    'r.test',
    404,
    Buffer.from('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'),
    'BLOB_UNKNOWN',
  );
  t.is(nf.failure, 'not-found');
  t.is(nf.code, 'MANIFEST_UNKNOWN');
  t.regex(nf.message, /upstream r\.test answered 404: manifest unknown/);
  t.is(upstreamStatusError('r.test', 404, Buffer.from('not json'), 'BLOB_UNKNOWN').code, 'BLOB_UNKNOWN');
  const limited = upstreamStatusError('r.test', 429, Buffer.alloc(0), 'BLOB_UNKNOWN', '30');
  t.is(limited.code, 'TOOMANYREQUESTS');
  t.is(limited.retryAfter, '30');
  t.is(upstreamStatusError('r.test', 500, Buffer.alloc(0), 'BLOB_UNKNOWN').failure, 'upstream');
  t.is(upstreamStatusError('r.test', 401, Buffer.alloc(0), 'BLOB_UNKNOWN').code, 'UNAUTHORIZED');
});
