// Client authentication set-ups for the integration tests: an htpasswd file (bcrypt), a cluster's
// JWKS and token issuer, an upstream registry with images, and a proxy with auth on in front.
import bcrypt from 'bcryptjs';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildImage,
  pushImage,
  runCommand,
  type BuiltImage,
  type CommandResult,
  type Registry,
} from '../harness/index.ts';
import { makeClusterIssuer, type ClusterIssuer } from '../harness/kubernetes-tokens.ts';
import { ALLOW_ALL, startTestProxy, type TestProxy } from './proxy-fixture.ts';

export const USERS = { alice: 'alice-password-1', bob: 'bob-password-22', node: 'node-password-333' };

export interface AuthSetup {
  dir: string;
  cluster: ClusterIssuer;
  /** The auth section for a proxy config. */
  auth: Record<string, unknown>;
  cleanup(): void;
}

/**
 * alice (group developers) may pull registry.test/app/**; node (group nodes) everything; bob
 * nothing; service accounts of namespace team-a registry.test/app/team-a/**.
 */
export function authSetup(extra: Record<string, unknown> = {}): AuthSetup {
  const dir = mkdtempSync(join(tmpdir(), 'pullgate-auth-it-'));
  const htpasswd = join(dir, 'htpasswd');
  writeFileSync(
    htpasswd,
    Object.entries(USERS)
      .map(([u, p]) => `${u}:${bcrypt.hashSync(p, 5)}`)
      .join('\n') + '\n',
  );
  const cluster = makeClusterIssuer();
  const jwksFile = join(dir, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify(cluster.jwks));
  return {
    dir,
    cluster,
    auth: {
      enabled: true,
      htpasswd: { file: htpasswd },
      groups: { developers: ['alice'], nodes: ['node'] },
      kubernetes: { issuer: cluster.issuer, audiences: ['pullgate'], jwksFile },
      rules: [
        { identities: ['group:nodes'], repositories: ['**'] },
        { identities: ['group:developers'], repositories: ['registry.test/app/**'] },
        { identities: ['namespace:team-a'], repositories: ['registry.test/app/team-a/**'] },
      ],
      ...extra,
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export async function startAuthProxy(
  registry: Registry,
  auth: Record<string, unknown>,
  config: Record<string, unknown> = {},
): Promise<TestProxy> {
  return startTestProxy({
    policy: ALLOW_ALL,
    config: { auth, upstreams: [{ host: 'registry.test', url: registry.url, insecure: true }], ...config },
  });
}

/** Pushes one image under each repository name (same content), returns it. */
export async function seedImages(
  work: string,
  registry: Registry,
  repositories: string[],
  seed: string,
): Promise<BuiltImage> {
  const layout = join(work, `img-${seed}`);
  const image = await buildImage(layout, '1', { seed });
  for (const r of repositories)
    await pushImage(
      layout,
      '1',
      `${registry.host}/${r}:1`,
      registry.credentials ? { creds: registry.credentials } : {},
    );
  return image;
}

/** `skopeo inspect --raw` with credentials (or none), the way a developer or CI checks an image. */
export function skopeoInspect(ref: string, creds?: string): Promise<CommandResult> {
  return runCommand(
    'skopeo',
    ['inspect', '--raw', '--tls-verify=false', ...(creds ? ['--creds', creds] : ['--no-creds']), `docker://${ref}`],
    {
      timeoutMs: 60_000,
    },
  );
}

/** Podman (as root, vfs storage in `dir`) pulling with credentials or an auth file. */
export function podman(dir: string, args: string[]): Promise<CommandResult> {
  return runCommand(
    'podman',
    [
      '--storage-driver',
      'vfs',
      '--root',
      join(dir, 'root'),
      '--runroot',
      join(dir, 'run'),
      '--tmpdir',
      join(dir, 'tmp'),
      ...args,
    ],
    { timeoutMs: 120_000 },
  );
}
