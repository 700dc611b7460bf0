// Pass-through: clients' own credentials for an upstream, checked there on every request. The
// upstream (a real registry with a token server that gives carol only app/public) decides; what
// pullgate holds (stored manifests, cached blobs) never reaches a client the upstream refuses,
// and answers are kept per credential, so one client's access never carries over to another.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startRegistry, type BuiltImage, type Registry } from '../harness/index.ts';
import type { TestProxy } from './proxy-fixture.ts';
import { authSetup, seedImages, skopeoInspect, startAuthProxy, USERS, type AuthSetup } from './auth-fixture.ts';

const work = mkdtempSync(join(tmpdir(), 'pullgate-passthrough-'));
const CAROL = { username: 'carol', password: 'carol-upstream-pw' };
let registry: Registry;
let setup: AuthSetup;
let proxy: TestProxy;
let image: BuiltImage;

test.before(async () => {
  registry = await startRegistry({ auth: 'token', tokenUsers: [{ ...CAROL, repositories: ['app/public'] }] });
  image = await seedImages(work, registry, ['app/private', 'app/public'], 'pass-through');
  setup = authSetup();
  proxy = await startAuthProxy(registry, setup.auth, {
    upstreams: [
      {
        host: 'registry.test',
        url: registry.url,
        insecure: true,
        tokenRealms: [new URL(registry.tokenServer!.url).host],
        // pullgate's own account reads everything (content and evidence); clients prove their own access
        username: registry.credentials!.username,
        password: registry.credentials!.password,
        passThrough: { cacheSeconds: 30 },
      },
    ],
  });
});
test.after.always(async () => {
  await proxy?.close();
  await registry?.stop();
  setup?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

const owner = () => `${registry.credentials!.username}:${registry.credentials!.password}`;

async function tokenFor(user: string, password: string, name: string): Promise<string> {
  const r = await request(`${proxy.url}/token?service=pullgate&scope=repository:${name}:pull`, {
    headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` },
  });
  if (r.statusCode !== 200) throw new Error(`token: ${r.statusCode} ${await r.body.text()}`);
  return ((await r.body.json()) as { token: string }).token;
}

test.serial(
  'the upstream decides: its owner pulls everything, carol only app/public, a wrong password nothing',
  async (t) => {
    const ownerPull = await skopeoInspect(`${proxy.host}/registry.test/app/private:1`, owner());
    t.is(ownerPull.code, 0, ownerPull.stderr);
    // the decision record names the pass-through identity at its upstream
    const records = await proxy.proxy.store.queryAudit({ image: 'registry.test/app/private' });
    t.true(
      records.some(
        (r) =>
          (r.detail as { client?: { identity?: string } } | undefined)?.client?.identity === 'testuser@registry.test',
      ),
    );
    const carolPrivate = await skopeoInspect(
      `${proxy.host}/registry.test/app/private:1`,
      `${CAROL.username}:${CAROL.password}`,
    );
    t.not(carolPrivate.code, 0);
    t.regex(carolPrivate.stderr, /upstream registry\.test refuses the credentials of \\?"carol\\?"/);
    const carolPublic = await skopeoInspect(
      `${proxy.host}/registry.test/app/public:1`,
      `${CAROL.username}:${CAROL.password}`,
    );
    t.is(carolPublic.code, 0, carolPublic.stderr);
    const wrong = await skopeoInspect(`${proxy.host}/registry.test/app/public:1`, 'carol:not-her-password');
    t.not(wrong.code, 0);
    t.regex(wrong.stderr, /refuses the credentials/);
    // a pullgate identity follows auth.rules, with pullgate's own upstream account
    t.is((await skopeoInspect(`${proxy.host}/registry.test/app/private:1`, `alice:${USERS.alice}`)).code, 0);
    t.not((await skopeoInspect(`${proxy.host}/registry.test/app/private:1`, `bob:${USERS.bob}`)).code, 0);
  },
);

test.serial(
  'cached content never reaches a client the upstream refuses, and access is not carried between credentials',
  async (t) => {
    // the owner fetches every blob: all of them are now in the blob cache
    const ownerToken = await tokenFor(
      registry.credentials!.username,
      registry.credentials!.password,
      'registry.test/app/private',
    );
    for (const blob of image.blobs) {
      const r = await request(`${proxy.url}/v2/registry.test/app/private/blobs/${blob}`, {
        headers: { authorization: `Bearer ${ownerToken}` },
      });
      t.is(r.statusCode, 200);
      await r.body.dump();
    }
    const carolToken = await tokenFor(CAROL.username, CAROL.password, 'registry.test/app/private');
    const paths = [
      '/v2/registry.test/app/private/manifests/1',
      `/v2/registry.test/app/private/manifests/${image.digest}`,
      ...image.blobs.map((b) => `/v2/registry.test/app/private/blobs/${b}`),
      '/v2/registry.test/app/private/tags/list',
    ];
    for (const path of paths) {
      for (const method of ['GET', 'HEAD'] as const) {
        const r = await request(`${proxy.url}${path}`, { method, headers: { authorization: `Bearer ${carolToken}` } });
        const body = Buffer.from(await r.body.arrayBuffer());
        t.is(r.statusCode, 403, `${method} ${path}`);
        t.is(r.headers['docker-content-digest'], undefined);
        if (method === 'GET') t.regex(body.toString(), /"code":"DENIED"/);
      }
    }
    // carol's access to app/public (proven above) lets nothing of app/private through, and the
    // owner's recent access did not become carol's: the same blob digests, refused again
    const publicToken = await tokenFor(CAROL.username, CAROL.password, 'registry.test/app/public');
    const manifest = await request(`${proxy.url}/v2/registry.test/app/public/manifests/1`, {
      headers: { authorization: `Bearer ${publicToken}`, accept: image.mediaType },
    });
    t.is(manifest.statusCode, 200);
    await manifest.body.dump();
    const sameBlob = await request(`${proxy.url}/v2/registry.test/app/private/blobs/${image.blobs[0]}`, {
      headers: { authorization: `Bearer ${carolToken}` },
    });
    t.is(sameBlob.statusCode, 403);
    await sameBlob.body.dump();
    // the token carries carol's password sealed: not readable from the token
    const payload = Buffer.from(carolToken.split('.')[1]!, 'base64url').toString();
    t.false(payload.includes(CAROL.password));
    t.false(JSON.stringify(proxy.logs).includes(CAROL.password), 'pass-through passwords never reach the log');
  },
);
