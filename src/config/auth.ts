// The `auth` section: client authentication and the rules of who may pull what. Every pattern is
// parsed here so that a typo stops the proxy at start with the key that holds it.
import type { AuthConfig, AuthRuleConfig } from './types.ts';
import type { Node } from './reader.ts';
import { parseRepositoryPattern, parseSubjectPattern } from '../auth/rules.ts';

const SERVICE_RE = /^[A-Za-z0-9._:-]{1,128}$/;
const GROUP_RE = /^[A-Za-z0-9._:@-]{1,128}$/;

export const AUTH_KEYS = ['enabled', 'service', 'realm', 'token', 'htpasswd', 'groups', 'kubernetes', 'rules'];

/** Undefined when the section is absent or `enabled: false`. */
export function readAuth(n: Node, path: (p: string) => string): AuthConfig | undefined {
  const a = n.object(AUTH_KEYS);
  if (!a.get('enabled').boolean(false)) {
    // Settings without `enabled: true` would look like protection that is not there.
    if (n.present && Object.keys(n.value as object).some((k) => k !== 'enabled'))
      a.get('enabled').fail('auth settings are given but auth is off: set enabled: true (or remove the section)');
    return undefined;
  }
  const service = a.get('service').string('pullgate');
  if (!SERVICE_RE.test(service)) a.get('service').fail('must be 1-128 letters, digits, ".", "_", ":" or "-"');
  const realmText = a.get('realm').optionalString();
  if (realmText !== undefined) {
    const u = URL.parse(realmText);
    if (!u || (u.protocol !== 'https:' && u.protocol !== 'http:') || u.username || u.hash)
      a.get('realm').fail(
        'must be an absolute http(s) URL of the token endpoint, like https://pullgate.internal:5050/token',
      );
  }
  const token = a.get('token').object(['keyFile', 'ttlSeconds']);
  const keyFile = token.get('keyFile').optionalString();
  const htpasswd = a.get('htpasswd').object(['file']);
  const htpasswdFile = htpasswd.get('file').optionalString();
  const groups: Record<string, string[]> = {};
  const groupsNode = a.get('groups');
  if (groupsNode.present) {
    if (typeof groupsNode.value !== 'object' || Array.isArray(groupsNode.value))
      groupsNode.fail('must be a mapping of group name to its users');
    const g = groupsNode.object(Object.keys(groupsNode.value as object));
    for (const name of Object.keys(groupsNode.value as object)) {
      if (!GROUP_RE.test(name)) g.get(name).fail('a group name is 1-128 letters, digits, ".", "_", ":", "@" or "-"');
      groups[name] = g
        .get(name)
        .list()
        .map((u) => u.string());
    }
  }
  const k8s = a.get('kubernetes').object(['issuer', 'audiences', 'jwksFile']);
  let kubernetes: AuthConfig['kubernetes'];
  if (a.get('kubernetes').present) {
    const issuer = k8s.get('issuer').string();
    const audiences = k8s
      .get('audiences')
      .list()
      .map((x) => x.string());
    if (audiences.length === 0)
      k8s
        .get('audiences')
        .fail('at least one audience is required: the tokens nodes and pods present must be minted for pullgate');
    kubernetes = { issuer, audiences, jwksFile: path(k8s.get('jwksFile').string()) };
  }
  const rules: AuthRuleConfig[] = a
    .get('rules')
    .list()
    .map((r) => {
      const rule = r.object(['identities', 'repositories']);
      const identities = rule
        .get('identities')
        .list()
        .map((i) => {
          const text = i.string();
          const p = parseSubjectPattern(text);
          if (typeof p === 'string') i.fail(p);
          return text;
        });
      if (identities.length === 0) rule.get('identities').fail('a rule needs at least one identity pattern');
      const repositories = rule
        .get('repositories')
        .list()
        .map((i) => {
          const text = i.string();
          const g = parseRepositoryPattern(text);
          if (typeof g === 'string') i.fail(g);
          return text;
        });
      if (repositories.length === 0) rule.get('repositories').fail('a rule needs at least one repository pattern');
      return { identities, repositories };
    });
  return {
    service,
    ...(realmText !== undefined ? { realm: realmText } : {}),
    token: {
      ...(keyFile !== undefined ? { keyFile: path(keyFile) } : {}),
      ttlSeconds: token.get('ttlSeconds').integer(300, 60, 3600),
    },
    ...(htpasswdFile !== undefined ? { htpasswd: { file: path(htpasswdFile) } } : {}),
    groups,
    ...(kubernetes ? { kubernetes } : {}),
    rules,
  };
}
