import test from 'ava';
import { parseTime } from '../../../src/cli/time.ts';

const NOW = new Date('2025-03-01T12:00:00Z');

test('ages back from now and RFC 3339 times', (t) => {
  const cases: [string, string][] = [
    ['30s', '2025-03-01T11:59:30.000Z'],
    ['30m', '2025-03-01T11:30:00.000Z'],
    ['1h', '2025-03-01T11:00:00.000Z'],
    ['7d', '2025-02-22T12:00:00.000Z'],
    ['2w', '2025-02-15T12:00:00.000Z'],
    ['1d12h', '2025-02-28T00:00:00.000Z'],
    ['2025-01-31T12:00:00Z', '2025-01-31T12:00:00.000Z'],
    ['2025-01-31t12:00:00z', '2025-01-31T12:00:00.000Z'],
    ['2025-01-31 12:00:00Z', '2025-01-31T12:00:00.000Z'],
    ['2025-01-31T12:00:00.25Z', '2025-01-31T12:00:00.250Z'],
    ['2025-01-31T12:00:00+02:00', '2025-01-31T10:00:00.000Z'],
    ['2025-01-31T23:30:00-01:30', '2025-02-01T01:00:00.000Z'],
    ['2024-02-29', '2024-02-29T00:00:00.000Z'],
  ];
  for (const [text, iso] of cases) {
    const r = parseTime(text, NOW);
    t.true(r instanceof Date, `${text}: ${String(r)}`);
    if (r instanceof Date) t.is(r.toISOString(), iso, text);
  }
});

test('anything else is refused with a message saying what is accepted', (t) => {
  for (const text of [
    '',
    'yesterday',
    '1',
    '0h',
    '-1h',
    '1.5h',
    '1H',
    '1 h',
    '2025-01-31T12:00:00',
    '2025-02-30',
    '2025-02-29T00:00:00Z',
    '2025-13-01T00:00:00Z',
    '2025-01-31T24:00:00Z',
    '2025-01-31T12:60:00Z',
    '2025-01-31T12:00:00+24:00',
    '2025-1-31',
    '1738324800',
  ]) {
    const r = parseTime(text, NOW);
    t.is(typeof r, 'string', text);
    t.regex(String(r), /neither an age like 30m, 1h, 7d or 1d12h nor an RFC 3339 time like 2025-01-31T12:00:00Z$/);
  }
});
