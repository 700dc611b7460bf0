// `Authorization: Basic` as clients send it to /token. Bounded and strict: an oversized or
// malformed header is refused before anything else reads it. Pure.
import type { Credentials } from './types.ts';

/** Kubernetes service-account tokens, passed as the password, are 1-2 KiB; this leaves room. */
export const PASSWORD_MAX_BYTES = 12 * 1024;
export const USERNAME_MAX_BYTES = 256;
const HEADER_MAX = Math.ceil(((USERNAME_MAX_BYTES + PASSWORD_MAX_BYTES + 1) * 4) / 3) + 16;

/** Printable characters (no controls): what a user name may hold. */
const USERNAME_RE = /^[^\x00-\x1f\x7f:]+$/u;

/** The credentials in an Authorization header; undefined when there is none, a message when malformed. */
export function parseBasic(header: string | undefined): Credentials | undefined | string {
  if (header === undefined || header === '') return undefined;
  if (header.length > HEADER_MAX) return `the Authorization header is longer than ${HEADER_MAX} characters`;
  const m = /^Basic +([A-Za-z0-9+/]+={0,2}) *$/i.exec(header);
  if (!m) return 'expected "Authorization: Basic <base64 of user:password>"';
  const decoded = Buffer.from(m[1] as string, 'base64');
  const text = decoded.toString('utf8');
  if (Buffer.byteLength(text) !== decoded.length) return 'the Basic credentials are not valid UTF-8';
  const colon = text.indexOf(':');
  if (colon < 0) return 'the Basic credentials have no ":" between user and password';
  return checkCredentials({ username: text.slice(0, colon), password: text.slice(colon + 1) });
}

/** The same bounds for credentials that arrive as form fields (the OAuth2 password grant). */
export function checkCredentials(c: Credentials): Credentials | string {
  if (c.username === '' || Buffer.byteLength(c.username) > USERNAME_MAX_BYTES || !USERNAME_RE.test(c.username))
    return `the user name must be 1-${USERNAME_MAX_BYTES} bytes of printable characters without ":"`;
  if (c.password === '') return 'the password is empty';
  if (Buffer.byteLength(c.password) > PASSWORD_MAX_BYTES)
    return `the password is longer than ${PASSWORD_MAX_BYTES} bytes`;
  return c;
}
