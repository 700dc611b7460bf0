// The admin API: a separate listener (loopback by default) with bearer-token auth. Every action is
// audited and published to the other replicas through the store.
import { createHash, timingSafeEqual } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { AdminIdentity } from '../config/types.ts';
import type { RevalidationReport } from '../gate/revalidate.ts';
import type { Explanation, Repo } from '../gate/types.ts';
import { RegistryError } from '../oci/errors.ts';
import { httpStatus } from '../proxy/http-errors.ts';
import { parseDigest } from '../oci/reference.ts';
import type { Logger } from '../ops/log.ts';
import { AUDIT_KINDS, type AuditKind, type AuditQuery, type AuditRecord, type Store } from '../store/types.ts';
import { resolveImage, resolveImageFilter } from '../oci/image-name.ts';

export interface AdminDeps {
  store: Store;
  /** Who may use the API: each token with its name, some read-only. */
  identities: readonly AdminIdentity[];
  logger: Logger;
  /** Canonical upstream host for a host or alias, if allowlisted. */
  canonical(host: string): string | undefined;
  /** What the proxy would serve for an image now, step by step (no writes). */
  explain(repo: Repo, reference: string): Promise<Explanation>;
  /** Re-validation of recently served digests: its last report, and a run on demand. */
  revalidator: { last: RevalidationReport | undefined; run(): Promise<RevalidationReport> };
  /** The upstream of image names that name no registry, as for pulls. */
  defaultUpstream?: string | undefined;
  /** Reloads the policy file; `actor` is who asked (audited with the reload). */
  reloadPolicy(actor: string): { ok: boolean; changed: boolean; error?: string };
  /** Serves /metrics here, without a token (`metrics.listener: admin`), for Prometheus. */
  metrics?: () => Promise<{ contentType: string; body: string }>;
}

/** What `why` looks for: the records of a verdict on a pull. */
const DECISION_KINDS: readonly AuditKind[] = ['allow', 'deny', 'dryrun-deny', 'grant-use', 'stale-serve'];
const DURATION_RE = /^(\d+)(s|m|h|d)$/;
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
const MAX_GRANT_SECONDS = 30 * 86400;
const BODY_LIMIT = '64kb';

function bad(message: string): RegistryError {
  return new RegistryError('invalid', 'UNSUPPORTED', message);
}

function digest(d: unknown, what = 'digest'): string {
  if (typeof d !== 'string') throw bad(`${what} is required`);
  const parsed = parseDigest(d);
  if (typeof parsed === 'string') throw bad(`${what}: ${parsed}`);
  return d;
}

function text(v: unknown, what: string): string {
  if (typeof v !== 'string' || v.trim() === '') throw bad(`${what} is required (a non-empty string)`);
  if (v.length > 2000) throw bad(`${what} is longer than 2000 characters`);
  return v;
}

function sameToken(given: string, expected: string): boolean {
  // Hashing first makes the comparison constant-time whatever the lengths.
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

export function createAdminApp(deps: AdminDeps): express.Express {
  const { store } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  const { metrics } = deps;
  if (metrics) {
    app.get('/metrics', (_req, res, next) => {
      metrics().then(({ contentType, body }) => res.set('content-type', contentType).send(body), next);
    });
  }
  app.use((req, res, next) => {
    const header = req.get('authorization') ?? '';
    const m = /^Bearer (.+)$/.exec(header);
    // Every token is compared (in constant time), so timing does not tell which identity almost matched.
    const given = m?.[1];
    const who = given === undefined ? undefined : deps.identities.filter((i) => sameToken(given, i.token))[0];
    if (!who) {
      res
        .status(401)
        .set('www-authenticate', 'Bearer realm="pullgate-admin"')
        .json(
          new RegistryError(
            'unauthorized',
            'UNAUTHORIZED',
            'admin API needs "Authorization: Bearer <admin token>"',
          ).body(),
        );
      return;
    }
    if (who.readOnly && req.method !== 'GET' && req.method !== 'HEAD') {
      res.status(403).json(new RegistryError('denied', 'DENIED', `admin identity "${who.name}" is read-only`).body());
      return;
    }
    res.locals.actor = `admin:${who.name}`;
    next();
  });
  app.use(express.json({ limit: BODY_LIMIT }));

  const actorOf = (req: Request): string => (req.res?.locals as { actor: string }).actor;
  const names = { canonical: (h: string) => deps.canonical(h), defaultUpstream: deps.defaultUpstream };
  const image = (v: unknown, what = 'image') => {
    const resolved = resolveImage(text(v, what), names);
    if (typeof resolved === 'string') throw bad(`${what}: ${resolved}`);
    return resolved;
  };
  const wrap =
    (fn: (req: Request, res: Response) => Promise<unknown>) => (req: Request, res: Response, next: NextFunction) => {
      fn(req, res).then((body) => {
        if (!res.headersSent) res.json(body);
      }, next);
    };

  app.get(
    '/api/v1/pins',
    wrap(async (req) => {
      const q = req.query;
      return {
        pins: await store.listPins({
          ...(typeof q.upstream === 'string' ? { upstream: q.upstream } : {}),
          ...(typeof q.repository === 'string' ? { repository: q.repository } : {}),
        }),
      };
    }),
  );

  /** Approve: move a pin to a digest (resolving its drift). The digest still has to pass policy when served. */
  app.post(
    '/api/v1/pins/approve',
    wrap(async (req) => {
      const img = image(req.body?.image);
      if (!img.tag) throw bad('image must name a tag, like registry/repo:tag');
      const to = digest(req.body?.digest);
      const actor = actorOf(req);
      const approved = await store.approvePin(img.upstream, img.repository, img.tag, to, actor);
      deps.logger.info(
        { actor, image: `${img.upstream}/${img.repository}:${img.tag}`, from: approved.from, to },
        'admin: pin approved',
      );
      return { pin: approved.pin, resolvedDrift: approved.resolvedDrift };
    }),
  );

  app.delete(
    '/api/v1/pins',
    wrap(async (req) => {
      const img = image(req.body?.image);
      if (!img.tag) throw bad('image must name a tag, like registry/repo:tag');
      const removed = await store.deletePin(img.upstream, img.repository, img.tag, {
        kind: 'unpin',
        actor: actorOf(req),
        upstream: img.upstream,
        repository: img.repository,
        tag: img.tag,
      });
      return { removed };
    }),
  );

  /** The same verdict the proxy would give a pull of this image now, with each step (`pullgate check`). */
  app.get(
    '/api/v1/check',
    wrap(async (req) => {
      const img = image(req.query.image);
      const reference = img.digest ?? img.tag ?? 'latest';
      return deps.explain({ upstream: img.upstream, repository: img.repository }, reference);
    }),
  );

  app.get(
    '/api/v1/revalidation',
    wrap(async () => ({ report: deps.revalidator.last ?? null })),
  );
  app.post(
    '/api/v1/revalidation',
    wrap(async () => ({ report: await deps.revalidator.run() })),
  );

  /** An admin closes a drift record by hand, with a reason. */
  app.post(
    '/api/v1/drift/:id/resolve',
    wrap(async (req) => {
      const id = Number.parseInt(text(req.params.id, 'id'), 10);
      if (!Number.isSafeInteger(id) || id <= 0) throw bad('id must be a drift record number (see drift ls)');
      const reason = text(req.body?.reason, 'reason');
      const event = (await store.listDrift()).find((d) => d.id === id);
      if (!event) throw new RegistryError('not-found', 'UNSUPPORTED', `no drift record ${id}`);
      const resolved = await store.resolveDrift(id, {
        kind: 'drift',
        actor: actorOf(req),
        upstream: event.upstream,
        repository: event.repository,
        tag: event.tag,
        digest: event.upstreamDigest,
        reasons: [reason],
        detail: { resolved: [id] },
      });
      return { drift: resolved };
    }),
  );

  app.get(
    '/api/v1/drift',
    wrap(async (req) => ({ drift: await store.listDrift({ unresolvedOnly: req.query.all !== 'true' }) })),
  );

  app.get(
    '/api/v1/revocations',
    wrap(async () => ({ revocations: await store.listRevocations() })),
  );
  app.post(
    '/api/v1/revocations',
    wrap(async (req) => {
      const d = digest(req.body?.digest);
      const reason = text(req.body?.reason, 'reason');
      const actor = actorOf(req);
      const revocation = await store.revoke(d, reason, actor, { kind: 'revoke', actor, digest: d, reasons: [reason] });
      deps.logger.warn({ actor, digest: d, reason }, 'admin: digest revoked');
      return { revocation };
    }),
  );
  app.delete(
    '/api/v1/revocations/:digest',
    wrap(async (req) => {
      const d = digest(req.params.digest);
      const removed = await store.unrevoke(d, { kind: 'unrevoke', actor: actorOf(req), digest: d });
      return { removed };
    }),
  );

  app.get(
    '/api/v1/grants',
    wrap(async (req) => ({ grants: await store.listGrants(req.query.all === 'true') })),
  );
  app.post(
    '/api/v1/grants',
    wrap(async (req) => {
      const body = req.body ?? {};
      const reason = text(body.reason, 'reason');
      const m = DURATION_RE.exec(text(body.expiresIn, 'expiresIn'));
      const seconds = m ? Number(m[1]) * (UNIT_SECONDS[m[2] ?? 's'] ?? 1) : NaN;
      if (!(seconds > 0 && seconds <= MAX_GRANT_SECONDS))
        throw bad('expiresIn must be a duration like 30m, 4h or 2d, at most 30d');
      let scope: { digest: string } | { upstream: string; repository: string };
      if (body.digest !== undefined) scope = { digest: digest(body.digest) };
      else {
        const img = image(body.repository, 'repository');
        if (img.tag || img.digest) throw bad('repository must be registry/repository without a tag or digest');
        scope = { upstream: img.upstream, repository: img.repository };
      }
      const actor = actorOf(req);
      const grant = await store.createGrant(
        { scope, reason, actor, expiresAt: new Date(Date.now() + seconds * 1000) },
        (g) => ({
          kind: 'grant',
          actor,
          ...('digest' in scope
            ? { digest: scope.digest }
            : { upstream: scope.upstream, repository: scope.repository }),
          reasons: [reason],
          detail: { grant: g.id, expiresAt: g.expiresAt.toISOString() },
        }),
      );
      deps.logger.warn(
        { actor, grant: grant.id, scope, reason, expiresAt: grant.expiresAt },
        'admin: break-glass grant issued',
      );
      return { grant };
    }),
  );
  app.delete(
    '/api/v1/grants/:id',
    wrap(async (req) => {
      const id = text(req.params.id, 'id');
      const removed = await store.revokeGrant(id, {
        kind: 'admin',
        actor: actorOf(req),
        detail: { action: 'revoke-grant', grant: id },
      });
      return { removed };
    }),
  );

  app.get(
    '/api/v1/audit',
    wrap(async (req) => {
      const q = req.query;
      const query: AuditQuery = {};
      if (typeof q.digest === 'string') query.digest = digest(q.digest);
      if (typeof q.image === 'string') {
        const filter = resolveImageFilter(text(q.image, 'image'), names);
        if (typeof filter === 'string') throw bad(`image: ${filter}`);
        if ('prefix' in filter) query.image = filter.prefix;
        else {
          query.upstream = filter.upstream;
          query.repository = filter.repository;
          if (filter.tag) query.tag = filter.tag;
          if (filter.digest) {
            if (query.digest && query.digest !== filter.digest) throw bad('image names another digest than digest');
            query.digest = filter.digest;
          }
        }
      }
      if (typeof q.kind === 'string') {
        // one kind, or several separated by commas
        const kinds = q.kind.split(',');
        const unknown = kinds.find((k) => !AUDIT_KINDS.includes(k as AuditKind));
        if (unknown !== undefined) throw bad(`kind "${unknown}" is not one of ${AUDIT_KINDS.join(', ')}`);
        query.kinds = kinds as AuditKind[];
      }
      for (const key of ['since', 'until'] as const) {
        const v = q[key];
        if (typeof v === 'string') {
          const t = new Date(v);
          if (Number.isNaN(t.getTime())) throw bad(`${key} must be an RFC 3339 time`);
          query[key] = t;
        }
      }
      if (typeof q.limit === 'string') query.limit = Math.min(10_000, Math.max(1, Number.parseInt(q.limit, 10) || 100));
      if (typeof q.afterSeq === 'string') query.afterSeq = Number.parseInt(q.afterSeq, 10) || 0;
      return { records: await store.queryAudit(query) };
    }),
  );
  /**
   * The latest verdict recorded for an image, with what else decides what it gets now: the pin of
   * its tag (a tag is served at its pinned digest) and a revocation of that digest (revoked hits are
   * refused before policy and leave no decision record).
   */
  app.get(
    '/api/v1/why',
    wrap(async (req) => {
      const img = image(req.query.image);
      const pin = img.tag ? await store.getPin(img.upstream, img.repository, img.tag) : undefined;
      const base = { upstream: img.upstream, repository: img.repository, kinds: [...DECISION_KINDS], limit: 1 };
      const servedDigest = img.digest ?? pin?.digest;
      let decision: AuditRecord | undefined;
      // The digest a tag is served at decides; its verdict may have been recorded for another tag.
      if (servedDigest) [decision] = await store.queryAudit({ ...base, digest: servedDigest });
      if (!decision && !img.digest)
        [decision] = await store.queryAudit({ ...base, ...(img.tag ? { tag: img.tag } : {}) });
      const revokedDigest = servedDigest ?? decision?.digest;
      const revocation = revokedDigest ? await store.getRevocation(revokedDigest) : undefined;
      const drift = img.tag
        ? (await store.listDrift({ unresolvedOnly: true })).filter(
            (d) => d.upstream === img.upstream && d.repository === img.repository && d.tag === img.tag,
          )
        : [];
      return {
        image: img,
        ...(decision ? { decision } : {}),
        ...(pin ? { pin } : {}),
        ...(revocation ? { revocation } : {}),
        drift,
      };
    }),
  );

  app.get(
    '/api/v1/audit/verify',
    wrap(async () => store.verifyAudit()),
  );

  app.post(
    '/api/v1/policy/reload',
    wrap(async (req) => {
      const result = deps.reloadPolicy(actorOf(req));
      if (!result.ok)
        throw new RegistryError(
          'unprocessable',
          'UNSUPPORTED',
          `policy not reloaded, the previous one stays in force: ${result.error}`,
        );
      // The reload itself is audited where every reload is (file edit, SIGHUP, here): by the policy holder.
      if (result.changed) await store.publish({ type: 'policy-changed' });
      return result;
    }),
  );

  app.use((_req, res) => {
    res.status(404).json(new RegistryError('not-found', 'UNSUPPORTED', 'no such admin endpoint').body());
  });
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof RegistryError) {
      res.status(httpStatus(err)).json(err.body());
      return;
    }
    const type = (err as { type?: unknown }).type;
    if (type === 'entity.parse.failed') {
      res.status(400).json(bad('request body is not valid JSON').body());
      return;
    }
    if (type === 'entity.too.large') {
      res
        .status(413)
        .json(
          new RegistryError(
            'too-large',
            'SIZE_INVALID',
            `request body is larger than the admin API accepts (${BODY_LIMIT}); send a smaller JSON document`,
          ).body(),
        );
      return;
    }
    // The body parser's other refusals (an unsupported charset or encoding, an aborted upload) are the client's.
    const status = (err as { status?: unknown }).status;
    if (typeof type === 'string' && typeof status === 'number' && status >= 400 && status < 500) {
      res.status(status).json(bad(`request body refused: ${(err as Error).message}`).body());
      return;
    }
    deps.logger.error({ err }, 'admin API error');
    res.status(500).json(new RegistryError('internal', 'UNAVAILABLE', 'internal error; see the proxy log').body());
  });
  return app;
}
