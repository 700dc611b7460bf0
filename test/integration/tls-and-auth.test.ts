// TLS termination (and certificate reload), upstreams behind a private CA, basic auth, and blob
// redirects to another origin that must not receive the upstream's credentials.
import test from 'ava';
import { createHash, X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import {
  buildImage,
  makeCa,
  pushImage,
  runChecked,
  skopeoCopy,
  skopeoInspectDigest,
  startRegistry,
} from '../harness/index.ts';
import { ALLOW_ALL, startTestProxy } from './proxy-fixture.ts';

const work = mkdtempSync(join(tmpdir(), 'pullgate-tls-'));
test.after.always(() => rmSync(work, { recursive: true, force: true }));

function servedCertificate(port: number, ca: string): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca: readFileSync(ca), servername: 'localhost' }, () => {
      const cert = socket.getPeerX509Certificate();
      socket.end();
      if (cert) resolve(cert);
      else reject(new Error('no certificate'));
    });
    socket.on('error', reject);
  });
}

test('TLS termination: clients verify the proxy with its CA, the certificate reloads, and a proxy upstream behind a private CA works only with caFile', async (t) => {
  const ca = await makeCa(work);
  const first = await ca.issue('proxy-1');
  const registry = await startRegistry();
  const image = await buildImage(join(work, 'img'), '1', { seed: 'tls' });
  await pushImage(join(work, 'img'), '1', `${registry.host}/app/tls:1`);
  const front = await startTestProxy({
    policy: ALLOW_ALL,
    config: {
      listen: { host: '127.0.0.1', port: 0, tls: { cert: first.certFile, key: first.keyFile } },
      upstreams: [{ host: 'registry.test', url: registry.url, insecure: true }],
    },
  });
  t.teardown(async () => {
    await front.close();
    await registry.stop();
  });
  t.regex(front.url, /^https:/);
  const port = Number(new URL(front.url).port);

  // skopeo verifies the proxy's certificate with the CA (no --tls-verify=false)
  const certDir = join(work, 'certs');
  mkdirSync(certDir);
  copyFileSync(ca.certFile, join(certDir, 'ca.crt'));
  const raw = await runChecked('skopeo', [
    'inspect',
    '--raw',
    `--cert-dir=${certDir}`,
    `docker://${front.host}/registry.test/app/tls:1`,
  ]);
  t.is(`sha256:${createHash('sha256').update(raw).digest('hex')}`, image.digest);

  // a second proxy whose upstream is the first one, reached over TLS with the private CA
  const chained = await startTestProxy({
    policy: ALLOW_ALL,
    config: { upstreams: [{ host: 'front.test', url: front.url, caFile: ca.certFile }] },
  });
  const untrusting = await startTestProxy({
    policy: ALLOW_ALL,
    config: { upstreams: [{ host: 'front.test', url: front.url }] },
  });
  t.teardown(async () => {
    await chained.close();
    await untrusting.close();
  });
  const viaChain = await request(`${chained.url}/v2/front.test/registry.test/app/tls/manifests/1`, {
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  await viaChain.body.dump();
  t.is(viaChain.statusCode, 200);
  t.is(viaChain.headers['docker-content-digest'], image.digest);
  const refused = await request(`${untrusting.url}/v2/front.test/registry.test/app/tls/manifests/1`);
  const body = await refused.body.text();
  t.is(refused.statusCode, 502);
  t.regex(body, /front\.test is unreachable: .*(CERT|SELF_SIGNED|UNABLE_TO_VERIFY)/);

  // certificate rotation: overwrite the files, reload, and the new certificate is served
  const before = await servedCertificate(port, ca.certFile);
  const second = await ca.issue('proxy-2');
  copyFileSync(second.certFile, first.certFile);
  copyFileSync(second.keyFile, first.keyFile);
  front.proxy.reloadTls();
  const after = await servedCertificate(port, ca.certFile);
  t.not(after.serialNumber, before.serialNumber);
  t.is(after.subject, 'CN=proxy-2');
});

test('basic auth upstream: credentials from the config are used; without them the client gets UNAUTHORIZED', async (t) => {
  const registry = await startRegistry({ auth: 'htpasswd' });
  const image = await buildImage(join(work, 'basic'), '1', { seed: 'basic' });
  await pushImage(join(work, 'basic'), '1', `${registry.host}/app/basic:1`, { creds: registry.credentials! });
  const withCreds = await startTestProxy({
    policy: ALLOW_ALL,
    config: {
      upstreams: [
        { host: 'private.test', url: registry.url, insecure: true, usernameEnv: 'UNUSED_U', passwordEnv: 'UNUSED_P' },
      ],
    },
  }).catch((err: Error) => err);
  t.true(
    withCreds instanceof Error && /UNUSED_U is not set/.test(withCreds.message),
    'a missing credential variable stops the start',
  );
  const proxy = await startTestProxy({
    policy: ALLOW_ALL,
    config: { upstreams: [{ host: 'private.test', url: registry.url, insecure: true, ...registry.credentials }] },
  });
  const anonymous = await startTestProxy({
    policy: ALLOW_ALL,
    config: { upstreams: [{ host: 'private.test', url: registry.url, insecure: true }] },
  });
  t.teardown(async () => {
    await proxy.close();
    await anonymous.close();
    await registry.stop();
  });
  await skopeoCopy(`docker://${proxy.host}/private.test/app/basic:1`, `oci:${join(work, 'basic-out')}:1`);
  t.is(await skopeoInspectDigest(`oci:${join(work, 'basic-out')}:1`), image.digest);
  const denied = await request(`${anonymous.url}/v2/private.test/app/basic/manifests/1`);
  const body = JSON.parse(await denied.body.text());
  t.is(denied.statusCode, 401);
  t.is(body.errors[0].code, 'UNAUTHORIZED');
  t.regex(body.errors[0].message, /private\.test/);
  t.false(JSON.stringify(proxy.logs).includes(registry.credentials!.password), 'credentials never reach the log');
});

test('blob redirects to another origin are followed by the proxy without the upstream credentials', async (t) => {
  const registry = await startRegistry({ auth: 'htpasswd' });
  const image = await buildImage(join(work, 'redir'), '1', { seed: 'redirect' });
  await pushImage(join(work, 'redir'), '1', `${registry.host}/app/redir:1`, { creds: registry.credentials! });
  const basic = `Basic ${Buffer.from(`${registry.credentials!.username}:${registry.credentials!.password}`).toString('base64')}`;
  // A front like a registry on object storage: blob GETs answer 307 to a "storage" origin
  // (localhost instead of 127.0.0.1), which serves the bytes with its own credentials.
  const storageSaw: IncomingHttpHeaders[] = [];
  const forward = (
    req: import('node:http').IncomingMessage,
    res: import('node:http').ServerResponse,
    auth?: string,
  ) => {
    const headers = { ...req.headers, host: registry.host, ...(auth ? { authorization: auth } : {}) };
    const up = httpRequest(`${registry.url}${req.url}`, { method: req.method, headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    req.pipe(up);
  };
  const storage = createServer((req, res) => {
    storageSaw.push(req.headers);
    forward(req, res, basic);
  });
  await new Promise<void>((r) => storage.listen(0, '127.0.0.1', r));
  const storagePort = (storage.address() as { port: number }).port;
  const front = createServer((req, res) => {
    if (/\/blobs\/sha256:/.test(req.url ?? '')) {
      res.writeHead(307, { location: `http://localhost:${storagePort}${req.url}` });
      res.end();
      return;
    }
    forward(req, res);
  });
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
  const frontUrl = `http://127.0.0.1:${(front.address() as { port: number }).port}`;
  const proxy = await startTestProxy({
    policy: ALLOW_ALL,
    config: {
      upstreams: [
        {
          host: 'objects.test',
          url: frontUrl,
          insecure: true,
          ...registry.credentials,
          // the "object storage" is on loopback: internal, so allowlisted for this upstream
          egress: { allowHosts: ['localhost'] },
        },
      ],
    },
  });
  t.teardown(async () => {
    await proxy.close();
    storage.close();
    front.close();
    await registry.stop();
  });

  await skopeoCopy(`docker://${proxy.host}/objects.test/app/redir:1`, `oci:${join(work, 'redir-out')}:1`);
  t.is(await skopeoInspectDigest(`oci:${join(work, 'redir-out')}:1`), image.digest);
  t.true(storageSaw.length >= 2, 'config and layer came from the storage origin');
  t.true(
    storageSaw.every((h) => h.authorization === undefined),
    'the upstream credentials were not sent to the other origin',
  );
});
