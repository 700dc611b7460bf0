// A misbehaving OCI registry for tests: node:http on 127.0.0.1, scripted per path with one behaviour
// from a table (slow, stalled, reset, lying, huge, malformed, redirecting, odd statuses, raw
// socket answers). Every request it receives is counted, and so is every connection to the
// "internal" canary listener a test may point redirects and token realms at.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { gzipSync } from 'node:zlib';

export type Behaviour = (req: IncomingMessage, res: ServerResponse) => void;

export interface HostileUpstream {
  url: string;
  host: string;
  /** Requests received, by method and path ("GET /v2/x/manifests/y"). */
  requests: string[];
  /** Answers `METHOD path` (or any method when `method` is omitted) with `behaviour`; the latest wins. */
  on(path: string, behaviour: Behaviour, method?: string): void;
  /** Requests received for a path (any method). */
  count(path: string): number;
  close(): Promise<void>;
}

export interface Canary {
  url: string;
  port: number;
  /** TCP connections accepted so far: any is a request the proxy should never have made. */
  connections(): number;
  close(): Promise<void>;
}

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

export function sha256(bytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Sockets the behaviours hold open (stalls): destroyed on close so the server can stop. */
function trackSockets(server: Server): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return sockets;
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

export async function startHostileUpstream(): Promise<HostileUpstream> {
  const routes = new Map<string, Behaviour>();
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    requests.push(`${req.method} ${path}`);
    // A behaviour that writes nothing after a socket error must not take the harness down.
    res.on('error', () => undefined);
    req.socket.on('error', () => undefined);
    const behaviour = routes.get(`${req.method} ${path}`) ?? routes.get(`* ${path}`);
    if (behaviour) return behaviour(req, res);
    if (path === '/v2/' || path === '/v2') return b.json({})(req, res);
    b.status(404, { errors: [{ code: 'MANIFEST_UNKNOWN', message: 'no such thing here' }] })(req, res);
  });
  server.keepAliveTimeout = 1_000;
  const sockets = trackSockets(server);
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    requests,
    on(path, behaviour, method = '*') {
      routes.set(`${method} ${path}`, behaviour);
    },
    count: (path) => requests.filter((r) => r.endsWith(` ${path}`)).length,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A listener standing for an internal service (metadata endpoint, admin port): it counts and answers. */
export async function startCanary(): Promise<Canary> {
  let connections = 0;
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"token":"INTERNAL-SECRET","secret":"INTERNAL-SECRET"}');
  });
  server.on('connection', () => connections++);
  const sockets = trackSockets(server);
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    connections: () => connections,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface Answer {
  status?: number;
  contentType?: string;
  /** Docker-Content-Digest sent; default: the body's own digest; null: none. */
  digest?: string | null;
  headers?: Record<string, string>;
}

function headersOf(body: Buffer, a: Answer): Record<string, string> {
  const digest = a.digest === undefined ? sha256(body) : a.digest;
  return {
    'content-type': a.contentType ?? OCI_MANIFEST,
    'docker-distribution-api-version': 'registry/2.0',
    ...(digest === null ? {} : { 'docker-content-digest': digest }),
    ...a.headers,
  };
}

function bytesOf(body: Buffer | string | object): Buffer {
  if (Buffer.isBuffer(body)) return body;
  return Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
}

/** Waits for a write to drain or the response to close, leaving no listener behind (one is added per wait). */
function drainedOrClosed(res: ServerResponse): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      res.off('drain', done).off('close', done);
      resolve();
    };
    res.once('drain', done).once('close', done);
  });
}

/** Writes `total` bytes produced in chunks by `chunk(i)`, respecting back-pressure, then ends. */
async function stream(res: ServerResponse, total: number, chunk: (offset: number, size: number) => Buffer) {
  const SIZE = 64 * 1024;
  for (let off = 0; off < total && !res.destroyed; off += SIZE) {
    const n = Math.min(SIZE, total - off);
    if (!res.write(chunk(off, n))) await drainedOrClosed(res);
  }
  res.end();
}

/** The behaviour table. Each entry answers one request; compose them per path with `on`. */
export const b = {
  /** A correct answer with `body` (a manifest unless contentType says otherwise). */
  json(body: Buffer | string | object, a: Answer = {}): Behaviour {
    const bytes = bytesOf(body);
    return (req, res) => {
      res.writeHead(a.status ?? 200, { ...headersOf(bytes, a), 'content-length': String(bytes.length) });
      res.end(req.method === 'HEAD' ? undefined : bytes);
    };
  },
  /** A status with an optional body (JSON if an object). */
  status(code: number, body: Buffer | string | object = '', headers: Record<string, string> = {}): Behaviour {
    const bytes = bytesOf(body);
    return (req, res) => {
      res.writeHead(code, { 'content-type': 'application/json', 'content-length': String(bytes.length), ...headers });
      res.end(req.method === 'HEAD' ? undefined : bytes);
    };
  },
  /** The body at `bytesPerSecond`, in ten slices per second. */
  slow(body: Buffer | string | object, bytesPerSecond: number, a: Answer = {}): Behaviour {
    const bytes = bytesOf(body);
    return (req, res) => {
      res.writeHead(a.status ?? 200, { ...headersOf(bytes, a), 'content-length': String(bytes.length) });
      if (req.method === 'HEAD') return res.end();
      const step = Math.max(1, Math.floor(bytesPerSecond / 10));
      void (async () => {
        for (let off = 0; off < bytes.length && !res.destroyed; off += step) {
          res.write(bytes.subarray(off, off + step));
          await sleep(100);
        }
        res.end();
      })();
    };
  },
  /** Headers (announcing the body) and then `sent` bytes of it, and then nothing, ever. */
  stall(body: Buffer | string | object, sent = 0, a: Answer = {}): Behaviour {
    const bytes = bytesOf(body);
    return (req, res) => {
      res.writeHead(a.status ?? 200, { ...headersOf(bytes, a), 'content-length': String(bytes.length) });
      if (req.method !== 'HEAD' && sent > 0) res.write(bytes.subarray(0, sent));
    };
  },
  /** Accepts the request and never answers at all. */
  silent(): Behaviour {
    return () => undefined;
  },
  /** Sends the headers and `sent` bytes, then resets the connection (RST). */
  reset(body: Buffer | string | object, sent: number, a: Answer = {}): Behaviour {
    const bytes = bytesOf(body);
    return (req, res) => {
      res.writeHead(a.status ?? 200, { ...headersOf(bytes, a), 'content-length': String(bytes.length) });
      res.write(bytes.subarray(0, sent), () => setTimeout(() => req.socket.resetAndDestroy(), 20));
    };
  },
  /** Content-Length says `declared` bytes; the body sent is `body` (shorter: the socket closes after it). */
  lengthLie(body: Buffer | string | object, declared: number, a: Answer = {}): Behaviour {
    const bytes = bytesOf(body);
    return raw((sock) => {
      sock.end(
        Buffer.concat([head(a.status ?? 200, { ...headersOf(bytes, a), 'content-length': String(declared) }), bytes]),
      );
    });
  },
  /** `total` bytes of generated content (a huge manifest, tag list or blob), streamed. */
  huge(total: number, chunk: (offset: number, size: number) => Buffer, a: Answer = {}): Behaviour {
    return (req, res) => {
      res.writeHead(a.status ?? 200, {
        'content-type': a.contentType ?? OCI_MANIFEST,
        'content-length': String(total),
        ...(a.digest ? { 'docker-content-digest': a.digest } : {}),
        ...a.headers,
      });
      if (req.method === 'HEAD') return res.end();
      void stream(res, total, chunk);
    };
  },
  /** Like huge, but chunked (no Content-Length): the reader cannot know the size up front. */
  hugeChunked(total: number, chunk: (offset: number, size: number) => Buffer, a: Answer = {}): Behaviour {
    return (req, res) => {
      res.writeHead(a.status ?? 200, { 'content-type': a.contentType ?? OCI_MANIFEST, ...a.headers });
      if (req.method === 'HEAD') return res.end();
      void stream(res, total, chunk);
    };
  },
  redirect(location: string, code = 307): Behaviour {
    return (_req, res) => {
      res.writeHead(code, { location, 'content-length': '0' });
      res.end();
    };
  },
  /** 401 with this WWW-Authenticate header (malformed ones included), or with several. */
  challenge(header: string | string[]): Behaviour {
    return (_req, res) => {
      res.writeHead(401, { 'www-authenticate': header, 'content-type': 'application/json', 'content-length': '2' });
      res.end('{}');
    };
  },
  /** Answers the first request with `first` and the ones with an Authorization header with `authed`. */
  authed(first: Behaviour, authed: Behaviour): Behaviour {
    return (req, res) => (req.headers.authorization ? authed(req, res) : first(req, res));
  },
  /** An HTTP/1.0 answer without Content-Length: the body ends when the connection closes. */
  http10(body: Buffer | string | object, a: Answer = {}): Behaviour {
    const bytes = bytesOf(body);
    return raw((sock) => sock.end(Buffer.concat([head(a.status ?? 200, headersOf(bytes, a), 'HTTP/1.0'), bytes])));
  },
  /** Chunked transfer encoding with a chunk size line that is not hex. */
  chunkedGarbage(): Behaviour {
    return raw((sock) =>
      sock.end(
        Buffer.concat([
          head(200, { 'content-type': OCI_MANIFEST, 'transfer-encoding': 'chunked' }),
          Buffer.from('5\r\n{"sch\r\nZZZZ\r\nnot a chunk\r\n0\r\n\r\n'),
        ]),
      ),
    );
  },
  /** Not HTTP at all. */
  garbage(text = 'SSH-2.0-OpenSSH_9.2\r\n\x00\x01\x02'): Behaviour {
    return raw((sock) => sock.end(text));
  },
  /** The body gzip-compressed with Content-Encoding: gzip (which registries never send for manifests). */
  gzip(body: Buffer | string | object, a: Answer = {}): Behaviour {
    const plain = bytesOf(body);
    const zipped = gzipSync(plain);
    return (req, res) => {
      res.writeHead(a.status ?? 200, {
        ...headersOf(plain, a),
        'content-encoding': 'gzip',
        'content-length': String(zipped.length),
      });
      res.end(req.method === 'HEAD' ? undefined : zipped);
    };
  },
  /** Each call of `next()` gives the behaviour for the next request (a sequence, the last repeating). */
  sequence(...steps: Behaviour[]): Behaviour {
    let i = 0;
    return (req, res) => (steps[Math.min(i++, steps.length - 1)] as Behaviour)(req, res);
  },
};

function head(status: number, headers: Record<string, string>, version = 'HTTP/1.1'): Buffer {
  const lines = [
    `${version} ${status} X`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    'connection: close',
  ];
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`);
}

/** Takes the socket away from node:http and writes to it directly. */
function raw(write: (sock: Socket) => void): Behaviour {
  return (req) => {
    const sock = req.socket;
    sock.on('error', () => undefined);
    write(sock);
  };
}

/** `n` bytes of a JSON document nested `depth` levels deep: `{"a":{"a":…}}`. */
export function deeplyNested(depth: number): Buffer {
  return Buffer.from(`${'{"schemaVersion":2,"a":'.repeat(depth)}1${'}'.repeat(depth)}`);
}

/** An OCI image manifest whose config and layers are the given (digest, size) pairs. */
export function imageManifest(config: { digest: string; size: number }, layers: { digest: string; size: number }[]) {
  return {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...l })),
  };
}
