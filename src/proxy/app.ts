// The registry-facing HTTP app: read-only OCI distribution endpoints over the gate.
import { Transform, pipeline, type TransformCallback } from 'node:stream';
import express, { type NextFunction, type Request, type Response } from 'express';
import { RegistryError } from '../oci/errors.ts';
import { discard } from '../oci/body.ts';
import { errorHeaders, httpStatus } from './http-errors.ts';
import { digestHasher } from '../oci/digest.ts';
import { MediaType, type ImageIndex } from '../oci/types.ts';
import type { Gate } from '../gate/types.ts';
import type { Logger } from '../ops/log.ts';
import type { Metrics } from '../ops/metrics.ts';
import { routeRequest, type Target } from './route.ts';
import type { Upstreams } from './upstreams.ts';

export interface AppDeps {
  upstreams: Upstreams;
  gate: Gate;
  logger: Logger;
  metrics: Metrics;
  manifestMaxBytes: number;
  /** false while starting or draining: /readyz answers 503. */
  ready(): boolean;
}

const API_VERSION = { 'docker-distribution-api-version': 'registry/2.0' };
const LIST_MAX_BYTES = 16 * 1024 * 1024;

/** What the request log line says about a request, filled in as the handler learns it. */
interface RequestFacts {
  route: string;
  upstream?: string;
  repository?: string;
  reference?: string;
  digest?: string;
  error?: string;
}

function facts(res: Response): RequestFacts {
  return res.locals as RequestFacts;
}

export function sendError(res: Response, err: RegistryError): void {
  if (res.headersSent) {
    res.destroy(err);
    return;
  }
  facts(res).error = `${err.code}: ${err.message}`;
  res
    .status(httpStatus(err))
    .set({ ...API_VERSION, ...errorHeaders(err), 'content-type': 'application/json' })
    .end(JSON.stringify(err.body()));
}

export function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(requestLog(deps));

  app.get('/healthz', (_req, res) => {
    facts(res).route = 'healthz';
    res.json({ status: 'ok' });
  });
  app.get('/readyz', (_req, res) => {
    facts(res).route = 'readyz';
    const ready = deps.ready();
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready' });
  });
  app.get('/metrics', async (_req, res) => {
    facts(res).route = 'metrics';
    res.set('content-type', deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });

  app.use('/v2', (req, res, next) => {
    const f = facts(res);
    f.route = 'v2';
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.set('allow', 'GET, HEAD');
      sendError(
        res,
        new RegistryError('method', 'UNSUPPORTED', `${req.method} is not supported: this proxy is read-only`),
      );
      return;
    }
    const url = new URL(req.originalUrl, 'http://proxy.invalid');
    if (url.pathname === '/v2/' || url.pathname === '/v2') {
      f.route = 'base';
      res
        .status(200)
        .set({ ...API_VERSION, 'content-type': 'application/json' })
        .end('{}');
      return;
    }
    let target: Target;
    try {
      target = routeRequest(rawPath(req.originalUrl), url.searchParams.get('ns') ?? undefined, deps.upstreams);
    } catch (err) {
      next(err);
      return;
    }
    f.route = target.endpoint.kind;
    f.upstream = target.upstream;
    f.repository = target.repository;
    if (target.ns) res.set('oci-namespace', target.ns);
    handle(deps, target, url.searchParams, req, res).catch(next);
  });

  app.use((_req, res) => {
    facts(res).route ??= 'unknown';
    sendError(res, new RegistryError('not-found', 'NAME_UNKNOWN', 'not found: registry endpoints are under /v2/'));
  });

  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof RegistryError) {
      sendError(res, err);
      return;
    }
    deps.logger.error({ err }, 'unexpected error');
    sendError(res, new RegistryError('internal', 'UNAVAILABLE', 'internal error in the proxy; see its log'));
  });
  return app;
}

/** The path as the client sent it: undecoded, so that encoded slashes and dots can be refused. */
function rawPath(originalUrl: string): string {
  const q = originalUrl.indexOf('?');
  return q < 0 ? originalUrl : originalUrl.slice(0, q);
}

async function handle(
  deps: AppDeps,
  target: Target,
  query: URLSearchParams,
  req: Request,
  res: Response,
): Promise<void> {
  const client = deps.upstreams.client(target.upstream);
  const f = facts(res);
  const { endpoint } = target;
  switch (endpoint.kind) {
    case 'manifest': {
      f.reference = endpoint.reference;
      const manifest = await deps.gate.manifest({ target, reference: endpoint.reference, accept: req.get('accept') });
      f.digest = manifest.digest;
      res.status(200).set({
        ...API_VERSION,
        'content-type': manifest.mediaType,
        'content-length': String(manifest.bytes.length),
        'docker-content-digest': manifest.digest,
      });
      if (req.method === 'HEAD') res.end();
      else res.end(manifest.bytes);
      return;
    }
    case 'blob': {
      f.digest = endpoint.digest;
      const { maxBytes } = await deps.gate.blob(target, endpoint.digest);
      const range = req.get('range');
      const bounded = Number.isFinite(maxBytes);
      if (bounded && range)
        throw new RegistryError(
          'denied',
          'DENIED',
          `blob ${endpoint.digest} is signature data: fetch it whole, without Range`,
        );
      const up = await client.blob(req.method as 'GET' | 'HEAD', target.repository, endpoint.digest, range);
      if (up.status !== 200 && up.status !== 206) {
        if (up.status === 416) {
          discard(up.body);
          res
            .status(416)
            .set({ ...API_VERSION, ...pick(up.headers, ['content-range']) })
            .end();
          return;
        }
        throw await client.statusError(up, 'BLOB_UNKNOWN');
      }
      const length = Number(up.headers['content-length']);
      if (bounded && !(length <= maxBytes)) {
        discard(up.body);
        throw new RegistryError(
          'denied',
          'DENIED',
          `blob ${endpoint.digest} is admitted as signature data of at most ${maxBytes} bytes, but the upstream offers ${Number.isFinite(length) ? length : 'an unknown number of'} bytes`,
        );
      }
      res.status(up.status).set({
        ...API_VERSION,
        'content-type': 'application/octet-stream',
        ...pick(up.headers, ['content-length', 'content-range', 'accept-ranges', 'content-type']),
        'docker-content-digest': endpoint.digest,
      });
      if (req.method === 'HEAD') {
        discard(up.body);
        res.end();
        return;
      }
      // A whole blob is hashed on the way through: content that does not match its digest is cut off
      // before the last byte, so no client ever receives it complete.
      const verify = up.status === 200 && !range;
      await new Promise<void>((resolve) => {
        const done = (err: NodeJS.ErrnoException | null) => {
          if (err && !res.writableEnded) {
            f.error = `stream: ${err.message}`;
            res.destroy();
          }
          resolve();
        };
        if (verify) pipeline(up.body, verifyingStream(endpoint.digest, target.upstream), res, done);
        else pipeline(up.body, res, done);
      });
      return;
    }
    case 'tags': {
      const pageQuery = new URLSearchParams();
      for (const key of ['n', 'last']) {
        const v = query.get(key);
        if (v !== null) pageQuery.set(key, v);
      }
      const page = await client.tags(target.repository, pageQuery, LIST_MAX_BYTES);
      const { body, next } = paginateTags(page.body, target, pageQuery, page.link);
      res
        .status(200)
        .set({ ...API_VERSION, 'content-type': 'application/json', ...(next ? { link: next } : {}) })
        .end(body);
      return;
    }
    case 'referrers': {
      f.digest = endpoint.digest;
      const { index } = await client.referrers(target.repository, endpoint.digest, LIST_MAX_BYTES);
      const artifactType = query.get('artifactType');
      const manifests = artifactType ? index.manifests.filter((d) => d.artifactType === artifactType) : index.manifests;
      const body: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests };
      res.status(200).set({
        ...API_VERSION,
        'content-type': MediaType.ociIndex,
        ...(artifactType ? { 'oci-filters-applied': 'artifactType' } : {}),
      });
      res.end(JSON.stringify(body));
      return;
    }
  }
}

function pick(headers: Record<string, string | string[] | undefined>, names: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of names) {
    const v = headers[name];
    const value = Array.isArray(v) ? v[0] : v;
    if (value !== undefined) out[name] = value;
  }
  return out;
}

function verifyingStream(digest: string, upstream: string): Transform {
  const hasher = digestHasher(digest);
  if (!hasher) throw new RegistryError('invalid', 'DIGEST_INVALID', `cannot verify digest ${digest}`);
  // The latest chunk is held back until the next one arrives, so the final bytes leave only after
  // the whole content has been checked.
  let held: Buffer | undefined;
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      hasher.hash.update(chunk);
      const out = held;
      held = chunk;
      cb(null, out);
    },
    flush(cb: TransformCallback) {
      if (!hasher.matches()) {
        cb(new Error(`upstream ${upstream} sent content for ${digest} that does not hash to it`));
        return;
      }
      cb(null, held);
    },
  });
}

/**
 * One page of tags as the client asked for it. Registries that ignore `n`/`last` (distribution 2.8
 * does for tags) are paginated here, in the spec's lexical order; an upstream's own next link is
 * pointed back at this proxy in the form the client addressed it.
 */
export function paginateTags(
  upstreamBody: Buffer,
  target: Target,
  query: URLSearchParams,
  upstreamLink?: string,
): { body: string; next?: string } {
  let doc: { name?: unknown; tags?: unknown };
  try {
    doc = JSON.parse(upstreamBody.toString('utf8'));
  } catch {
    throw new RegistryError(
      'upstream',
      'UNAVAILABLE',
      `upstream ${target.upstream} answered the tag list of ${target.repository} with invalid JSON`,
    );
  }
  let tags = Array.isArray(doc.tags) ? doc.tags.filter((x): x is string => typeof x === 'string') : [];
  const nText = query.get('n');
  const n = nText === null ? undefined : Number(nText);
  if (n !== undefined && (!Number.isInteger(n) || n < 0))
    throw new RegistryError('invalid', 'UNSUPPORTED', `n must be a non-negative whole number, got "${nText}"`);
  const last = query.get('last');
  let nextLast: string | undefined;
  const upstreamNext = upstreamLink ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(upstreamLink)?.[1] : undefined;
  if (upstreamNext) {
    nextLast = new URL(upstreamNext, 'http://upstream.invalid').searchParams.get('last') ?? undefined;
  } else if (n !== undefined) {
    tags = [...tags].sort();
    if (last !== null) tags = tags.filter((tag) => tag > last);
    if (tags.length > n) {
      tags = tags.slice(0, n);
      nextLast = tags.at(-1);
    }
  }
  const body = JSON.stringify({ name: target.clientName, tags });
  if (nextLast === undefined) return { body };
  const q = new URLSearchParams();
  if (n !== undefined) q.set('n', String(n));
  q.set('last', nextLast);
  if (target.ns) q.set('ns', target.ns);
  return { body, next: `</v2/${target.clientName}/tags/list?${q}>; rel="next"` };
}

function requestLog(deps: AppDeps) {
  return (req: Request, res: Response, next: NextFunction) => {
    const started = performance.now();
    res.on('close', () => {
      const f = facts(res);
      const ms = performance.now() - started;
      const route = f.route ?? 'unknown';
      deps.metrics.requests.inc({ route, method: req.method, status: String(res.statusCode) });
      deps.metrics.latency.observe({ route }, ms / 1000);
      if (route === 'healthz' || route === 'readyz' || route === 'metrics') return;
      deps.logger.info(
        {
          method: req.method,
          route,
          upstream: f.upstream,
          repository: f.repository,
          reference: f.reference,
          digest: f.digest,
          status: res.statusCode,
          ms: Math.round(ms * 10) / 10,
          complete: res.writableFinished,
          ...(f.error ? { error: f.error } : {}),
        },
        'request',
      );
    });
    next();
  };
}
