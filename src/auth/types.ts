// Who a client is, once authenticated, and what it may pull. Shared by the credential checkers,
// the rules, the token service and the edge.

export type IdentityKind = 'user' | 'serviceaccount' | 'upstream';

export interface Identity {
  /**
   * As decision records and messages name it: the htpasswd user (`alice`), the Kubernetes
   * service account (`system:serviceaccount:team-a:builder`), or a pass-through user at its
   * upstream (`octocat@ghcr.io`).
   */
  name: string;
  kind: IdentityKind;
  /** `auth.groups` for htpasswd users; `system:serviceaccounts[:<namespace>]` for service accounts. */
  groups: readonly string[];
  serviceAccount?: { namespace: string; name: string };
}

/** A repository access as a token carries it: the canonical `upstream/repository` and the granted actions. */
export interface Grant {
  name: string;
  actions: string[];
}

/** Credentials as a client sent them (Basic, or the OAuth2 password grant). */
export interface Credentials {
  username: string;
  password: string;
}
