// Durations as policies write them (`7d`, `12h`, `1d12h`, `30m`, `2w`) and ages as reasons say them.

const UNIT_MS: Record<string, number> = { w: 7 * 86_400_000, d: 86_400_000, h: 3_600_000, m: 60_000, s: 1_000 };
const DURATION_RE = /^(?:\d+[wdhms])+$/;

/** Milliseconds, or undefined when the text is not a positive duration. */
export function parseDuration(text: string): number | undefined {
  if (!DURATION_RE.test(text)) return undefined;
  let ms = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+)([wdhms])/g))
    ms += Number(amount) * (UNIT_MS[unit as string] as number);
  return ms > 0 && Number.isSafeInteger(ms) ? ms : undefined;
}

const AGE_UNITS: [number, string][] = [
  [86_400_000, 'day'],
  [3_600_000, 'hour'],
  [60_000, 'minute'],
  [1_000, 'second'],
];

/** e.g. `9 days`, `7.2 days`, `3 hours`, `1 second`: the largest unit that fits, one decimal at most. */
export function formatAge(ms: number): string {
  const [size, unit] = AGE_UNITS.find(([size]) => ms >= size) ?? (AGE_UNITS[AGE_UNITS.length - 1] as [number, string]);
  const value = Math.floor((ms / size) * 10) / 10;
  return `${value} ${unit}${value === 1 ? '' : 's'}`;
}
