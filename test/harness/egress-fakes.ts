// Small servers for egress tests: a "canary" standing in for an internal service (it counts every
// TCP connection it gets, so a test can assert none arrived), and a scriptable upstream registry
// front whose sockets are tracked (to see when the proxy gives up a read).
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface Listening {
  url: string;
  /** host:port */
  host: string;
  port: number;
  close(): Promise<void>;
}

async function listenOn(server: Server): Promise<Listening> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface Canary extends Listening {
  /** TCP connections accepted so far. */
  connections(): number;
  /** What it answers every request with: must never reach a proxy's client. */
  secret: string;
}

export async function startCanary(): Promise<Canary> {
  const secret = `CANARY-${randomBytes(8).toString('hex')}`;
  let connections = 0;
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token: secret, errors: [{ code: 'DENIED', message: secret }], secret }));
  });
  server.on('connection', () => connections++);
  return { ...(await listenOn(server)), connections: () => connections, secret };
}

export type Handler = (req: IncomingMessage, res: ServerResponse, socket: Socket) => void;

export interface FakeUpstream extends Listening {
  /** Sockets currently open to this server. */
  openSockets(): number;
  /** Resolves when every socket that is open now (or opens before) has closed, with the time it happened. */
  allClosed(): Promise<number>;
  requests: { method: string; url: string; authorization?: string }[];
}

export async function startFakeUpstream(handler: Handler): Promise<FakeUpstream> {
  const sockets = new Set<Socket>();
  let waiters: ((at: number) => void)[] = [];
  const requests: FakeUpstream['requests'] = [];
  const server = createServer((req, res) => {
    requests.push({
      method: req.method ?? '',
      url: req.url ?? '',
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
    });
    handler(req, res, req.socket);
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => {
      sockets.delete(socket);
      if (sockets.size === 0) {
        const at = performance.now();
        for (const w of waiters) w(at);
        waiters = [];
      }
    });
  });
  return {
    ...(await listenOn(server)),
    openSockets: () => sockets.size,
    allClosed: () =>
      sockets.size === 0 ? Promise.resolve(performance.now()) : new Promise((resolve) => waiters.push(resolve)),
    requests,
  };
}

export function sha256(bytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** A minimal OCI image manifest naming a config and one layer, with its digest. */
export function tinyImage(): { manifest: Buffer; digest: string; layer: Buffer; layerDigest: string } {
  const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
  const layer = randomBytes(64);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
    }),
  );
  return { manifest, digest: sha256(manifest), layer, layerDigest: sha256(layer) };
}

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
