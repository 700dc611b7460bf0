// Trusted identities `x509.subject: <DN>` as Notation reads them: RFC 4514 syntax, one value per
// attribute type, C, ST (or S) and O required; a certificate matches when every attribute the
// policy names has exactly that value in the signing certificate's subject (a subset match).
import type { Attribute } from './x509.ts';

export type Dn = ReadonlyMap<string, string>;

export class DnError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DnError';
  }
}

const ALIASES: Record<string, string> = {
  S: 'ST',
  COMMONNAME: 'CN',
  COUNTRYNAME: 'C',
  STATEORPROVINCENAME: 'ST',
  LOCALITYNAME: 'L',
  ORGANIZATIONNAME: 'O',
  ORGANIZATIONALUNITNAME: 'OU',
  EMAILADDRESS: 'E',
};
const MANDATORY = ['C', 'ST', 'O'];

/** Parses an RFC 4514 DN as Notation accepts it for a trusted identity. */
export function parseDn(text: string): Dn {
  if (text.length > 4096) throw new DnError('distinguished name is longer than 4096 characters');
  if (text.includes('=#'))
    throw new DnError(
      `unsupported distinguished name ${JSON.stringify(text)}: hex-encoded values ("=#") are not supported`,
    );
  const out = new Map<string, string>();
  for (const rdn of splitUnescaped(text, ',')) {
    if (splitUnescaped(rdn, '+').length > 1)
      throw new DnError(`distinguished name ${JSON.stringify(text)} has a multi-valued RDN; those are not supported`);
    const eq = rdn.indexOf('=');
    if (eq <= 0)
      throw new DnError(
        `distinguished name ${JSON.stringify(text)}: RDN ${JSON.stringify(rdn.trim())} is not type=value`,
      );
    const rawType = rdn.slice(0, eq).trim().toUpperCase();
    if (!/^([A-Z][A-Z0-9-]*|\d+(\.\d+)+)$/.test(rawType))
      throw new DnError(`distinguished name ${JSON.stringify(text)}: bad attribute type ${JSON.stringify(rawType)}`);
    const type = ALIASES[rawType] ?? rawType;
    const value = unescapeValue(rdn.slice(eq + 1), text);
    if (value === '') throw new DnError(`distinguished name ${JSON.stringify(text)}: ${type} has an empty value`);
    if (out.has(type))
      throw new DnError(
        `distinguished name ${JSON.stringify(text)} has ${type} twice; a DN can only have unique attributes`,
      );
    out.set(type, value);
  }
  for (const field of MANDATORY)
    if (!out.has(field))
      throw new DnError(
        `distinguished name ${JSON.stringify(text)} has no ${field}; a trusted identity must contain C, ST (or S) and O at a minimum`,
      );
  return out;
}

function splitUnescaped(text: string, sep: string): string[] {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === '\\' && i + 1 < text.length) {
      cur += c + (text[i + 1] as string);
      i++;
    } else if (c === sep) {
      parts.push(cur);
      cur = '';
    } else cur += c;
  }
  parts.push(cur);
  return parts;
}

function unescapeValue(raw: string, whole: string): string {
  // Unescaped leading/trailing spaces are insignificant; escaped ones are kept.
  let start = 0;
  let end = raw.length;
  while (start < end && raw[start] === ' ') start++;
  while (end > start && raw[end - 1] === ' ' && raw[end - 2] !== '\\') end--;
  const s = raw.slice(start, end);
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (c !== '\\') {
      if ('",;<>'.includes(c))
        throw new DnError(`distinguished name ${JSON.stringify(whole)}: character ${c} must be escaped`);
      bytes.push(...Buffer.from(c, 'utf8'));
      continue;
    }
    const next = s[i + 1];
    if (next === undefined) throw new DnError(`distinguished name ${JSON.stringify(whole)} ends with a lone backslash`);
    if (/^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (' "#+,;<=>\\'.includes(next)) {
      bytes.push(next.charCodeAt(0));
      i++;
    } else throw new DnError(`distinguished name ${JSON.stringify(whole)}: bad escape \\${next}`);
  }
  return Buffer.from(bytes).toString('utf8');
}

/** The certificate subject as a type→value map; undefined when a type repeats (it cannot be matched). */
export function certificateDn(attributes: readonly Attribute[]): Dn | undefined {
  const out = new Map<string, string>();
  for (const a of attributes) {
    if (out.has(a.type)) return undefined;
    out.set(a.type, a.value);
  }
  return out;
}

/** Every attribute of `policy` has the same value in `subject`. */
export function isSubsetDn(policy: Dn, subject: Dn): boolean {
  for (const [type, value] of policy) if (subject.get(type) !== value) return false;
  return true;
}

export function formatPolicyDn(dn: Dn): string {
  return [...dn].map(([k, v]) => `${k}=${v}`).join(',');
}
