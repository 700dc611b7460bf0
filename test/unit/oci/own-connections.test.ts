import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net, { type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { readLimited } from '../../../src/oci/body.ts';
import { feed, OwnConnections, ownSocketOptions, type OwnResponse } from '../../../src/oci/own-connections.ts';
import { buildConnector, type BuildOptions } from '../../../src/oci/undici.ts';
import { makeCa } from '../../harness/tls.ts';

const OPTIONS = { headersTimeoutMs: 2000, bodyTimeoutMs: 2000, keepAliveMs: 5000, maxIdle: 4 };

/** A loopback server answering each request on a connection with `answer`; counts connections and requests. */
async function server(
  answer: (socket: Socket, request: string, n: number) => void,
  secure?: { key: string; cert: string },
) {
  const stats = { connections: 0, requests: [] as string[] };
  const sockets = new Set<Socket>();
  const onSocket = (socket: Socket): void => {
    stats.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buf = '';
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const request = buf.slice(0, end + 4);
        buf = buf.slice(end + 4);
        stats.requests.push(request);
        answer(socket, request, stats.requests.length);
      }
    });
  };
  const srv = secure ? tls.createServer(secure, onSocket) : net.createServer(onSocket);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  const url = (path = '/v2/r/blobs/x') => new URL(`${secure ? 'https' : 'http'}://127.0.0.1:${port}${path}`);
  const close = async (): Promise<void> => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => srv.close(r));
  };
  return { stats, url, close };
}

function connections(extra: object = {}, options = OPTIONS): OwnConnections {
  return new OwnConnections(
    buildConnector({ timeout: 2000, ...extra, ...ownSocketOptions() } as BuildOptions),
    options,
  );
}

/** Reads a response body through `feed`, as a fill does; chunks are copied as they are shown. */
function sunk(res: OwnResponse): Promise<{ data: Buffer; error?: Error; transient: boolean[] }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const transient: boolean[] = [];
    feed(res.body, {
      chunk: (b, t) => {
        chunks.push(Buffer.from(b));
        transient.push(t);
      },
      end: () => resolve({ data: Buffer.concat(chunks), transient }),
      error: (error) => resolve({ data: Buffer.concat(chunks), error, transient }),
    });
  });
}

const blob = (n: number): Buffer => {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >> 10)) & 0xff;
  return b;
};

test('a Content-Length body reaches a sink whole, in views of the read buffer; the connection serves the next GET', async (t) => {
  const data = blob(5 * 1024 * 1024);
  const s = await server((sock) => {
    sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${data.length}\r\nDocker-Content-Digest: x\r\n\r\n`);
    sock.write(data);
  });
  const own = connections();
  t.teardown(() => (own.close(), s.close()));
  for (let i = 0; i < 2; i++) {
    const res = await own.get(s.url(), { 'user-agent': 'pullgate', authorization: 'Bearer abc' });
    t.is(res.status, 200);
    t.is(res.headers['docker-content-digest'], 'x');
    const got = await sunk(res);
    t.is(got.error, undefined);
    t.true(got.data.equals(data));
    t.true(got.transient.every((x) => x));
  }
  t.is(s.stats.connections, 1);
  t.regex(
    s.stats.requests[0] as string,
    /^GET \/v2\/r\/blobs\/x HTTP\/1\.1\r\nhost: 127\.0\.0\.1:\d+\r\nuser-agent: pullgate\r\nauthorization: Bearer abc\r\n\r\n$/,
  );
});

test('chunked and close-framed bodies, read by a sink or as a stream', async (t) => {
  const s = await server((sock, _r, n) => {
    if (n % 2 === 1)
      sock.write(
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;x=y\r\n \r\n5\r\nworld\r\n0\r\n\r\n',
      );
    else sock.end('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end');
  });
  const own = connections();
  t.teardown(() => (own.close(), s.close()));
  t.is((await sunk(await own.get(s.url(), {}))).data.toString(), 'hello world');
  t.is((await sunk(await own.get(s.url(), {}))).data.toString(), 'until the end');
  t.is((await readLimited((await own.get(s.url(), {})).body, 1000)).toString(), 'hello world');
  t.is((await readLimited((await own.get(s.url(), {})).body, 1000)).toString(), 'until the end');
  // A chunked body leaves its connection reusable (the next GET went on it); a close-framed one does not.
  t.is(s.stats.connections, 2);
});

test('an interim 100 answer is skipped; a small body that came with the head is read whole', async (t) => {
  const s = await server((sock) =>
    sock.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nnope'),
  );
  const own = connections();
  t.teardown(() => (own.close(), s.close()));
  const res = await own.get(s.url(), {});
  t.is(res.status, 401);
  // Read a turn later than the head arrived: the bytes waited for a reader.
  await new Promise((r) => setTimeout(r, 20));
  t.is((await readLimited(res.body, 100)).toString(), 'nope');
});

test('cut, overlong and malformed answers end that request with why, and their connections are not reused', async (t) => {
  const answers = [
    'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef',
    'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc',
    'HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n',
    'SSH-2.0-OpenSSH\r\n\r\n',
    'HTTP/1.1 200 OK\r\n',
  ];
  const s = await server((sock, _r, n) => {
    const a = answers[n - 1] as string;
    if (n === 4) sock.write(a);
    else sock.end(a);
  });
  const own = connections();
  t.teardown(() => (own.close(), s.close()));
  const outcome = async (): Promise<string> => {
    try {
      const got = await sunk(await own.get(s.url(), {}));
      return got.error ? `body: ${got.error.message}` : `ok: ${got.data.toString()}`;
    } catch (err) {
      return `head: ${(err as { code?: string }).code} ${(err as Error).message}`;
    }
  };
  const results = [];
  for (let i = 0; i < answers.length; i++) results.push(await outcome());
  t.deepEqual(results, [
    'body: the upstream closed the connection before the body ended',
    'body: the upstream closed the connection before the body ended',
    'body: the upstream sent a malformed chunk size "zz"',
    'ok: abc',
    'head: UPSTREAM_PROTOCOL the upstream sent both a Content-Length and a Transfer-Encoding',
    'head: UPSTREAM_PROTOCOL the upstream sent a folded header line',
    'head: UPSTREAM_PROTOCOL the upstream sent a malformed status line "SSH-2.0-OpenSSH"',
    'head: UND_ERR_SOCKET the upstream closed the connection before its answer',
  ]);
  t.is(s.stats.connections, answers.length);
});

test('a head without end, and a body that stops, time out; a sink that holds the upstream back does not', async (t) => {
  const data = blob(8 * 1024 * 1024);
  const s = await server((sock, _r, n) => {
    if (n === 1) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n');
    if (n === 2) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab');
    if (n === 3)
      sock.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${data.length}\r\n\r\n`), data]));
  });
  const own = connections({}, { ...OPTIONS, headersTimeoutMs: 150, bodyTimeoutMs: 150 });
  t.teardown(() => (own.close(), s.close()));
  await t.throwsAsync(own.get(s.url(), {}), { code: 'UND_ERR_HEADERS_TIMEOUT' } as object);
  const cut = await sunk(await own.get(s.url(), {}));
  t.like(cut.error, { code: 'UND_ERR_BODY_TIMEOUT' });
  t.is(cut.data.toString(), 'ab');

  // Paused after the first chunk for three body timeouts: nothing more arrives, nothing times out.
  const res = await own.get(s.url(), {});
  const chunks: Buffer[] = [];
  const done = new Promise<Error | undefined>((resolve) => {
    const f = feed(res.body, {
      chunk: (b) => {
        chunks.push(Buffer.from(b));
        if (chunks.length === 1) {
          f.pause();
          setTimeout(() => {
            t.is(chunks.length, 1, 'no read while paused');
            f.resume();
          }, 450);
        }
      },
      end: () => resolve(undefined),
      error: resolve,
    });
  });
  t.is(await done, undefined);
  t.true(Buffer.concat(chunks).equals(data));
});

test('an idle connection the upstream closed is replaced, once, without the caller seeing it', async (t) => {
  const s = await server((sock, _r, n) => {
    if (n === 1) sock.end('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none');
    else sock.write('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo');
  });
  // The first answer's connection reached the pool before the upstream's FIN did.
  const own = connections();
  t.teardown(() => (own.close(), s.close()));
  t.is((await sunk(await own.get(s.url(), {}))).data.toString(), 'one');
  t.is((await sunk(await own.get(s.url(), {}))).data.toString(), 'two');
  t.is(s.stats.connections, 2);
});

test('a header value that would add a line is refused before anything is sent', async (t) => {
  const s = await server((sock) => sock.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
  const own = connections();
  t.teardown(() => (own.close(), s.close()));
  await t.throwsAsync(own.get(s.url(), { authorization: 'Bearer x\r\nX-Evil: 1' }), {
    message: /invalid header "authorization"/,
  });
  await t.throwsAsync(own.get(s.url(), { 'bad name': 'x' }), { message: /invalid header/ });
  t.is(s.stats.connections, 0);
});

test('an abort mid-body ends the sink with the reason and closes the connection', async (t) => {
  let closed = false;
  const s = await server((sock) => {
    sock.on('close', () => (closed = true));
    sock.write('HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\nsome');
  });
  const own = connections();
  t.teardown(() => (own.close(), s.close()));
  const ac = new AbortController();
  const res = await own.get(s.url(), {}, ac.signal);
  const got = sunk(res);
  setTimeout(() => ac.abort(new Error('deadline')), 50);
  t.is((await got).error?.message, 'deadline');
  for (let i = 0; i < 50 && !closed; i++) await new Promise((r) => setTimeout(r, 10));
  t.true(closed);
  t.true(res.body.destroyed, "its 'close' comes, for budgets and deadlines");
});

test('TLS: a body over a verified connection, through the same read buffer', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'own-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ca = await makeCa(dir);
  const issued = await ca.issue('upstream');
  const key = readFileSync(issued.keyFile, 'utf8');
  const cert = readFileSync(issued.certFile, 'utf8');
  const caCert = readFileSync(ca.certFile, 'utf8');
  const data = blob(3 * 1024 * 1024 + 5);
  const s = await server(
    (sock) => {
      sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${data.length}\r\n\r\n`);
      sock.write(data);
    },
    { key, cert },
  );
  const own = connections({ ca: [caCert] });
  const untrusting = connections();
  t.teardown(() => (own.close(), untrusting.close(), s.close()));
  const got = await sunk(await own.get(s.url(), {}));
  t.is(createHash('sha256').update(got.data).digest('hex'), createHash('sha256').update(data).digest('hex'));
  await t.throwsAsync(untrusting.get(s.url(), {}), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' } as object);
});

test('a head and a body that arrive a few bytes at a time', async (t) => {
  const answer = 'HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-Long: ' + 'v'.repeat(300) + '\r\n\r\nhello world';
  const s = await server((sock) => {
    let i = 0;
    const next = (): void => {
      if (i >= answer.length || sock.destroyed) return;
      sock.write(answer.slice(i, i + 7));
      i += 7;
      setTimeout(next, 1);
    };
    next();
  });
  const own = connections();
  t.teardown(() => (own.close(), s.close()));
  const res = await own.get(s.url(), {});
  t.is(res.headers['x-long'], 'v'.repeat(300));
  t.is((await sunk(res)).data.toString(), 'hello world');
});

test('a sink that throws ends its own request with that error, not the process', async (t) => {
  const big = blob(5 * 1024 * 1024);
  const s = await server((sock, _r, n) => {
    // The first body comes whole with its head; the second in reads of its own, later.
    if (n === 1) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789');
    else {
      sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${big.length}\r\n\r\n`);
      setTimeout(() => sock.write(big), 20);
    }
  });
  const own = connections();
  t.teardown(() => (own.close(), s.close()));
  for (const throwAt of [1, 2]) {
    const res = await own.get(s.url(), {});
    let chunks = 0;
    const error = await new Promise<Error>((resolve) => {
      feed(res.body, {
        chunk: () => {
          if (++chunks === throwAt) throw new RangeError('Array buffer allocation failed');
        },
        end: () => resolve(new Error('ended')),
        error: resolve,
      });
    });
    t.is(error.message, 'Array buffer allocation failed', `thrown at chunk ${throwAt}`);
  }
});

test('a body that fails before anyone reads it closes at once, and its reader is told why', async (t) => {
  const s = await server((sock) => sock.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nsome'));
  const own = connections();
  t.teardown(() => (own.close(), s.close()));
  const ac = new AbortController();
  const res = await own.get(s.url(), {}, ac.signal);
  const closed = new Promise<void>((r) => res.body.once('close', () => r()));
  ac.abort(new Error('deadline'));
  await closed;
  t.true(res.body.destroyed, "its 'close' came without a reader");
  t.is((await sunk(res)).error?.message, 'deadline');
});
