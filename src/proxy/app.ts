// The registry-facing HTTP edge: read-only OCI distribution endpoints over the gate. Requests are
// routed here and answered from what the gate hands back; failures become HTTP only here.
import express, { type NextFunction, type Request, type Response } from 'express';
import type { BlobBody, ByteRange } from '../blobs/types.ts';
import { RegistryError } from '../oci/errors.ts';
import { clientGone } from '../oci/client.ts';
import { MediaType, type ImageIndex } from '../oci/types.ts';
import type { Upstreams } from '../oci/upstreams.ts';
import type { ClientInfo, Gate, Repo } from '../gate/types.ts';
import type { Logger } from '../ops/log.ts';
import { NOT_ALLOWLISTED, type Metrics } from '../ops/metrics.ts';
import { errorHeaders, httpStatus } from './http-errors.ts';
import { parseRange } from './range.ts';
import { clientNameOf, isManifestPath, routeRequest, type Target } from './route.ts';
import type { ClientAuth, ClientSession } from '../auth/client-auth.ts';

export interface AppDeps {
  upstreams: Upstreams;
  gate: Gate;
  logger: Logger;
  metrics: Metrics;
  /** A client that takes no bytes for this long while a response waits to be written is cut off. */
  clientWriteTimeoutMs: number;
  /** false while starting or draining: /readyz answers 503. */
  ready(): boolean;
  /** Client authentication; undefined: every client may pull (the embedded default). */
  auth?: ClientAuth;
  /** Whether /metrics is served here (false when it moved to the admin listener). */
  metricsHere?: boolean;
}

const API_VERSION = { 'docker-distribution-api-version': 'registry/2.0' };
/** The most of a deny's reason carried in a response header and the status line. */
const REASON_MAX = 300;

/** What the request log line says about a request, filled in as the handler learns it. */
interface RequestFacts {
  route: string;
  upstream?: string;
  repository?: string;
  reference?: string;
  digest?: string;
  source?: string;
  identity?: string;
  error?: string;
  /** The error's cause: detail kept out of the answer. */
  cause?: string;
}

function facts(res: Response): RequestFacts {
  return res.locals as RequestFacts;
}

/** Printable ASCII only: header values and the status line cannot carry anything else. */
function headerSafe(text: string): string {
  const flat = text.replace(/[^\x20-\x7e]+/g, ' ');
  return flat.length > REASON_MAX ? `${flat.slice(0, REASON_MAX - 3)}...` : flat;
}

export function sendError(res: Response, err: RegistryError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  facts(res).error = `${err.code}: ${err.message}`;
  // What must not reach the client (what an internal address answered, why a connection failed) goes to the log.
  if (err.cause instanceof Error) facts(res).cause = err.cause.message;
  res.status(httpStatus(err)).set({ ...API_VERSION, ...errorHeaders(err), 'content-type': 'application/json' });
  if (err.failure === 'denied') {
    // containerd (and so the kubelet) asks with HEAD and reports only the status line: the reason
    // goes there and into a header, so a refused pull says why even without a body.
    const reason = headerSafe(err.message);
    res.set('pullgate-reason', reason);
    res.statusMessage = headerSafe(`Forbidden by pullgate: ${err.message}`);
  }
  res.end(JSON.stringify(err.body()));
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
  if (deps.metricsHere !== false) {
    app.get('/metrics', async (_req, res) => {
      facts(res).route = 'metrics';
      res.set('content-type', deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
    });
  }
  const { auth } = deps;
  if (auth) {
    app.all('/token', (req, res, next) => {
      facts(res).route = 'token';
      auth.token(req, res).catch(next);
    });
  }

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
    const ns = url.searchParams.get('ns') ?? undefined;
    let session: ClientSession | undefined;
    try {
      // Before routing: an unauthenticated client learns nothing about names and upstreams.
      session = auth?.session(req, clientNameOf(rawPath(req.originalUrl)), ns);
    } catch (err) {
      next(err);
      return;
    }
    if (session) f.identity = session.identity;
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
      target = routeRequest(rawPath(req.originalUrl), ns, deps.upstreams);
    } catch (err) {
      // The name is the client's own text on a registry this proxy does not know: never a label.
      if (isDenied(err) && isManifestPath(rawPath(req.originalUrl)))
        deps.metrics.deniedPull(NOT_ALLOWLISTED, 'not-allowlisted');
      next(err);
      return;
    }
    f.route = target.endpoint.kind;
    f.upstream = target.upstream;
    f.repository = target.repository;
    if (target.ns) res.set('oci-namespace', target.ns);
    const authorized = auth && session ? auth.authorize(req, session, target) : Promise.resolve();
    authorized
      .then(
        () => {
          if (session) f.identity = session.identity;
          return handle(deps, target, url.searchParams, req, res, session?.identity);
        },
        (err: unknown) => {
          if (isDenied(err) && target.endpoint.kind === 'manifest')
            deps.metrics.deniedPull(`${target.upstream}/${target.repository}`, 'auth');
          throw err;
        },
      )
      .catch(next);
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

function isDenied(err: unknown): boolean {
  return err instanceof RegistryError && err.failure === 'denied';
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
  identity: string | undefined,
): Promise<void> {
  const f = facts(res);
  const repo: Repo = { upstream: target.upstream, repository: target.repository };
  const { endpoint } = target;
  const signal = leaving(res);
  switch (endpoint.kind) {
    case 'manifest': {
      f.reference = endpoint.reference;
      const manifest = await deps.gate.manifest({
        repo,
        reference: endpoint.reference,
        accept: req.get('accept'),
        client: clientOf(req, identity),
        signal,
      });
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
      if (req.method === 'HEAD') {
        const size = await deps.gate.blobSize(repo, endpoint.digest);
        res.status(200).set(blobHeaders(endpoint.digest, size)).end();
        return;
      }
      await sendBlob(deps, await deps.gate.blob(repo, endpoint.digest), req.get('range'), res);
      return;
    }
    case 'tags': {
      const nText = query.get('n');
      const n = nText === null ? undefined : Number(nText);
      if (n !== undefined && (!Number.isInteger(n) || n < 0)) {
        throw new RegistryError('invalid', 'UNSUPPORTED', `n must be a non-negative whole number, got "${nText}"`);
      }
      const last = query.get('last') ?? undefined;
      const page = await deps.gate.tags(
        repo,
        {
          ...(n === undefined ? {} : { n }),
          ...(last === undefined ? {} : { last }),
        },
        signal,
      );
      res
        .status(200)
        .set({
          ...API_VERSION,
          'content-type': 'application/json',
          ...(page.next ? { link: nextLink(target, n, page.next) } : {}),
        })
        .end(JSON.stringify({ name: target.clientName, tags: page.tags }));
      return;
    }
    case 'referrers': {
      f.digest = endpoint.digest;
      const artifactType = query.get('artifactType') ?? undefined;
      const index = await deps.gate.referrers(repo, endpoint.digest, artifactType, signal);
      const body: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: index.manifests };
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

/** Aborts when the client's connection closes before its answer was written. */
function leaving(res: Response): AbortSignal {
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort(clientGone());
  });
  return controller.signal;
}

function clientOf(req: Request, identity: string | undefined): ClientInfo {
  const address = req.socket.remoteAddress;
  const userAgent = req.get('user-agent');
  return {
    ...(address ? { address } : {}),
    ...(userAgent ? { userAgent } : {}),
    ...(identity ? { identity } : {}),
  };
}

function blobHeaders(digest: string, size: number | undefined): Record<string, string> {
  return {
    ...API_VERSION,
    'content-type': 'application/octet-stream',
    'accept-ranges': 'bytes',
    'docker-content-digest': digest,
    ...(size === undefined ? {} : { 'content-length': String(size) }),
  };
}

/**
 * A whole blob streams as its bytes arrive (the last only once verified); a range is answered from
 * verified content only, so a cold range waits for the fill to complete.
 */
async function sendBlob(deps: AppDeps, body: BlobBody, rangeHeader: string | undefined, res: Response): Promise<void> {
  facts(res).source = body.source;
  let range: ByteRange | undefined;
  if (rangeHeader === undefined) {
    res.status(200).set(blobHeaders(body.digest, body.size));
  } else {
    try {
      await body.complete;
    } catch (err) {
      body.close();
      throw err;
    }
    const size = body.size ?? 0;
    const asked = parseRange(rangeHeader, size);
    if (asked.kind === 'unsatisfiable') {
      body.close();
      res.set('content-range', `bytes */${size}`);
      throw new RegistryError(
        'unsatisfiable',
        'RANGE_INVALID',
        `range ${rangeHeader} is outside blob ${body.digest} of ${size} bytes`,
      );
    }
    if (asked.kind === 'whole') {
      res.status(200).set(blobHeaders(body.digest, size));
    } else {
      range = asked.range;
      res.status(206).set({
        ...blobHeaders(body.digest, range.end - range.start + 1),
        'content-range': `bytes ${range.start}-${range.end}/${size}`,
      });
    }
  }
  try {
    await body.send(res, range, deps.clientWriteTimeoutMs);
    await new Promise<void>((resolve) => res.end(resolve));
  } catch (err) {
    if (!res.headersSent && err instanceof RegistryError) {
      // Nothing was sent yet (the fill failed before its first byte): a proper error still can be.
      res.removeHeader('content-length');
      res.removeHeader('content-range');
      sendError(res, err);
      return;
    }
    // Headers are out: the only honest signal left is a cut connection.
    facts(res).error = `stream: ${(err as Error).message}`;
    res.destroy();
  }
}

/** The next page's link, pointed back at this proxy in the form the client addressed it. */
function nextLink(target: Target, n: number | undefined, last: string): string {
  const q = new URLSearchParams();
  if (n !== undefined) q.set('n', String(n));
  q.set('last', last);
  if (target.ns) q.set('ns', target.ns);
  return `</v2/${target.clientName}/tags/list?${q}>; rel="next"`;
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
          ...(f.identity ? { identity: f.identity } : {}),
          ...(f.source ? { source: f.source } : {}),
          status: res.statusCode,
          ms: Math.round(ms * 10) / 10,
          complete: res.writableFinished,
          ...(f.error ? { error: f.error } : {}),
          ...(f.cause ? { cause: f.cause } : {}),
        },
        'request',
      );
    });
    next();
  };
}
