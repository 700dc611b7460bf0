// CLI commands that act through the admin API of a running proxy: pins, drift, revocation,
// break-glass grants, audit, why, policy reload. Image names are resolved by the proxy, with its
// allowlist and defaultUpstream, exactly as for pulls.
import { loadConfig } from '../config/load.ts';
import type { AdminIdentity } from '../config/types.ts';
import { AdminClient } from './admin-client.ts';
import { UsageError, type CommandSpec, type OptionSpec, type Values } from './args.ts';
import type { Command } from './command.ts';
import { table, type Output } from './output.ts';
import { parseTime } from './time.ts';

const COMMON: Record<string, OptionSpec> = {
  'admin-url': {
    type: 'string',
    value: 'URL',
    help: 'admin API of the proxy (default: PULLGATE_ADMIN_URL, else from --config)',
  },
  token: { type: 'string', value: 'TOKEN', help: 'admin token (default: PULLGATE_ADMIN_TOKEN, else from --config)' },
  config: { type: 'string', short: 'c', value: 'FILE', help: 'read the admin address and token from this config file' },
  'token-name': {
    type: 'string',
    value: 'NAME',
    help: 'with --config: act as this admin.tokens identity (default: admin.token, else the first one not read-only)',
  },
  json: { type: 'boolean', help: 'print JSON instead of a table' },
};

export function clientOf(values: Values): AdminClient {
  let url = (values['admin-url'] as string | undefined) ?? process.env.PULLGATE_ADMIN_URL;
  let token = (values.token as string | undefined) ?? process.env.PULLGATE_ADMIN_TOKEN;
  if (!url || !token) {
    const config = loadConfig(values.config as string | undefined);
    url ??= `http://${config.admin.host.includes(':') ? `[${config.admin.host}]` : config.admin.host}:${config.admin.port}`;
    token ??= adminTokenOf(config.admin.identities, values['token-name'] as string | undefined);
  }
  return new AdminClient(url, token);
}

/**
 * The token a CLI run on the proxy's own config acts with: the named identity, else the first one
 * that may change things (`admin.token` is listed first, as "admin"), else a read-only one.
 */
export function adminTokenOf(identities: readonly AdminIdentity[], name: string | undefined): string | undefined {
  if (name === undefined) return (identities.find((i) => !i.readOnly) ?? identities[0])?.token;
  const named = identities.find((i) => i.name === name);
  if (!named)
    throw new UsageError(
      `--token-name ${name}: the config's admin.tokens names no such identity (it has: ${identities.map((i) => i.name).join(', ') || 'none'})`,
    );
  return named.token;
}

type AdminRun = (values: Values, positionals: string[], client: AdminClient, out: Output) => Promise<number>;

export function admin(
  spec: Omit<CommandSpec, 'options'> & { options?: Record<string, OptionSpec> },
  run: AdminRun,
): Command {
  return {
    admin: true,
    spec: { ...spec, options: { ...spec.options, ...COMMON } },
    run: (values, positionals, out) => run(values, positionals, clientOf(values), out),
  };
}

const str = (v: unknown) => (typeof v === 'string' ? v : undefined);

const pinsLs = admin(
  { name: 'pins ls', args: [], summary: 'the digest each tag is served at' },
  async (v, _p, client, out) => {
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
  },
);

const pinsApprove = admin(
  {
    name: 'pins approve',
    args: ['[REGISTRY/]REPO:TAG', 'DIGEST'],
    summary: 'pin a tag to a digest (after drift, say)',
  },
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

const pinsRm = admin(
  { name: 'pins rm', args: ['[REGISTRY/]REPO:TAG'], summary: 'unpin a tag; the next pull pins it afresh' },
  async (v, [image], client, out) => {
    const r = await client.call<{ removed: boolean }>('DELETE', '/api/v1/pins', { image });
    out.result(v.json, r, () =>
      r.removed ? `removed the pin of ${image}; the next pull pins it afresh\n` : `${image} was not pinned\n`,
    );
    return r.removed ? 0 : 1;
  },
);

const driftLs = admin(
  {
    name: 'drift ls',
    args: [],
    summary: 'tags that moved upstream away from their pin',
    options: { all: { type: 'boolean', help: 'include resolved drift' } },
  },
  async (v, _p, client, out) => {
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
      }[];
    }>('GET', `/api/v1/drift${v.all ? '?all=true' : ''}`);
    out.result(v.json, drift, () =>
      table(
        ['ID', 'IMAGE', 'PINNED', 'UPSTREAM LAST SEEN', 'TIMES', 'LAST SEEN AT'],
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
  },
);

const revoke = admin(
  {
    name: 'revoke',
    args: ['DIGEST'],
    summary: 'deny a digest on every replica, whatever the policy',
    options: { reason: { type: 'string', value: 'TEXT', help: 'why; it goes into the audit trail', required: true } },
  },
  async (v, [digest], client, out) => {
    const r = await client.call<{ revocation: unknown }>('POST', '/api/v1/revocations', { digest, reason: v.reason });
    out.result(v.json, r, () => `revoked ${digest}: it and every tag pinned to it are denied on every replica\n`);
    return 0;
  },
);

const unrevoke = admin(
  { name: 'unrevoke', args: ['DIGEST'], summary: 'lift a revocation' },
  async (v, [digest], client, out) => {
    const r = await client.call<{ removed: boolean }>(
      'DELETE',
      `/api/v1/revocations/${encodeURIComponent(digest ?? '')}`,
    );
    out.result(v.json, r, () =>
      r.removed ? `${digest} is no longer revoked; policy judges it again\n` : `${digest} was not revoked\n`,
    );
    return r.removed ? 0 : 1;
  },
);

const revocationsLs = admin(
  { name: 'revocations ls', args: [], summary: 'the revoked digests' },
  async (v, _p, client, out) => {
    const { revocations } = await client.call<{
      revocations: { digest: string; reason: string; actor: string; at: string }[];
    }>('GET', '/api/v1/revocations');
    out.result(v.json, revocations, () =>
      table(
        ['DIGEST', 'AT', 'BY', 'REASON'],
        revocations.map((r) => [r.digest, r.at, r.actor, r.reason]),
      ),
    );
    return 0;
  },
);

const grant = admin(
  {
    name: 'grant',
    args: [],
    summary: 'break glass: admit despite policy, for a while',
    options: {
      digest: { type: 'string', value: 'DIGEST', help: 'the digest to admit (in any repository)' },
      repository: { type: 'string', value: '[REGISTRY/]REPO', help: 'the repository to admit, every digest in it' },
      'expires-in': {
        type: 'string',
        value: 'DURATION',
        help: 'how long, like 30m, 4h or 2d (at most 30d)',
        required: true,
      },
      reason: { type: 'string', value: 'TEXT', help: 'why; it goes into the audit trail', required: true },
    },
    notes: [
      'give exactly one of --digest or --repository.',
      'list grants with `pullgate grants`, cancel one with `pullgate grant revoke ID`.',
    ],
  },
  async (v, _p, client, out) => {
    if ((v.digest === undefined) === (v.repository === undefined))
      throw new UsageError('give exactly one of --digest or --repository');
    const r = await client.call<{ grant: { id: string; expiresAt: string } }>('POST', '/api/v1/grants', {
      ...(v.digest ? { digest: v.digest } : { repository: v.repository }),
      expiresIn: v['expires-in'],
      reason: v.reason,
    });
    out.result(
      v.json,
      r,
      () =>
        `break-glass grant ${r.grant.id} admits ${str(v.digest) ?? str(v.repository)} despite policy until ${r.grant.expiresAt}; every use is audited\n`,
    );
    return 0;
  },
);

const grantRevoke = admin(
  {
    name: 'grant revoke',
    args: ['ID'],
    summary: 'cancel a break-glass grant',
  },
  async (v, [id], client, out) => {
    const r = await client.call<{ removed: boolean }>('DELETE', `/api/v1/grants/${encodeURIComponent(id ?? '')}`);
    out.result(v.json, r, () =>
      r.removed
        ? `grant ${id} cancelled: what it admitted is judged by policy again on every replica\n`
        : `no active grant ${id} (expired, already cancelled, or never issued: see pullgate grants --all)\n`,
    );
    return r.removed ? 0 : 1;
  },
);

const grants = admin(
  {
    name: 'grants',
    args: [],
    summary: 'the active break-glass grants',
    options: { all: { type: 'boolean', help: 'include expired and cancelled grants' } },
  },
  async (v, _p, client, out) => {
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
  },
);

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
  detail?: Record<string, unknown>;
}

function imageOf(r: AuditRow, digestChars = 19): string {
  return `${r.upstream ? `${r.upstream}/${r.repository}` : ''}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest.slice(0, digestChars)}` : ''}`;
}

function auditTable(records: AuditRow[]): string {
  return table(
    ['SEQ', 'AT', 'KIND', 'ACTOR', 'IMAGE', 'RULE', 'REASONS'],
    records.map((r) => [String(r.seq), r.at, r.kind, r.actor, imageOf(r), r.rule ?? '', (r.reasons ?? []).join('; ')]),
  );
}

function time(v: unknown, option: string): string | undefined {
  if (typeof v !== 'string') return undefined;
  const t = parseTime(v, new Date());
  if (typeof t === 'string') throw new UsageError(`--${option}: ${t}`);
  return t.toISOString();
}

const auditQuery = admin(
  {
    name: 'audit query',
    args: [],
    summary: 'search the audit trail',
    options: {
      digest: { type: 'string', value: 'DIGEST', help: 'records of this digest' },
      image: {
        type: 'string',
        value: '[REGISTRY/]REPO[:TAG]',
        help: 'with a tag or @digest that image; without, every repository starting with it',
      },
      kind: {
        type: 'string',
        value: 'KIND[,KIND]',
        help: 'allow, deny, dryrun-deny, drift, revoke, grant-use, stale-serve, policy-reload, …',
      },
      since: { type: 'string', value: 'TIME', help: 'not before: an age like 30m, 1h, 7d, or an RFC 3339 time' },
      until: { type: 'string', value: 'TIME', help: 'not after: an age or an RFC 3339 time' },
      limit: { type: 'string', value: 'N', help: 'at most N records (default 100, at most 10000)' },
    },
  },
  async (v, _p, client, out) => {
    const q = new URLSearchParams();
    for (const key of ['digest', 'image', 'kind'] as const) if (typeof v[key] === 'string') q.set(key, v[key]);
    for (const key of ['since', 'until'] as const) {
      const t = time(v[key], key);
      if (t) q.set(key, t);
    }
    if (v.limit !== undefined) {
      const n = Number(v.limit);
      if (!Number.isInteger(n) || n < 1 || n > 10_000)
        throw new UsageError('--limit must be a whole number from 1 to 10000');
      q.set('limit', String(n));
    }
    const { records } = await client.call<{ records: AuditRow[] }>('GET', `/api/v1/audit?${q}`);
    out.result(v.json, records, () => auditTable(records));
    return 0;
  },
);

const auditTail = admin(
  {
    name: 'audit tail',
    args: [],
    summary: 'the newest audit records',
    options: { lines: { type: 'string', short: 'n', value: 'N', help: 'how many (default 20, at most 10000)' } },
  },
  async (v, _p, client, out) => {
    const n = v.lines === undefined ? 20 : Number(v.lines);
    if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new UsageError('-n must be a whole number from 1 to 10000');
    const { records } = await client.call<{ records: AuditRow[] }>('GET', `/api/v1/audit?limit=${n}`);
    const newestLast = [...records].sort((a, b) => a.seq - b.seq);
    out.result(v.json, newestLast, () => auditTable(newestLast));
    return 0;
  },
);

const auditVerify = admin(
  { name: 'audit verify', args: [], summary: 'check the audit hash chain; exit 1 if tampered' },
  async (v, _p, client, out) => {
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
  },
);

interface WhyAnswer {
  image: { upstream: string; repository: string; tag?: string; digest?: string };
  decision?: AuditRow;
  pin?: { digest: string; rule: string; updatedAt: string };
  revocation?: { digest: string; reason: string; actor: string; at: string };
  drift: { pinnedDigest: string; upstreamDigest: string; count: number; lastSeen: string }[];
}

/** The decision kinds after which the image was served. */
const SERVED = new Set(['allow', 'dryrun-deny', 'grant-use', 'stale-serve']);
const HEADLINE: Record<string, string> = {
  allow: 'ALLOWED',
  deny: 'DENIED',
  'dryrun-deny': 'WOULD BE DENIED (dry run: served)',
  'grant-use': 'DENIED BY POLICY, SERVED UNDER A BREAK-GLASS GRANT',
  'stale-serve': 'SERVED STALE (evidence unreachable, admitted before)',
};

function explain(w: WhyAnswer, asked: string): string {
  const name = `${w.image.upstream}/${w.image.repository}${w.image.tag ? `:${w.image.tag}` : ''}${w.image.digest ? `@${w.image.digest}` : ''}`;
  const d = w.decision;
  const lines: string[] = [];
  if (w.revocation) {
    lines.push(`REVOKED ${name}@${w.revocation.digest}`);
    lines.push(`  revoked by ${w.revocation.actor} at ${w.revocation.at}: ${w.revocation.reason}`);
    lines.push('  revoked digests are refused before policy; `pullgate unrevoke DIGEST` after remediation');
  }
  if (d) {
    lines.push(`${w.revocation ? 'latest decision before that: ' : ''}${HEADLINE[d.kind] ?? d.kind} ${imageOf(d, 71)}`);
    lines.push(
      `  at ${d.at} (audit seq ${d.seq})${d.rule ? `, rule ${d.rule}` : ''}${d.detail?.mode ? ` (${String(d.detail.mode)})` : ''}`,
    );
    if (d.kind === 'grant-use' && d.detail?.grant)
      lines.push(`  grant ${String(d.detail.grant)}: ${String(d.detail.grantReason ?? '')}`);
    for (const reason of d.reasons ?? []) lines.push(`  reason: ${reason}`);
  } else if (!w.revocation) {
    lines.push(
      `no decision recorded for ${name}: it was not pulled through this proxy since its verdict was last recorded, or the name differs (registry, tag)`,
    );
  }
  if (w.pin) lines.push(`  tag pinned to ${w.pin.digest} (rule ${w.pin.rule}, since ${w.pin.updatedAt})`);
  for (const m of w.drift)
    lines.push(
      `  drift: upstream now has ${m.upstreamDigest} (seen ${m.count}×, last ${m.lastSeen}); pullgate pins approve ${asked} ${m.upstreamDigest}`,
    );
  lines.push(`  re-evaluate now, with every signature examined: pullgate check ${asked}`);
  return `${lines.join('\n')}\n`;
}

const why = admin(
  {
    name: 'why',
    args: ['[REGISTRY/]REPO[:TAG|@DIGEST]'],
    summary: 'the latest decision for an image, with its reasons',
    notes: [
      'the latest verdict recorded in the audit trail for the image (for a tag: for the digest the tag is',
      'pinned to), its revocation if it is revoked, its pin and open drift. Without a registry, the',
      "proxy's defaultUpstream applies, as for pulls.",
      'exit 0 when the image was served at its latest decision, 1 when it was refused or nothing is recorded.',
    ],
  },
  async (v, [image], client, out) => {
    const w = await client.call<WhyAnswer>('GET', `/api/v1/why?${new URLSearchParams({ image: image ?? '' })}`);
    out.result(v.json, w, () => explain(w, image ?? ''));
    return !w.revocation && w.decision && SERVED.has(w.decision.kind) ? 0 : 1;
  },
);

const policyReload = admin(
  {
    name: 'policy reload',
    args: [],
    summary: 're-read the policy file (every replica follows)',
  },
  async (v, _p, client, out) => {
    const r = await client.call<{ changed: boolean }>('POST', '/api/v1/policy/reload');
    out.result(v.json, r, () =>
      r.changed ? 'policy reloaded; cached verdicts dropped on every replica\n' : 'policy unchanged\n',
    );
    return 0;
  },
);

export const ADMIN_OPTIONS = COMMON;

export const ADMIN_COMMANDS: Command[] = [
  pinsLs,
  pinsApprove,
  pinsRm,
  driftLs,
  revoke,
  unrevoke,
  revocationsLs,
  grant,
  grantRevoke,
  grants,
  auditTail,
  auditQuery,
  auditVerify,
  why,
  policyReload,
];
