// CLI commands that act through the admin API of a running proxy: pins, drift, revocation,
// break-glass grants, audit, policy reload.
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.ts';
import { AdminClient } from './admin-client.ts';
import { table, type Output } from './output.ts';

const COMMON = {
  config: { type: 'string', short: 'c' },
  'admin-url': { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
} as const;

interface Common {
  config?: string;
  'admin-url'?: string;
  token?: string;
  json?: boolean;
}

export function clientOf(values: Common): AdminClient {
  let url = values['admin-url'] ?? process.env.PULLGATE_ADMIN_URL;
  let token = values.token ?? process.env.PULLGATE_ADMIN_TOKEN;
  if (!url || !token) {
    const config = loadConfig(values.config);
    url ??= `http://${config.admin.host.includes(':') ? `[${config.admin.host}]` : config.admin.host}:${config.admin.port}`;
    token ??= config.admin.token;
  }
  return new AdminClient(url, token);
}

type Handler = (args: string[], out: Output) => Promise<number>;

function command<O extends Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>>(
  options: O,
  minPositionals: number,
  usage: string,
  run: (
    values: Common & Record<string, unknown>,
    positionals: string[],
    client: AdminClient,
    out: Output,
  ) => Promise<number>,
): Handler {
  return async (args, out) => {
    const { values, positionals } = parseArgs({
      args,
      options: { ...COMMON, ...options },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length < minPositionals) {
      out.err(`usage: ${usage}\n`);
      return 2;
    }
    return run(values as Common & Record<string, unknown>, positionals, clientOf(values as Common), out);
  };
}

const pinsLs = command({}, 0, 'pullgate pins ls', async (v, _p, client, out) => {
  const { pins } = await client.call<{
    pins: { upstream: string; repository: string; tag: string; digest: string; rule: string; updatedAt: string }[];
  }>('GET', '/api/v1/pins');
  out.result(v.json, pins, () =>
    table(
      ['IMAGE', 'DIGEST', 'RULE', 'UPDATED'],
      pins.map((p) => [`${p.upstream}/${p.repository}:${p.tag}`, p.digest, p.rule, p.updatedAt]),
    ),
  );
  return 0;
});

const pinsApprove = command(
  {},
  2,
  'pullgate pins approve REGISTRY/REPO:TAG DIGEST',
  async (v, [image, digest], client, out) => {
    const r = await client.call<{ pin: unknown; resolvedDrift: number[] }>('POST', '/api/v1/pins/approve', {
      image,
      digest,
    });
    out.result(
      v.json,
      r,
      () =>
        `pinned ${image} to ${digest}${r.resolvedDrift.length ? ` (resolved drift ${r.resolvedDrift.join(', ')})` : ''}\nthe digest is still judged by policy when it is pulled\n`,
    );
    return 0;
  },
);

const pinsRm = command({}, 1, 'pullgate pins rm REGISTRY/REPO:TAG', async (v, [image], client, out) => {
  const r = await client.call<{ removed: boolean }>('DELETE', '/api/v1/pins', { image });
  out.result(v.json, r, () =>
    r.removed ? `removed the pin of ${image}; the next pull pins it afresh\n` : `${image} was not pinned\n`,
  );
  return r.removed ? 0 : 1;
});

const driftLs = command({ all: { type: 'boolean' } }, 0, 'pullgate drift ls [--all]', async (v, _p, client, out) => {
  const { drift } = await client.call<{
    drift: {
      id: number;
      upstream: string;
      repository: string;
      tag: string;
      pinnedDigest: string;
      upstreamDigest: string;
      count: number;
      lastSeen: string;
      resolved: boolean;
    }[];
  }>('GET', `/api/v1/drift${v.all ? '?all=true' : ''}`);
  out.result(v.json, drift, () =>
    table(
      ['ID', 'IMAGE', 'PINNED', 'UPSTREAM NOW', 'SEEN', 'LAST'],
      drift.map((d) => [
        String(d.id),
        `${d.upstream}/${d.repository}:${d.tag}`,
        d.pinnedDigest,
        d.upstreamDigest,
        String(d.count),
        d.lastSeen,
      ]),
    ),
  );
  return 0;
});

const revoke = command(
  { reason: { type: 'string' } },
  1,
  'pullgate revoke DIGEST --reason TEXT',
  async (v, [digest], client, out) => {
    if (typeof v.reason !== 'string') throw new Error('--reason is required: say why, it goes into the audit trail');
    const r = await client.call<{ revocation: unknown }>('POST', '/api/v1/revocations', { digest, reason: v.reason });
    out.result(v.json, r, () => `revoked ${digest}: it and every tag pinned to it are denied on every replica\n`);
    return 0;
  },
);

const unrevoke = command({}, 1, 'pullgate unrevoke DIGEST', async (v, [digest], client, out) => {
  const r = await client.call<{ removed: boolean }>('DELETE', `/api/v1/revocations/${digest}`);
  out.result(v.json, r, () =>
    r.removed ? `${digest} is no longer revoked; policy judges it again\n` : `${digest} was not revoked\n`,
  );
  return r.removed ? 0 : 1;
});

const grant = command(
  {
    digest: { type: 'string' },
    repository: { type: 'string' },
    'expires-in': { type: 'string' },
    reason: { type: 'string' },
  },
  0,
  'pullgate grant (--digest D | --repository REGISTRY/REPO) --expires-in 4h --reason TEXT',
  async (v, _p, client, out) => {
    if ((v.digest === undefined) === (v.repository === undefined))
      throw new Error('give exactly one of --digest or --repository');
    const r = await client.call<{ grant: { id: string; expiresAt: string } }>('POST', '/api/v1/grants', {
      ...(v.digest ? { digest: v.digest } : { repository: v.repository }),
      expiresIn: v['expires-in'],
      reason: v.reason,
    });
    out.result(
      v.json,
      r,
      () =>
        `break-glass grant ${r.grant.id} admits ${v.digest ?? v.repository} despite policy until ${r.grant.expiresAt}; every use is audited\n`,
    );
    return 0;
  },
);

const grants = command({ all: { type: 'boolean' } }, 0, 'pullgate grants [--all]', async (v, _p, client, out) => {
  const { grants: list } = await client.call<{
    grants: { id: string; scope: Record<string, string>; reason: string; actor: string; expiresAt: string }[];
  }>('GET', `/api/v1/grants${v.all ? '?all=true' : ''}`);
  out.result(v.json, list, () =>
    table(
      ['ID', 'SCOPE', 'EXPIRES', 'BY', 'REASON'],
      list.map((g) => [
        g.id,
        g.scope.digest ?? `${g.scope.upstream}/${g.scope.repository}`,
        g.expiresAt,
        g.actor,
        g.reason,
      ]),
    ),
  );
  return 0;
});

interface AuditRow {
  seq: number;
  at: string;
  kind: string;
  actor: string;
  upstream?: string;
  repository?: string;
  tag?: string;
  digest?: string;
  rule?: string;
  reasons?: string[];
}

function auditTable(records: AuditRow[]): string {
  return table(
    ['SEQ', 'AT', 'KIND', 'ACTOR', 'IMAGE', 'RULE', 'REASONS'],
    records.map((r) => [
      String(r.seq),
      r.at,
      r.kind,
      r.actor,
      `${r.upstream ? `${r.upstream}/${r.repository}` : ''}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest.slice(0, 19)}` : ''}`,
      r.rule ?? '',
      (r.reasons ?? []).join('; '),
    ]),
  );
}

const auditQuery = command(
  {
    digest: { type: 'string' },
    image: { type: 'string' },
    kind: { type: 'string' },
    since: { type: 'string' },
    until: { type: 'string' },
    limit: { type: 'string' },
  },
  0,
  'pullgate audit query [--digest D] [--image REGISTRY/REPO] [--kind K] [--since T] [--until T] [--limit N]',
  async (v, _p, client, out) => {
    const q = new URLSearchParams();
    for (const key of ['digest', 'image', 'kind', 'since', 'until', 'limit'])
      if (typeof v[key] === 'string') q.set(key, v[key] as string);
    const { records } = await client.call<{ records: AuditRow[] }>('GET', `/api/v1/audit?${q}`);
    out.result(v.json, records, () => auditTable(records));
    return 0;
  },
);

const auditTail = command(
  { lines: { type: 'string', short: 'n' } },
  0,
  'pullgate audit tail [-n N]',
  async (v, _p, client, out) => {
    const n = Math.max(1, Math.min(10_000, Number(v.lines ?? 20) || 20));
    const { records } = await client.call<{ records: AuditRow[] }>('GET', `/api/v1/audit?limit=${n}`);
    const newestLast = [...records].sort((a, b) => a.seq - b.seq);
    out.result(v.json, newestLast, () => auditTable(newestLast));
    return 0;
  },
);

const auditVerify = command({}, 0, 'pullgate audit verify', async (v, _p, client, out) => {
  out.err('verifying the audit hash chain…\n');
  const r = await client.call<{
    ok: boolean;
    records: number;
    problems: { seq: number; problem: string; message: string }[];
  }>('GET', '/api/v1/audit/verify');
  out.result(v.json, r, () =>
    r.ok
      ? `audit trail intact: ${r.records} records, hash chain verified\n`
      : `AUDIT TRAIL TAMPERED: ${r.problems.length} problem(s) in ${r.records} records\n${r.problems.map((p) => `  seq ${p.seq}: ${p.problem}: ${p.message}`).join('\n')}\n`,
  );
  return r.ok ? 0 : 1;
});

const policyReload = command({}, 0, 'pullgate policy reload', async (v, _p, client, out) => {
  const r = await client.call<{ changed: boolean }>('POST', '/api/v1/policy/reload');
  out.result(v.json, r, () =>
    r.changed ? 'policy reloaded; cached verdicts dropped on every replica\n' : 'policy unchanged\n',
  );
  return 0;
});

export const ADMIN_COMMANDS: Record<string, Handler> = {
  'pins ls': pinsLs,
  'pins approve': pinsApprove,
  'pins rm': pinsRm,
  'drift ls': driftLs,
  revoke,
  unrevoke,
  grant,
  grants,
  'audit tail': auditTail,
  'audit query': auditQuery,
  'audit verify': auditVerify,
  'policy reload': policyReload,
};
