import test from 'ava';
import { formatAge, parseDuration } from '../../../src/policy/duration.ts';

test('durations: a positive number and unit, units may be combined', (t) => {
  t.is(parseDuration('7d'), 7 * 86_400_000);
  t.is(parseDuration('1d12h'), 36 * 3_600_000);
  t.is(parseDuration('2w'), 14 * 86_400_000);
  t.is(parseDuration('90m'), 90 * 60_000);
  t.is(parseDuration('45s'), 45_000);
  for (const bad of ['', '7', 'd', '0d', '7 d', '7days', '-1d', '1.5d', '7D']) t.is(parseDuration(bad), undefined, bad);
});

test('ages: the largest unit that fits, at most one decimal', (t) => {
  t.is(formatAge(9 * 86_400_000), '9 days');
  t.is(formatAge(7.25 * 86_400_000), '7.2 days');
  t.is(formatAge(86_400_000), '1 day');
  t.is(formatAge(3 * 3_600_000), '3 hours');
  t.is(formatAge(61_000), '1 minute');
  t.is(formatAge(1_000), '1 second');
  t.is(formatAge(200), '0.2 seconds');
});
