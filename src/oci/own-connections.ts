// Blob GETs on connections of the proxy's own instead of undici's, for the fill thread: every
// socket reads into one reused 1 MiB buffer (net's `onread`) and a fill takes each chunk from it
// during the read callback (`OwnBody.sink`), so receiving a blob allocates nothing per chunk and
// never goes through a stream. undici reads 64 KiB per read into a new buffer and copies each into
// its parser's memory: 0.5-0.77 CPU-s to receive and hash 256 MiB, against 0.21-0.23 here
// (docs/decisions.md, "Fill bodies read into one buffer"). Anything else (status, auth, redirects,
// error bodies) reads an OwnBody as the Readable it also is, from copies.
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { ChunkedDecoder, isToken, parseHead, type Framing, type Headers } from './http1.ts';
import type { Connector } from './undici.ts';

/** Each read of an own connection is at most this. */
export const READ_BYTES = 1024 * 1024;
const MAX_HEAD_BYTES = 64 * 1024;

/** What a fill gives `OwnBody.sink`: each chunk is a view of the read buffer, valid only during the call. */
export interface ChunkSink {
  chunk(view: Buffer): void;
  end(): void;
  error(err: Error): void;
}

/** How a sink holds the upstream back while it cannot take more. */
export interface SinkControl {
  pause(): void;
  resume(): void;
  readonly paused: boolean;
}

export interface OwnConnectionOptions {
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  keepAliveMs: number;
  /** Idle connections kept per origin. */
  maxIdle: number;
}

export interface OwnResponse {
  status: number;
  headers: Headers;
  body: OwnBody;
}

/** Whoever a socket's reads and its end belong to now: a request's exchange, or the idle pool. */
interface Owner {
  read(view: Buffer): boolean;
  eof(): void;
  gone(err: Error | undefined): void;
}

const owners = new WeakMap<Socket, Owner>();
let readBuffer: Buffer | undefined;
/** Reads are handed out one at a time and consumed before the next: a nested one would overwrite the first. */
let reading = false;

function onRead(this: Socket, nread: number, buf: Buffer): boolean {
  const owner = owners.get(this);
  if (!owner || reading) {
    this.destroy(new Error(owner ? 'a read arrived inside another read' : 'a read on a socket nobody owns'));
    return false;
  }
  reading = true;
  try {
    return owner.read(buf.subarray(0, nread));
  } catch (err) {
    // Thrown out of a read callback, an error would end the process: it ends this connection.
    this.destroy(err as Error);
    return false;
  } finally {
    reading = false;
  }
}

/** The socket options every connection of this module is made with (net and tls take `onread` alike). */
export function ownSocketOptions(): object {
  readBuffer ??= Buffer.allocUnsafeSlow(READ_BYTES);
  return { onread: { buffer: readBuffer, callback: onRead } };
}

function coded(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

/** A reused connection that the upstream had closed before this request's answer began: worth one retry. */
class StaleConnection extends Error {}

/** GETs over one connector (one origin rule), with a small pool of idle connections per origin. */
export class OwnConnections {
  readonly #connector: Connector;
  readonly #options: OwnConnectionOptions;
  readonly #idle = new Map<string, Idle[]>();
  #closed = false;

  /** `connector` must make its sockets with `ownSocketOptions()`. */
  constructor(connector: Connector, options: OwnConnectionOptions) {
    this.#connector = connector;
    this.#options = options;
  }

  async get(url: URL, headers: Record<string, string>, signal?: AbortSignal): Promise<OwnResponse> {
    const request = requestText(url, headers);
    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      const reused = attempt === 0 ? this.#takeIdle(url.origin) : undefined;
      const socket = reused ?? (await this.#connect(url, signal));
      try {
        return await new Promise<OwnResponse>((resolve, reject) => {
          new Exchange(socket, request, this.#options, signal, reused !== undefined, {
            head: resolve,
            failed: reject,
            done: (reusable) => this.#release(url.origin, socket, reusable),
          });
        });
      } catch (err) {
        if (err instanceof StaleConnection) continue;
        throw err;
      }
    }
  }

  /** Closes the idle connections; requests under way finish on theirs, which then close. */
  close(): void {
    this.#closed = true;
    for (const list of this.#idle.values())
      for (const idle of list) {
        clearTimeout(idle.timer);
        owners.delete(idle.socket);
        idle.socket.destroy();
      }
    this.#idle.clear();
  }

  #connect(url: URL, signal: AbortSignal | undefined): Promise<Socket> {
    const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const port = url.port || (url.protocol === 'https:' ? '443' : '80');
    return new Promise<Socket>((resolve, reject) => {
      this.#connector({ hostname, host: url.host, protocol: url.protocol, port }, (err, socket) => {
        if (err || !socket) return reject(err ?? new Error('no socket'));
        const s = socket as Socket;
        if (signal?.aborted) {
          s.destroy();
          return reject(signal.reason);
        }
        // Errors and ends go to whoever owns the socket at the time; one listener each, for its life.
        s.on('error', (e) => owners.get(s)?.gone(e));
        s.on('end', () => owners.get(s)?.eof());
        s.on('close', () => owners.get(s)?.gone(undefined));
        resolve(s);
      });
    });
  }

  #takeIdle(origin: string): Socket | undefined {
    const list = this.#idle.get(origin);
    const idle = list?.pop();
    if (list?.length === 0) this.#idle.delete(origin);
    if (!idle) return undefined;
    clearTimeout(idle.timer);
    return idle.socket;
  }

  #release(origin: string, socket: Socket, reusable: boolean): void {
    const list = this.#idle.get(origin) ?? [];
    if (!reusable || this.#closed || socket.destroyed || list.length >= this.#options.maxIdle) {
      owners.delete(socket);
      socket.destroy();
      return;
    }
    const forget = (): void => {
      clearTimeout(idle.timer);
      owners.delete(socket);
      socket.destroy();
      const at = list.indexOf(idle);
      if (at >= 0) list.splice(at, 1);
      if (list.length === 0 && this.#idle.get(origin) === list) this.#idle.delete(origin);
    };
    const idle: Idle = { socket, timer: setTimeout(forget, this.#options.keepAliveMs).unref() };
    // An idle connection that speaks, ends or breaks is closed: nothing is expected on it.
    owners.set(socket, { read: () => (forget(), false), eof: forget, gone: forget });
    list.push(idle);
    this.#idle.set(origin, list);
  }
}

interface Idle {
  socket: Socket;
  timer: NodeJS.Timeout;
}

function requestText(url: URL, headers: Record<string, string>): string {
  let text = `GET ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    // A token from an upstream's token service travels here: it must not be able to add lines.
    if (!isToken(name) || /[\r\n\0]/.test(value)) throw new Error(`invalid header ${JSON.stringify(name)}`);
    text += `${name}: ${value}\r\n`;
  }
  return `${text}\r\n`;
}

interface ExchangeEvents {
  head(res: OwnResponse): void;
  failed(err: Error): void;
  /** The body ended complete (or the request failed: `reusable` false); the socket is the pool's again. */
  done(reusable: boolean): void;
}

/** One request and its response on one socket. */
class Exchange implements Owner {
  readonly #socket: Socket;
  readonly #options: OwnConnectionOptions;
  readonly #signal: AbortSignal | undefined;
  readonly #reused: boolean;
  readonly #events: ExchangeEvents;
  #state: 'head' | 'body' | 'done' | 'failed' = 'head';
  #head: Buffer | undefined;
  #framing: Framing = { kind: 'close' };
  #left = 0;
  #chunked: ChunkedDecoder | undefined;
  #reusable = false;
  #body: OwnBody | undefined;
  #received = false;
  #timer: NodeJS.Timeout | undefined;
  /** Whether reads restart the body timer: not while the reader holds the upstream back. */
  #timing = false;
  readonly #onAbort = (): void => this.fail(this.#signal?.reason as Error);

  constructor(
    socket: Socket,
    request: string,
    options: OwnConnectionOptions,
    signal: AbortSignal | undefined,
    reused: boolean,
    events: ExchangeEvents,
  ) {
    this.#socket = socket;
    this.#options = options;
    this.#signal = signal;
    this.#reused = reused;
    this.#events = events;
    owners.set(socket, this);
    signal?.addEventListener('abort', this.#onAbort, { once: true });
    this.#arm(options.headersTimeoutMs, 'UND_ERR_HEADERS_TIMEOUT', 'headers');
    socket.write(request);
    socket.resume();
  }

  #arm(ms: number, code: string, what: string): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.fail(coded(`no ${what} within ${ms} ms`, code)), ms).unref();
  }

  /** Whether the socket reads on: while the body's reader takes bytes, and once the socket is the pool's. */
  read(view: Buffer): boolean {
    this.#received = true;
    if (this.#state === 'head') this.#readHead(view);
    else if (this.#state === 'body') {
      if (this.#timing) this.#timer?.refresh();
      this.#readBody(view);
    }
    if (this.#state === 'head') return true;
    if (this.#state === 'done') return !this.#socket.destroyed;
    return this.#state === 'body' && (this.#body as OwnBody).flowing;
  }

  #readHead(view: Buffer): void {
    let head = this.#head ? Buffer.concat([this.#head, view]) : Buffer.from(view);
    for (;;) {
      const r = parseHead(head, MAX_HEAD_BYTES);
      if (r.kind === 'incomplete') {
        this.#head = head;
        return;
      }
      if (r.kind === 'invalid') return this.fail(coded(`the upstream sent ${r.reason}`, 'UPSTREAM_PROTOCOL'));
      if (r.status === 101) return this.fail(coded('the upstream switched protocols on a GET', 'UPSTREAM_PROTOCOL'));
      head = head.subarray(r.bytes);
      if (r.status < 200) continue; // 100 Continue and the like precede the answer
      this.#head = undefined;
      this.#framing = r.framing;
      this.#reusable = r.reusable;
      if (r.framing.kind === 'length') this.#left = r.framing.length;
      if (r.framing.kind === 'chunked') this.#chunked = new ChunkedDecoder();
      this.#state = 'body';
      clearTimeout(this.#timer);
      this.#timing = false;
      const body = new OwnBody(this);
      this.#body = body;
      this.#events.head({ status: r.status, headers: r.headers, body });
      // The rest of this read is the body's start (a copy, kept until the body has a reader, as
      // everything after it: the socket reads on only once the body has one).
      if (head.length > 0 || (r.framing.kind === 'length' && r.framing.length === 0)) this.#readBody(head);
      return;
    }
  }

  #readBody(view: Buffer): void {
    const body = this.#body as OwnBody;
    if (this.#framing.kind === 'length') {
      const n = Math.min(this.#left, view.length);
      if (n > 0) body.deliver(view.subarray(0, n));
      this.#left -= n;
      if (view.length > n) this.#reusable = false; // more than it declared: the connection is not trusted again
      if (this.#left === 0) this.#complete();
    } else if (this.#chunked) {
      let took: number;
      try {
        took = this.#chunked.feed(view, (piece) => body.deliver(piece));
      } catch (err) {
        return this.fail(coded(`the upstream sent ${(err as Error).message}`, 'UPSTREAM_PROTOCOL'));
      }
      if (this.#chunked.done) {
        if (took < view.length) this.#reusable = false;
        this.#complete();
      }
    } else {
      body.deliver(view);
    }
  }

  /** The body's reader wants (more) bytes. */
  resume(): void {
    if (this.#state !== 'body') return;
    this.#arm(this.#options.bodyTimeoutMs, 'UND_ERR_BODY_TIMEOUT', 'body bytes');
    this.#timing = true;
    this.#socket.resume();
  }

  /** The body's reader cannot take more now: the upstream waits, and its silence is not counted. */
  pause(): void {
    if (this.#state !== 'body') return;
    clearTimeout(this.#timer);
    this.#timing = false;
    this.#socket.pause();
  }

  #complete(): void {
    if (this.#state !== 'body') return;
    this.#state = 'done';
    this.#finish();
    this.#events.done(this.#reusable);
    this.#body?.settle(undefined);
  }

  eof(): void {
    if (this.#state === 'body' && this.#framing.kind === 'close') return this.#complete();
    this.gone(undefined);
  }

  gone(err: Error | undefined): void {
    if (this.#state === 'done' || this.#state === 'failed') return;
    const where = this.#state === 'head' ? 'before its answer' : 'before the body ended';
    const stale = this.#state === 'head' && this.#reused && !this.#received;
    const why = err ?? coded(`the upstream closed the connection ${where}`, 'UND_ERR_SOCKET');
    this.fail(stale ? new StaleConnection(why.message, { cause: why }) : why);
  }

  /** Ends the exchange with an error (the upstream's, a timeout, the deadline) and closes the socket. */
  fail(err: Error): void {
    if (this.#state === 'done' || this.#state === 'failed') return;
    const before = this.#state;
    this.#state = 'failed';
    this.#finish();
    owners.delete(this.#socket);
    this.#socket.destroy();
    this.#events.done(false);
    if (before === 'head') this.#events.failed(err);
    else this.#body?.settle(err);
  }

  /** The body's reader left before its end: the rest is not read, and the connection is not reused. */
  abandon(): void {
    if (this.#state === 'body' || this.#state === 'head') this.fail(new Error('the body was abandoned'));
  }

  #finish(): void {
    clearTimeout(this.#timer);
    this.#signal?.removeEventListener('abort', this.#onAbort);
  }
}

/**
 * A response body on an own connection. Either a fill takes its chunks as they are read (`sink`),
 * or it is read as a Readable of copies. Its 'close' comes once it ended, failed or was destroyed,
 * as an undici body's does (budgets and deadlines wait for it).
 */
export class OwnBody extends Readable {
  readonly #exchange: Exchange;
  /** Who reads it: nobody yet, the stream, a sink, or a sink that was told the end already. */
  #mode: 'none' | 'stream' | 'sink' | 'sunk' = 'none';
  #sink: ChunkSink | undefined;
  #sinkPaused = false;
  #streamPaused = false;
  /** Bytes read before anyone read the body (the rest of the head's read), copied. */
  #early: Buffer | undefined;
  #ended: { err: Error | undefined } | undefined;

  constructor(exchange: Exchange) {
    super({ highWaterMark: READ_BYTES });
    this.#exchange = exchange;
  }

  /** Why the body failed before anyone read it, if it did. */
  get failure(): Error | undefined {
    return this.#ended?.err;
  }

  /** Whether the socket should go on reading: a reader is there and has not paused. */
  get flowing(): boolean {
    return this.#mode === 'stream' ? !this.#streamPaused : this.#mode === 'sink' && !this.#sinkPaused;
  }

  /** From the exchange: the next bytes, a view of the read buffer. */
  deliver(view: Buffer): void {
    if (this.#mode === 'sink') return this.#chunk(view);
    if (this.#mode === 'sunk') return;
    if (this.#mode === 'stream') {
      if (!this.push(Buffer.from(view))) {
        this.#streamPaused = true;
        this.#exchange.pause();
      }
      return;
    }
    this.#early = this.#early ? Buffer.concat([this.#early, view]) : Buffer.from(view);
  }

  /** From the exchange: the body ended complete, or with `err`. */
  settle(err: Error | undefined): void {
    if (this.#mode === 'none') {
      this.#ended = { err };
      // Failed before anyone read it: 'close' now (budgets and deadlines wait for it), with no
      // 'error' event, which nobody listens to yet; a reader that comes is told by `failure`.
      if (err) this.destroy();
      return;
    }
    if (this.#mode === 'stream') {
      if (err) this.destroy(err);
      else this.push(null);
      return;
    }
    if (this.#mode === 'sunk') return;
    const sink = this.#sink as ChunkSink;
    this.#mode = 'sunk';
    // Told from timers and microtasks too, where a throw would end the process.
    try {
      if (err) sink.error(err);
      else sink.end();
    } catch (thrown) {
      if (!err) this.#quietly(() => sink.error(thrown as Error));
    }
    this.destroy();
  }

  /**
   * Hands every chunk to `sink` as it is read, instead of the stream; only before the body is read
   * otherwise. Delivery starts once the caller holds the control (on the next microtask).
   */
  sink(sink: ChunkSink): SinkControl {
    if (this.#mode !== 'none' || this.destroyed) throw new Error('internal: the body is already being read');
    this.#mode = 'sink';
    this.#sink = sink;
    const body = this;
    queueMicrotask(() => this.#startSink());
    return {
      pause: () => body.#pauseSink(),
      resume: () => body.#resumeSink(),
      get paused() {
        return body.#sinkPaused;
      },
    };
  }

  #startSink(): void {
    if (this.#mode !== 'sink') return;
    const early = this.#early;
    this.#early = undefined;
    const ended = this.#ended;
    this.#ended = undefined;
    if (early) this.#chunk(early);
    if (this.#mode !== 'sink') return;
    if (ended) this.settle(ended.err);
    else if (!this.#sinkPaused) this.#exchange.resume();
  }

  /** A chunk to the sink; a sink that throws fails the exchange (and is told so), never the process. */
  #chunk(view: Buffer): void {
    try {
      (this.#sink as ChunkSink).chunk(view);
    } catch (err) {
      this.#exchange.fail(err as Error);
      // An exchange already over (the whole body came with the head) fails nothing: tell the sink here.
      if (this.#mode === 'sink') this.settle(err as Error);
    }
  }

  #quietly(f: () => void): void {
    try {
      f();
    } catch {
      // The sink failed while told it failed: nobody is left to tell.
    }
  }

  #pauseSink(): void {
    this.#sinkPaused = true;
    this.#exchange.pause();
  }

  #resumeSink(): void {
    if (!this.#sinkPaused) return;
    this.#sinkPaused = false;
    if (this.#mode === 'sink') this.#exchange.resume();
  }

  override _read(): void {
    if (this.#mode === 'sink' || this.#mode === 'sunk') return;
    if (this.#mode === 'none') {
      this.#mode = 'stream';
      const early = this.#early;
      this.#early = undefined;
      if (early) this.push(early);
      if (this.#ended) return this.settle(this.#ended.err);
    }
    this.#streamPaused = false;
    this.#exchange.resume();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.#exchange.abandon();
    callback(err);
  }
}

/** What reads a body chunk by chunk, whichever kind it is. `transient` chunks are valid only during the call. */
export interface FeedHandlers {
  chunk(buf: Buffer, transient: boolean): void;
  end(): void;
  error(err: Error): void;
}

/** Holds a fed body back, lets it go on, or stops it for good (nothing more is told then). */
export interface Feed extends SinkControl {
  stop(): void;
}

/**
 * Reads `body` chunk by chunk: an OwnBody from its read buffer (no copy), any other Readable from its
 * 'data' events. Exactly one of `end` and `error` follows the chunks, after `feed` returned.
 */
export function feed(body: Readable, handlers: FeedHandlers): Feed {
  let over = false;
  const once =
    <A extends unknown[]>(f: (...a: A) => void) =>
    (...a: A): void => {
      if (over) return;
      over = true;
      f(...a);
    };
  const end = once(() => handlers.end());
  const error = once((err: Error) => handlers.error(err));
  // A destroyed body emits nothing more (an upstream whose first packet held the headers and then
  // a protocol error): waiting for its events would hang its reader for ever.
  if (body.destroyed) {
    const why = (body instanceof OwnBody ? body.failure : undefined) ?? body.errored;
    queueMicrotask(() => error(why ?? new Error('the connection closed before the body was read')));
    return { pause: () => undefined, resume: () => undefined, paused: false, stop: () => (over = true) };
  }
  if (body instanceof OwnBody) {
    const control = body.sink({ chunk: (v) => over || handlers.chunk(v, true), end, error });
    return {
      pause: () => control.pause(),
      resume: () => control.resume(),
      get paused() {
        return control.paused;
      },
      stop: () => {
        over = true;
        body.destroy();
      },
    };
  }
  const onData = (buf: Buffer): void => {
    if (!over) handlers.chunk(buf, false);
  };
  body.on('data', onData);
  body.once('error', error);
  // Destroyed without an error (no 'end', no 'error' follows): the body is cut, not complete.
  body.once('close', () => {
    if (!body.readableEnded) error(new Error('the connection closed before the body ended'));
  });
  body.once('end', end);
  return {
    pause: () => body.pause(),
    resume: () => body.resume(),
    get paused() {
      return body.isPaused();
    },
    stop: () => {
      over = true;
      body.off('data', onData);
      body.on('error', () => undefined).destroy();
    },
  };
}
