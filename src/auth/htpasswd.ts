// An htpasswd file of bcrypt entries (`htpasswd -B`), the format distribution's registry and
// nginx read. Bounded; every other scheme is refused by line, since MD5, SHA-1 and crypt
// entries are cheap to brute-force. Pure.

export const HTPASSWD_MAX_BYTES = 4 * 1024 * 1024;
const MAX_USERS = 100_000;
/** Higher costs take seconds per check in JavaScript: a flood of logins would queue for minutes. */
export const BCRYPT_MAX_COST = 14;
const BCRYPT_RE = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;
const USER_RE = /^[^\x00-\x1f\x7f:]{1,256}$/u;

/** user → bcrypt hash, or a message naming the line that is wrong. */
export function parseHtpasswd(text: string): Map<string, string> | string {
  if (text.length > HTPASSWD_MAX_BYTES) return `larger than ${HTPASSWD_MAX_BYTES} bytes`;
  const users = new Map<string, string>();
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const where = `line ${i + 1}`;
    const colon = line.indexOf(':');
    if (colon <= 0) return `${where}: expected USER:HASH`;
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (!USER_RE.test(user)) return `${where}: the user name must be 1-256 printable characters`;
    const m = BCRYPT_RE.exec(hash);
    if (!m)
      return `${where} (user ${user}): not a bcrypt hash; only bcrypt entries are accepted (create them with htpasswd -B)`;
    const cost = Number(m[1]);
    if (cost < 4 || cost > BCRYPT_MAX_COST)
      return `${where} (user ${user}): bcrypt cost ${cost} is outside 4-${BCRYPT_MAX_COST} (htpasswd -B -C 10)`;
    if (users.has(user)) return `${where}: user ${user} is listed twice`;
    if (users.size >= MAX_USERS) return `more than ${MAX_USERS} users`;
    users.set(user, hash);
  }
  return users;
}
