// What a verified signature must say about the image: pure checks on signed payloads.

export const SIMPLE_SIGNING_TYPE = 'cosign container image signature';
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const IN_TOTO_STATEMENT_TYPES: readonly string[] = [
  'https://in-toto.io/Statement/v0.1',
  'https://in-toto.io/Statement/v1',
];
/** cosign 3's `cosign sign` writes this statement: a signature in attestation form. */
export const COSIGN_SIGN_PREDICATE = 'https://sigstore.dev/cosign/sign/v1';

export type ContentCheck =
  | { ok: true; kind: 'signature' | 'attestation'; predicateType?: string; predicate?: unknown }
  | { ok: false; reason: string };

/** A cosign simple-signing payload must name exactly the served digest. */
export function checkSimpleSigningPayload(payload: Buffer, digest: string): ContentCheck {
  const doc = parseJson(payload);
  const critical = (
    doc as { critical?: { type?: unknown; image?: { 'docker-manifest-digest'?: unknown } } } | undefined
  )?.critical;
  if (!critical) return { ok: false, reason: 'payload is not a simple-signing document (no "critical" section)' };
  if (critical.type !== SIMPLE_SIGNING_TYPE) {
    return { ok: false, reason: `payload type is ${JSON.stringify(critical.type)}, not "${SIMPLE_SIGNING_TYPE}"` };
  }
  const named = critical.image?.['docker-manifest-digest'];
  if (named !== digest)
    return {
      ok: false,
      reason: `payload names ${typeof named === 'string' ? named : 'no digest'}, not the served ${digest}`,
    };
  return { ok: true, kind: 'signature' };
}

/** A DSSE payload must be an in-toto statement whose subjects include the served digest. */
export function checkStatement(payloadType: string, payload: Buffer, digest: string): ContentCheck {
  if (payloadType !== IN_TOTO_PAYLOAD_TYPE)
    return { ok: false, reason: `DSSE payload type is "${payloadType}", not "${IN_TOTO_PAYLOAD_TYPE}"` };
  const statement = parseJson(payload) as
    { _type?: unknown; subject?: unknown; predicateType?: unknown; predicate?: unknown } | undefined;
  if (typeof statement !== 'object' || statement === null)
    return { ok: false, reason: 'DSSE payload is not a JSON object' };
  if (typeof statement._type !== 'string' || !IN_TOTO_STATEMENT_TYPES.includes(statement._type)) {
    return { ok: false, reason: `DSSE payload is not an in-toto statement (_type ${JSON.stringify(statement._type)})` };
  }
  if (typeof statement.predicateType !== 'string' || statement.predicateType === '') {
    return { ok: false, reason: 'in-toto statement has no predicateType' };
  }
  const [algorithm = '', hex = ''] = digest.split(':');
  const subjects = Array.isArray(statement.subject) ? statement.subject : [];
  const names = subjects.some((s: unknown) => {
    const value = (s as { digest?: Record<string, unknown> } | null)?.digest?.[algorithm];
    return typeof value === 'string' && value.toLowerCase() === hex;
  });
  if (!names) {
    const listed = subjects
      .map((s: unknown) => (s as { digest?: Record<string, unknown> } | null)?.digest?.[algorithm])
      .filter((v) => typeof v === 'string');
    const named = listed.length ? listed.map((v) => `${algorithm}:${v}`).join(', ') : `no ${algorithm} digest`;
    return { ok: false, reason: `in-toto statement subjects name ${named}, not the served ${digest}` };
  }
  return {
    ok: true,
    kind: statement.predicateType === COSIGN_SIGN_PREDICATE ? 'signature' : 'attestation',
    predicateType: statement.predicateType,
    predicate: statement.predicate,
  };
}

function parseJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
}
