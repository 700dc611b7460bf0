// Keyless identities: an OIDC issuer and a certificate subject, each exact or an anchored regexp.
import type { IdentitySpec } from '../policy/types.ts';

export interface IdentityMatcher {
  /** e.g. `issuer https://token.actions.githubusercontent.com, subject ~ https://github.com/org/.*` */
  readonly description: string;
  matches(issuer: string | undefined, subject: string | undefined): boolean;
}

/** A field-level problem, so the caller can point at the offending key. */
export class IdentitySpecError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.name = 'IdentitySpecError';
    this.field = field;
  }
}

export function compileIdentity(spec: IdentitySpec): IdentityMatcher {
  const issuer = compileField(spec, 'issuer', 'issuerRegExp');
  const subject = compileField(spec, 'subject', 'subjectRegExp');
  return {
    description: `issuer ${issuer.description}, subject ${subject.description}`,
    matches: (iss, sub) => iss !== undefined && sub !== undefined && issuer.test(iss) && subject.test(sub),
  };
}

interface FieldMatcher {
  description: string;
  test(value: string): boolean;
}

function compileField(
  spec: IdentitySpec,
  exactKey: 'issuer' | 'subject',
  regexpKey: 'issuerRegExp' | 'subjectRegExp',
): FieldMatcher {
  const exact = spec[exactKey];
  const pattern = spec[regexpKey];
  if (exact !== undefined && pattern !== undefined) {
    throw new IdentitySpecError(regexpKey, `give either ${exactKey} or ${regexpKey}, not both`);
  }
  if (exact !== undefined) {
    if (exact === '') throw new IdentitySpecError(exactKey, `${exactKey} must not be empty`);
    return { description: exact, test: (value) => value === exact };
  }
  if (pattern !== undefined) {
    let re: RegExp;
    try {
      // Anchored: a policy pattern must match the whole value, never a substring of it.
      re = new RegExp(`^(?:${pattern})$`, 'u');
    } catch (err) {
      throw new IdentitySpecError(regexpKey, `invalid regular expression: ${(err as Error).message}`);
    }
    return { description: `~ ${pattern}`, test: (value) => re.test(value) };
  }
  // Without both constraints any account of the issuer (or any issuer) would be trusted.
  throw new IdentitySpecError(exactKey, `${exactKey} or ${regexpKey} is required`);
}
