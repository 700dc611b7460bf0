// Cross-replica events over PostgreSQL LISTEN/NOTIFY, on one channel per schema. Each notification
// names the replica that sent it: that replica served its own subscribers already and skips it.
// The listening connection reconnects with bounded backoff when it drops; since notifications sent
// meanwhile are lost, subscribers then get one subject-less event of every type.
import { createHash, randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Logger } from '../ops/log.ts';
import { Subscribers, type EventBus } from './events.ts';
import { POSTGRES_DEFAULTS, redactUrl } from './postgres.ts';
import type { StoreEvent } from './types.ts';

const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5_000;
const KEEPALIVE_MS = 10_000;
const EVENT_TYPES: readonly StoreEvent['type'][] = [
  'revoked',
  'unrevoked',
  'pin-changed',
  'grant-changed',
  'policy-changed',
];

interface Wire {
  origin: string;
  event: StoreEvent;
}

/** PostgreSQL identifiers stop at 63 bytes; a longer schema name gets a hashed channel name. */
export function channelFor(schema: string): string {
  const plain = `pullgate_${schema}`;
  return plain.length <= 63 ? plain : `pullgate_${createHash('sha256').update(schema).digest('hex').slice(0, 40)}`;
}

/** The application_name of a schema's query connections (visible in pg_stat_activity). */
export function poolName(schema: string): string {
  return `pullgate:${schema}`.slice(0, 63);
}

/** The application_name of a schema's listening connection (visible in pg_stat_activity). */
export function listenerName(schema: string): string {
  return `pullgate-events:${schema}`.slice(0, 63);
}

function parseWire(payload: string): Wire | undefined {
  try {
    const wire = JSON.parse(payload) as Partial<Wire>;
    if (
      typeof wire.origin === 'string' &&
      typeof wire.event?.type === 'string' &&
      EVENT_TYPES.includes(wire.event.type)
    )
      return wire as Wire;
  } catch {
    /* reported by the caller */
  }
  return undefined;
}

export async function postgresBus(
  url: string,
  schema: string,
  opts: { logger?: Logger | undefined; connectTimeoutMs?: number | undefined } = {},
): Promise<EventBus> {
  const { logger } = opts;
  const connectTimeoutMs = opts.connectTimeoutMs ?? POSTGRES_DEFAULTS.connectTimeoutMs;
  const channel = channelFor(schema);
  const origin = randomUUID();
  const subscribers = new Subscribers(logger);
  let client: pg.Client | undefined;
  let closed = false;
  let delay = RECONNECT_MIN_MS;
  let timer: NodeJS.Timeout | undefined;

  const onNotification = (n: pg.Notification) => {
    if (n.channel !== channel || n.payload === undefined) return;
    const wire = parseWire(n.payload);
    if (!wire) logger?.warn({ channel, payload: n.payload.slice(0, 200) }, 'ignoring a malformed store notification');
    else if (wire.origin !== origin) subscribers.deliver(wire.event);
  };

  const lost = (c: pg.Client, reason: string) => {
    if (client !== c) return;
    client = undefined;
    c.end().catch(() => undefined);
    if (closed) return;
    logger?.warn({ channel, reason }, 'store event connection lost; reconnecting');
    schedule();
  };

  const connect = async (): Promise<pg.Client> => {
    const c = new pg.Client({
      connectionString: url,
      application_name: listenerName(schema),
      connectionTimeoutMillis: connectTimeoutMs,
      keepAlive: true,
      keepAliveInitialDelayMillis: KEEPALIVE_MS,
    });
    c.on('notification', onNotification);
    c.on('error', (err) => lost(c, err.message));
    c.on('end', () => lost(c, 'connection closed'));
    try {
      await c.connect();
      await c.query(`LISTEN "${channel}"`);
    } catch (err) {
      await c.end().catch(() => undefined);
      throw err;
    }
    return c;
  };

  function schedule(): void {
    if (closed || timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      connect().then(
        async (c) => {
          if (closed) return void (await c.end().catch(() => undefined));
          client = c;
          delay = RECONNECT_MIN_MS;
          logger?.info(
            { channel },
            'store event connection re-established; subscribers told that anything may have changed',
          );
          for (const type of EVENT_TYPES) subscribers.deliver({ type });
        },
        (err: Error) => {
          delay = Math.min(delay * 2, RECONNECT_MAX_MS);
          logger?.warn({ channel, error: err.message, retryMs: delay }, 'store event reconnect failed');
          schedule();
        },
      );
    }, delay);
    timer.unref();
  }

  try {
    client = await connect();
  } catch (err) {
    throw new Error(`cannot listen for store events at ${redactUrl(url)} (store.url): ${(err as Error).message}`);
  }
  return {
    async send(tx, event) {
      await tx.query('SELECT pg_notify(?, ?)', [channel, JSON.stringify({ origin, event } satisfies Wire)]);
    },
    deliver: (e) => subscribers.deliver(e),
    subscribe: (listener) => subscribers.add(listener),
    async close() {
      closed = true;
      clearTimeout(timer);
      const c = client;
      client = undefined;
      subscribers.clear();
      await c?.end().catch(() => undefined);
    },
  };
}
