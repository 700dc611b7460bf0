// Secrets that were never filled in: the REPLACE-… values of deploy/kubernetes/secret.yaml and the
// change-me family of example values. A proxy started with one would run with a guessable admin
// token or send a placeholder as credentials, so it refuses to start instead. Pure.

/** Words that only stand-in values contain, compared on lowercase letters and digits only. */
const MARKERS = [
  'changeme',
  'replaceme',
  'replacewith',
  'tobereplaced',
  'placeholder',
  'example',
  'insertyour',
  'yourtoken',
  'yoursecret',
  'yourpassword',
  'fillmein',
  'notasecret',
  'dummy',
  'fixme',
  'redacted',
];

/** The marker that makes `value` a placeholder, or undefined for a value that may be a real secret. */
export function placeholderMarker(value: string): string | undefined {
  const folded = value.toLowerCase().replace(/[^a-z0-9]/g, '');
  if (folded.startsWith('replace')) return 'replace';
  const marker = MARKERS.find((m) => folded.includes(m));
  if (marker) return marker;
  if (/^<.*>$/.test(value.trim())) return '<…>';
  if (value.length > 0 && new Set(value).size === 1) return `${value[0]}${value[0]}${value[0]}…`;
  return undefined;
}
