// The composition root: builds the proxy from a Config and runs its listeners.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { createRequire } from 'node:module';
import type { Express } from 'express';
import { createAdminApp } from './admin/api.ts';
import type { Config, ConnectionLimits } from './config/types.ts';
import { BlobCache } from './blobs/cache.ts';
import { directWritesFor, reportsFreePages } from './blobs/direct-io.ts';
import { releaseSpareBuffers } from './blobs/file-sender.ts';
import { FillThread } from './blobs/fill-thread.ts';
import { BlobStore } from './blobs/store.ts';
import { Decider } from './gate/decider.ts';
import { PolicyGate } from './gate/gate.ts';
import { Revocations } from './gate/revocations.ts';
import { Revalidator } from './gate/revalidate.ts';
import { createLogger, type Logger } from './ops/log.ts';
import { startIdleCollector } from './ops/idle-gc.ts';
import { sharedSlots } from './util/shared-admission-queue.ts';
import { Metrics } from './ops/metrics.ts';
import { PolicyHolder } from './policy-holder.ts';
import { createApp } from './proxy/app.ts';
import { fetchLimitsOf } from './oci/fetch-budget.ts';
import { Upstreams } from './oci/upstreams.ts';
import { openStore } from './store/open.ts';
import { setUpClientAuth } from './auth/setup.ts';
import { PassThroughChecker } from './auth/passthrough.ts';
import type { Store } from './store/types.ts';

// node:http by require(), not import: an ESM import reads every export to build the module's
// namespace, and http's WebSocket, CloseEvent and MessageEvent getters then load node's bundled
// undici, 14 MiB of RSS for nothing (the proxy's HTTP client is the undici package).
const { createServer: createHttpServer } = createRequire(import.meta.url)('node:http') as typeof import('node:http');

export interface RunningProxy {
  url: string;
  /** Undefined when the admin listener is off: no admin token, and /metrics on the registry listener. */
  adminUrl: string | undefined;
  policy: PolicyHolder;
  store: Store;
  /** Re-reads the TLS certificate and key (SIGHUP), so renewed certificates apply without a restart. */
  reloadTls(): void;
  /** Stops accepting, lets running transfers finish (bounded by `drainMs`), then closes everything. */
  close(drainMs?: number): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  processMetrics?: boolean;
  watchPolicy?: boolean;
  /** How often the revocation list is re-read as a backstop to store notifications. */
  revocationRefreshMs?: number;
}

interface Listener {
  server: Server;
  url: string;
}

interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  /** The first certificate's notAfter: the one served. */
  notAfter: Date;
}

/** Reads the certificate and key files; throws when the certificate does not parse. */
function readTls(files: { cert: string; key: string }): TlsMaterial {
  const cert = readFileSync(files.cert);
  const key = readFileSync(files.key);
  return { cert, key, notAfter: new X509Certificate(cert).validToDate };
}

/** How long the proxy is quiet before it returns what a burst of pulls left behind (ops/idle-gc.ts). */
const IDLE_COLLECT_MS = 5_000;

async function listen(
  app: Express,
  host: string,
  port: number,
  limits: ConnectionLimits,
  logger: Logger,
  tls?: TlsMaterial,
): Promise<Listener> {
  const options = {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // Node checks the header and request timeouts on this interval: at most a quarter of the bound late.
    connectionsCheckingInterval: Math.max(250, Math.min(30_000, Math.floor(limits.headersTimeoutMs / 4))),
  };
  const server: Server = tls
    ? createHttpsServer({ ...options, handshakeTimeout: limits.headersTimeoutMs, cert: tls.cert, key: tls.key }, app)
    : createHttpServer(options, app);
  // Node's header timeout starts with the first byte: a socket that never sends one is closed by
  // this socket timeout instead (no 'timeout' listener on the server: Node destroys the socket),
  // lifted once a request arrives; keep-alive idleness is keepAliveTimeout's from then on.
  server.on(tls ? 'secureConnection' : 'connection', (socket: Socket) => socket.setTimeout(limits.headersTimeoutMs));
  server.on('request', (req: IncomingMessage) => req.socket.setTimeout(0));
  // A connection past the cap is closed at once: idle sockets cannot starve file descriptors and memory.
  server.maxConnections = limits.maxConnections;
  let dropped = 0;
  server.on('drop', () => {
    // One line per burst, not per socket: a flood must not become a log flood.
    if (dropped++ % 1000 === 0)
      logger.warn(
        { maxConnections: limits.maxConnections, dropped },
        'connection refused: limits.maxConnections open connections already',
      );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return { server, url: `${tls ? 'https' : 'http'}://${shown}:${address.port}` };
}

async function shut(listener: Listener, drainMs: number): Promise<void> {
  const closed = new Promise<void>((resolve) => listener.server.close(() => resolve()));
  // Keep-alive connections become idle as their last transfer ends: close them as they do.
  const sweep = setInterval(() => listener.server.closeIdleConnections(), 50);
  const timer = setTimeout(() => listener.server.closeAllConnections(), drainMs);
  listener.server.closeIdleConnections();
  await closed;
  clearInterval(sweep);
  clearTimeout(timer);
}

export async function startProxy(config: Config, opts: StartOptions = {}): Promise<RunningProxy> {
  const logger = opts.logger ?? createLogger(config.log.level);
  const metrics = new Metrics({ processMetrics: opts.processMetrics ?? false });
  let gate: PolicyGate | undefined;
  let store: Store | undefined;
  const policy = new PolicyHolder(
    config.policyFile,
    logger,
    () => gate?.invalidate(),
    // Every reload that changed the policy or failed to, whatever asked for it, is on record.
    (r) => {
      metrics.policyReloaded(r.ok ? (r.changed ? 'changed' : 'unchanged') : 'failed');
      if (!r.changed && r.ok) return;
      store
        ?.appendAudit({
          kind: 'policy-reload',
          actor: r.trigger.startsWith('admin:') ? r.trigger : 'proxy',
          detail: {
            trigger: r.trigger,
            ok: r.ok,
            from: r.previous,
            to: r.current,
            ...(r.error ? { error: r.error } : {}),
          },
        })
        .catch((err: unknown) => logger.error({ error: (err as Error).message }, 'policy reload not audited'));
    },
  );
  store = await openStore(config.store, { logger });
  const storeHealth = store.health;
  metrics.storeUp.set(storeHealth.up ? 1 : 0);
  const unwatchHealth = [
    storeHealth.onChange((up) => metrics.storeUp.set(up ? 1 : 0)),
    storeHealth.onFault((kind) => metrics.storeErrors.inc({ kind })),
  ];
  metrics.policyReloadOk.set(1); // the policy loaded at start
  const revocations = new Revocations(store);
  // One blob budget per upstream across both threads (limits.upstreamBlobRequests): blob HEADs and
  // evidence here, cold fills in the fill thread.
  const blobSlots = new Map(config.upstreams.map((u) => [u.host, sharedSlots()]));
  const upstreams = new Upstreams(config, metrics, blobSlots);
  const decider = new Decider({
    policy: () => policy.current,
    cache: config.cache,
    logger,
    metrics,
    limits: {
      evidence: config.budgets.evidence,
      concurrentDecisions: config.budgets.concurrentDecisions,
      decisionQueue: config.budgets.decisionQueue,
    },
  });
  const cache = new BlobCache({
    dir: config.cache.blobs.path,
    maxBytes: config.cache.blobs.maxBytes,
    events: { evicted: () => metrics.blobEvictions.inc(), changed: (stats) => metrics.cacheChanged(stats) },
  });
  try {
    await cache.open();
  } catch (err) {
    await store.close();
    throw new Error(
      `cannot open the blob cache at ${config.cache.blobs.path} (cache.blobs.path): ${(err as Error).message}; check that the directory is writable by this user`,
    );
  }
  logger.info({ path: cache.dir, ...cache.stats() }, 'blob cache opened');
  // Cold fills from allowlisted upstreams run in a thread of their own (blobs/fill-thread.ts); its
  // readers copy the newest bytes from memory it shares with this thread (blobs/ring.ts).
  const writes = directWritesFor(config.cache.blobs.directWrites, reportsFreePages());
  logger.info({ direct: writes.direct, why: writes.why }, 'blob fill writes');
  const fillThread = new FillThread({
    upstreams: config.upstreams,
    fetchLimits: fetchLimitsOf(config.budgets),
    blobSlots,
    observer: metrics,
    directWrites: writes.direct,
  });
  const blobs = new BlobStore(cache, logger, metrics, fillThread);
  gate = new PolicyGate({
    upstreams,
    decider,
    store,
    revocations,
    blobs,
    logger,
    metrics,
    manifestMaxBytes: config.manifestMaxBytes,
    widths: config.budgets,
    driftAuditSeconds: config.budgets.driftAuditSeconds,
    tagListMaxTags: config.budgets.tagListMaxTags,
    maxCached: config.cache.maxEntries,
    staleGraceSeconds: config.staleGraceSeconds,
    tagRecheckSeconds: config.tagRecheckSeconds,
  });
  const revalidator = new Revalidator(config.revalidate, {
    store,
    logger,
    metrics,
    revalidate: (repo, digest, tag) => (gate as PolicyGate).revalidate(repo, digest, tag),
  });
  const unsubscribe = store.subscribe((e) => {
    if (e.type === 'revoked' || e.type === 'unrevoked') {
      revocations.refresh().then(
        () => gate?.invalidate(),
        (err: unknown) => logger.error({ err }, 'revocation refresh failed'),
      );
    } else if (e.type === 'policy-changed') {
      policy.reload('event');
    } else if (e.type === 'pin-changed') {
      gate?.pinChanged(e);
    } else if (e.type === 'grant-changed') {
      gate?.invalidate();
    }
  });
  await revocations.start(opts.revocationRefreshMs ?? 5_000);

  let clientAuth: ReturnType<typeof setUpClientAuth>;
  const passThrough = config.upstreams.some((u) => u.passThrough)
    ? new PassThroughChecker(config.upstreams, metrics, (host) => upstreams.client(host).budget)
    : undefined;
  try {
    clientAuth = setUpClientAuth(config, upstreams, logger, metrics, passThrough);
  } catch (err) {
    await passThrough?.close();
    revocations.stop();
    unsubscribe();
    await blobs.close();
    await upstreams.close();
    await store.close();
    throw err;
  }
  const metricsOnAdmin = config.metrics.listener === 'admin';
  let ready = false;
  const app = createApp({
    ...(clientAuth ? { auth: clientAuth.auth } : {}),
    metricsHere: !metricsOnAdmin,
    upstreams,
    gate,
    logger,
    metrics,
    clientWriteTimeoutMs: config.clientWriteTimeoutMs,
    // Not ready while starting, draining, or while the store is unusable (requests would fail closed).
    ready: () => ready && storeHealth.up,
  });
  const tls =
    config.listen.tlsCert && config.listen.tlsKey
      ? { cert: config.listen.tlsCert, key: config.listen.tlsKey }
      : undefined;
  const tlsMaterial = tls ? readTls(tls) : undefined;
  if (tlsMaterial) metrics.tlsCertificateExpiry.set(tlsMaterial.notAfter.getTime() / 1000);
  const main = await listen(app, config.listen.host, config.listen.port, config.connections, logger, tlsMaterial);
  const collector = startIdleCollector(
    IDLE_COLLECT_MS,
    (ms) => {
      const mib = (n: number) => Math.round(n / 104857.6) / 10;
      const m = process.memoryUsage();
      logger.debug(
        {
          ms: Math.round(ms * 10) / 10,
          rssMiB: mib(m.rss),
          heapMiB: mib(m.heapUsed),
          heapTotalMiB: mib(m.heapTotal),
          externalMiB: mib(m.external),
        },
        'idle garbage collection',
      );
    },
    // At rest nothing is kept for reuse: the spare send buffers, and the fill thread with its heap
    // (the next cold fill starts another).
    async () => {
      releaseSpareBuffers();
      await fillThread.stopIfIdle();
    },
  );
  main.server.on('request', () => collector.touch());
  const admin =
    config.admin.identities.length > 0 || metricsOnAdmin
      ? await listen(
          createAdminApp({
            store,
            identities: config.admin.identities,
            logger,
            canonical: (h) => upstreams.canonical(h),
            explain: (repo, reference) => (gate as PolicyGate).explain(repo, reference),
            revalidator,
            defaultUpstream: upstreams.defaultUpstream,
            reloadPolicy: (actor) => policy.reload(actor),
            ...(metricsOnAdmin
              ? {
                  metrics: async () => ({
                    contentType: metrics.registry.contentType,
                    body: await metrics.registry.metrics(),
                  }),
                }
              : {}),
          }),
          config.admin.host,
          config.admin.port,
          config.connections,
          logger,
        )
      : undefined;
  if (config.admin.identities.length === 0)
    logger.warn(
      `no admin token configured (admin.token or PULLGATE_ADMIN_TOKEN): the admin API is off${admin ? ' (the admin listener serves /metrics only)' : ''}`,
    );
  if (!clientAuth && !/^(127\.|::1$|localhost$)/.test(config.listen.host))
    logger.warn(
      'client authentication is off (auth.enabled): every client that reaches the registry port may pull whatever the upstream credentials can read',
    );
  if (opts.watchPolicy) policy.watch();
  revalidator.start();
  ready = true;
  logger.info(
    {
      url: main.url,
      admin: admin?.url,
      upstreams: config.upstreams.map((u) => u.host),
      policy: policy.current.source,
      store: store.kind,
    },
    'pullgate listening',
  );

  let closing: Promise<void> | undefined;
  return {
    url: main.url,
    adminUrl: admin?.url,
    policy,
    store,
    reloadTls() {
      if (!tls) return;
      try {
        const next = readTls(tls);
        (main.server as HttpsServer).setSecureContext({ cert: next.cert, key: next.key });
        metrics.tlsCertificateExpiry.set(next.notAfter.getTime() / 1000);
        logger.info({ cert: tls.cert, notAfter: next.notAfter }, 'TLS certificate reloaded');
      } catch (err) {
        logger.error(
          { cert: tls.cert, error: (err as Error).message },
          'TLS reload failed; keeping the previous certificate',
        );
      }
    },
    close(drainMs = 10_000) {
      closing ??= (async () => {
        const deadline = Date.now() + drainMs;
        ready = false;
        collector.stop();
        policy.close();
        await Promise.all([shut(main, drainMs), admin ? shut(admin, drainMs) : undefined]);
        unsubscribe();
        revalidator.stop();
        for (const unwatch of unwatchHealth) unwatch();
        revocations.stop();
        await clientAuth?.close();
        await passThrough?.close();
        // Fills get what is left of the drain, and a second at least to keep what they verified.
        await blobs.close(Math.max(1000, deadline - Date.now()));
        await upstreams.close();
        await store.close();
        logger.info('pullgate stopped');
      })();
      return closing;
    },
  };
}
