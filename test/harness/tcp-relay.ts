// A TCP relay on loopback in front of a real server (PostgreSQL on 127.0.0.1:5432), which a test can
// cut (the server as good as stopped: every connection reset, new ones refused), stall (a network
// partition: connections stay open but no byte crosses) and restore, without touching the server
// that other tests share.
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface TcpRelay {
  /** The relay's loopback port. */
  port: number;
  /** Connections currently relayed. */
  readonly connections: number;
  /** Resets every relayed connection and every new one, until restore(). */
  cut(): void;
  /** Keeps connections open but stops relaying bytes (new ones too), until restore(). */
  stall(): void;
  /** Relays again: stalled bytes flow, new connections are accepted. */
  restore(): void;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  server: Socket;
}

export async function startTcpRelay(target: { host: string; port: number }): Promise<TcpRelay> {
  const pairs = new Set<Pair>();
  let mode: 'open' | 'cut' | 'stall' = 'open';

  // destroy(), not resetAndDestroy(): a reset socket sometimes kept its handle open and the test
  // worker alive; to the client a closed connection is the same lost server either way.
  const kill = (s: Socket) => {
    if (!s.destroyed) s.destroy();
  };
  const drop = (pair: Pair) => {
    pairs.delete(pair);
    kill(pair.client);
    kill(pair.server);
  };

  const flow = ({ client, server: upstream }: Pair) => {
    client.pipe(upstream);
    upstream.pipe(client);
  };
  const hold = ({ client, server: upstream }: Pair) => {
    client.unpipe(upstream);
    upstream.unpipe(client);
    client.pause();
    upstream.pause();
  };

  const server: Server = createServer((client) => {
    if (mode === 'cut') {
      client.on('error', () => undefined);
      kill(client);
      return;
    }
    const upstream = connect(target.port, target.host);
    const pair = { client, server: upstream };
    pairs.add(pair);
    for (const s of [client, upstream]) {
      s.on('error', () => drop(pair));
      s.on('close', () => drop(pair));
    }
    if (mode === 'open') flow(pair);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the relay has no TCP address');

  return {
    port: address.port,
    get connections() {
      return pairs.size;
    },
    cut() {
      mode = 'cut';
      for (const pair of [...pairs]) drop(pair);
    },
    stall() {
      mode = 'stall';
      for (const pair of pairs) hold(pair);
    },
    restore() {
      if (mode === 'stall') for (const pair of pairs) flow(pair);
      mode = 'open';
    },
    async close() {
      mode = 'cut';
      for (const pair of [...pairs]) drop(pair);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
