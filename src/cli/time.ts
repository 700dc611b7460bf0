// Points in time as admins type them on the command line: an age back from now (`30m`, `1h`, `7d`,
// `1d12h`, the policy's duration syntax) or an RFC 3339 time (`2025-01-31T12:00:00Z`, a full date).
import { parseDuration } from '../policy/duration.ts';

const RFC3339_RE =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-](\d{2}):(\d{2})))?$/;

/** The time `text` names, relative to `now`, or an error message saying what is accepted. */
export function parseTime(text: string, now: Date): Date | string {
  const ms = parseDuration(text);
  if (ms !== undefined) return new Date(now.getTime() - ms);
  const m = RFC3339_RE.exec(text);
  if (m) {
    const [, year, month, day, hour = '00', minute = '00', second = '00', , zone, zh = '00', zm = '00'] = m;
    const t = new Date(zone === undefined ? `${year}-${month}-${day}T00:00:00Z` : text.replace(' ', 'T'));
    const offsetMinutes =
      zone === undefined || /^z$/i.test(zone) ? 0 : (zone.startsWith('-') ? -1 : 1) * (Number(zh) * 60 + Number(zm));
    // Date accepts some impossible fields (a 30th of February rolls over): the fields must come back unchanged.
    const local = new Date(t.getTime() + offsetMinutes * 60_000);
    if (
      !Number.isNaN(t.getTime()) &&
      Number(zh) < 24 &&
      Number(zm) < 60 &&
      local.getUTCFullYear() === Number(year) &&
      local.getUTCMonth() + 1 === Number(month) &&
      local.getUTCDate() === Number(day) &&
      local.getUTCHours() === Number(hour) &&
      local.getUTCMinutes() === Number(minute) &&
      local.getUTCSeconds() === Number(second)
    )
      return t;
  }
  return `"${text}" is neither an age like 30m, 1h, 7d or 1d12h nor an RFC 3339 time like 2025-01-31T12:00:00Z`;
}
