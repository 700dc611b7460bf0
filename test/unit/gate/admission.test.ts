import test from 'ava';
import {
  effectsOf,
  evidenceSubject,
  refusal,
  type Admission,
  type Effect,
  type Parsed,
} from '../../../src/gate/admission.ts';
import type { Decision } from '../../../src/gate/decider.ts';
import type { ImageRef, Verdict } from '../../../src/policy/types.ts';
import type { AuditInput } from '../../../src/store/types.ts';

const A = `sha256:${'a'.repeat(64)}`;
const B = `sha256:${'b'.repeat(64)}`;
const image: ImageRef = { registry: 'r.test', repository: 'app', tag: '1', digest: A };

function decision(
  verdict: 'allow' | 'deny',
  opts: { cached?: boolean; judgement?: 'allow' | 'deny'; failure?: 'transient' } = {},
): Decision {
  const v: Verdict = {
    verdict,
    judgement: opts.judgement ?? verdict,
    enforcementMode: opts.judgement === 'deny' && verdict === 'allow' ? 'dryrun' : 'enforce',
    rule: 'default',
    ruleHash: 'h',
    tagMode: 'pin',
    reasons: ['because'],
  };
  return {
    image,
    verdict: v,
    cached: opts.cached ?? false,
    ms: 1,
    policyVersion: 'v1',
    ...(opts.failure ? { failure: opts.failure } : {}),
  };
}

const grant = {
  id: 'g1',
  scope: { digest: A },
  reason: 'incident',
  actor: 'admin:ops',
  expiresAt: new Date(0),
  createdAt: new Date(0),
};
const revocation = { digest: A, reason: 'CVE-1', actor: 'admin:ops', at: new Date(0) };

/** An effect list in brief: `record`, `audit:<kind>`, `count:<event>`, `denied:<reason>`, `log:<level>`, `evidence`. */
function brief(effects: Effect[]): string[] {
  return effects.map((e) => {
    switch (e.kind) {
      case 'audit':
        return `audit:${e.entry.kind}`;
      case 'count':
        return `count:${e.event}`;
      case 'log':
        return `log:${e.level}`;
      case 'evidence-blobs':
        return 'evidence';
      case 'denied':
        return `denied:${e.reason}`;
      default:
        return e.kind;
    }
  });
}

const cases: { name: string; a: Admission; recent?: boolean; revokedAuditDue?: boolean; want: string[] }[] = [
  {
    name: 'fresh allow: audited and recorded',
    a: { admit: true, via: 'policy', decision: decision('allow') },
    want: ['expect-blobs', 'audit:allow', 'record'],
  },
  {
    name: 'fresh allow, recorded recently: still audited and recorded (a fresh decision is news)',
    a: { admit: true, via: 'policy', decision: decision('allow') },
    recent: true,
    want: ['expect-blobs', 'audit:allow', 'record'],
  },
  {
    name: 'cached allow: recorded, not audited',
    a: { admit: true, via: 'policy', decision: decision('allow', { cached: true }) },
    want: ['expect-blobs', 'record'],
  },
  {
    name: 'cached allow, recorded recently: nothing written',
    a: { admit: true, via: 'policy', decision: decision('allow', { cached: true }) },
    recent: true,
    want: ['expect-blobs'],
  },
  {
    name: 'dry run that would deny: audited as such',
    a: { admit: true, via: 'policy', decision: decision('allow', { judgement: 'deny' }) },
    want: ['expect-blobs', 'audit:dryrun-deny', 'record'],
  },
  { name: 'through an index: recorded', a: { admit: true, via: 'index', index: B }, want: ['expect-blobs', 'record'] },
  {
    name: 'break-glass: counted, logged, every use audited, recorded',
    a: { admit: true, via: 'grant', decision: decision('deny'), grant },
    want: ['expect-blobs', 'count:break-glass', 'log:warn', 'audit:grant-use', 'record'],
  },
  {
    name: 'stale serve: counted, logged, audited, never recorded (it must not renew its grace)',
    a: { admit: true, via: 'stale', decision: decision('deny', { failure: 'transient' }), admittedAt: new Date(0) },
    want: ['expect-blobs', 'count:stale-serve', 'log:warn', 'audit:stale-serve'],
  },
  { name: 'evidence: its layers become servable', a: { admit: true, via: 'evidence', subject: B }, want: ['evidence'] },
  {
    name: 'revoked, audit due: counted, denied, audited',
    a: { admit: false, why: 'revoked', revocation },
    revokedAuditDue: true,
    want: ['count:revoked-hit', 'denied:revoked', 'audit:revoked-pull'],
  },
  {
    name: 'revoked, audited lately: counted and denied only',
    a: { admit: false, why: 'revoked', revocation },
    want: ['count:revoked-hit', 'denied:revoked'],
  },
  {
    name: 'fresh deny: audited',
    a: { admit: false, why: 'policy', decision: decision('deny') },
    want: ['audit:deny', 'denied:policy'],
  },
  {
    name: 'cached deny: not audited again',
    a: { admit: false, why: 'policy', decision: decision('deny', { cached: true }) },
    want: ['denied:policy'],
  },
  {
    name: 'evidence unreachable: a failure, not a judgement, so not audited',
    a: { admit: false, why: 'policy', decision: decision('deny', { failure: 'transient' }) },
    want: ['denied:policy'],
  },
  {
    name: 'evidence of an unadmitted image: nothing',
    a: { admit: false, why: 'evidence-of-unadmitted', subject: B },
    want: [],
  },
];

for (const c of cases) {
  test(`effects: ${c.name}`, (t) => {
    const effects = effectsOf(c.a, {
      image,
      recordedRecently: c.recent ?? false,
      revokedAuditDue: c.revokedAuditDue ?? false,
    });
    t.deepEqual(brief(effects), c.want);
  });
}

const staleDecision = decision('deny', { failure: 'transient' });
const policyRecords: { name: AuditInput['kind']; a: Admission }[] = [
  { name: 'allow', a: { admit: true, via: 'policy', decision: decision('allow') } },
  { name: 'deny', a: { admit: false, why: 'policy', decision: decision('deny') } },
  { name: 'grant-use', a: { admit: true, via: 'grant', decision: decision('deny'), grant } },
  { name: 'stale-serve', a: { admit: true, via: 'stale', decision: staleDecision, admittedAt: new Date(0) } },
];
for (const c of policyRecords) {
  test(`the ${c.name} record names the policy version it was judged by`, (t) => {
    const audits = effectsOf(c.a, { image, recordedRecently: false }).flatMap((e) =>
      e.kind === 'audit' ? [e.entry] : [],
    );
    t.is(audits.length, 1);
    t.is(audits[0]?.kind, c.name);
    t.is(audits[0]?.detail?.policy, 'v1');
  });
}

test('records say who asked and which policy version decided', (t) => {
  const audit = effectsOf(
    { admit: true, via: 'policy', decision: decision('allow') },
    {
      image,
      recordedRecently: false,
      client: { address: '10.0.0.7', userAgent: 'containerd/1.6', identity: 'node-a' },
    },
  ).find((e) => e.kind === 'audit');
  t.is(audit?.kind, 'audit');
  const detail = audit?.kind === 'audit' ? audit.entry.detail : undefined;
  t.deepEqual(detail?.client, { address: '10.0.0.7', userAgent: 'containerd/1.6', identity: 'node-a' });
  t.is(detail?.policy, 'v1');
});

test('refusals name what was refused and why', (t) => {
  t.regex(
    refusal({ admit: false, why: 'revoked', revocation }, image, 'x').message,
    /revoked by admin:ops at .*: CVE-1/,
  );
  t.regex(
    refusal({ admit: false, why: 'policy', decision: decision('deny') }, image, 'x').message,
    /denied by policy \(default\): because/,
  );
  t.regex(
    refusal({ admit: false, why: 'evidence-of-unadmitted', subject: B }, image, 'r.test/app:sha256-bb.sig').message,
    /signature or attestation data for sha256:b+, which is not admitted: pull the image itself/,
  );
});

const manifest = (layerTypes: string[], subject?: string): Parsed => ({
  manifest: {
    schemaVersion: 2,
    config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: A, size: 2 },
    layers: layerTypes.map((mediaType) => ({ mediaType, digest: A, size: 10 })),
    ...(subject
      ? { subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: subject, size: 1 } }
      : {}),
  },
});
const SIG = 'application/vnd.dev.cosign.simplesigning.v1+json';
const TAR = 'application/vnd.oci.image.layer.v1.tar+gzip';
const tagOf = (d: string, suffix = '') => `${d.replace(':', '-')}${suffix}`;

const subjects: [string, string, Parsed, string | undefined][] = [
  ['a .sig tag of signature layers', tagOf(B, '.sig'), manifest([SIG]), B],
  ['a .att tag of DSSE layers', tagOf(B, '.att'), manifest(['application/vnd.dsse.envelope.v1+json']), B],
  ['an image disguised under a .sig tag', tagOf(B, '.sig'), manifest([SIG, TAR]), undefined],
  ['a referrer by subject', A, manifest(['application/jose+json'], B), B],
  ['a manifest with no layers', tagOf(B, '.sig'), manifest([]), undefined],
  ['an ordinary image', '1.0', manifest([TAR]), undefined],
  ['the referrers fallback index', tagOf(B), { index: { schemaVersion: 2, manifests: [] } }, B],
  ['an index under a .sig tag', tagOf(B, '.sig'), { index: { schemaVersion: 2, manifests: [] } }, undefined],
];
for (const [name, reference, parsed, want] of subjects) {
  test(`evidence subject: ${name}`, (t) => {
    t.is(evidenceSubject(reference, parsed), want);
  });
}
