// A PKI attestor's trust: CA certificates of the admin's own (containers/image's `pki`, cosign
// --certificate-chain, enterprise CAs) and the signers they vouch for, named by subject email,
// URI, DNS name or common name. Compiled once at policy load.
import { createHash } from 'node:crypto';
import type { PemSpec, PkiSignerSpec, PkiSpec } from '../policy/types.ts';
import {
  certificateNames,
  describeSubject,
  MAX_INTERMEDIATES,
  parseCertificate,
  type Certificate,
} from './cert-path.ts';
import { pemCertificates, readPemSpec } from './pem.ts';

export interface PkiSignerMatcher {
  /** e.g. `email release@corp.example, commonName ~ Release .*` */
  readonly description: string;
  matches(cert: Certificate): boolean;
}

export interface CompiledPki {
  readonly anchors: readonly Certificate[];
  readonly intermediates: readonly Certificate[];
  readonly signers: readonly PkiSignerMatcher[];
  /** `sha256:<hex>` over the DER of every anchor and intermediate: part of the verdict cache key. */
  readonly digest: string;
}

/** A problem at a field of the pki section: `['caCertificates', 0]`, `['signers', 1, 'emailRegExp']`. */
export class PkiSpecError extends Error {
  readonly at: (string | number)[];
  constructor(at: (string | number)[], message: string) {
    super(message);
    this.name = 'PkiSpecError';
    this.at = at;
  }
}

const FIELDS = [
  { name: 'email', names: 'emails' },
  { name: 'uri', names: 'uris' },
  { name: 'dnsName', names: 'dnsNames' },
  { name: 'commonName', names: 'commonNames' },
] as const;

export function compilePki(spec: PkiSpec, baseDir: string): CompiledPki {
  const anchors = readCertificates(spec.caCertificates, 'caCertificates', baseDir);
  const intermediates = readCertificates(spec.intermediateCertificates ?? [], 'intermediateCertificates', baseDir);
  if (intermediates.length > MAX_INTERMEDIATES)
    throw new PkiSpecError(['intermediateCertificates'], `at most ${MAX_INTERMEDIATES} intermediate certificates`);
  if (spec.signers.length === 0) throw new PkiSpecError(['signers'], 'name at least one signer');
  const signers = spec.signers.map((s, i) => compileSigner(s, i));
  const digest = createHash('sha256');
  for (const c of [...anchors, ...intermediates]) digest.update(c.der);
  return { anchors, intermediates, signers, digest: `sha256:${digest.digest('hex')}` };
}

function readCertificates(specs: readonly PemSpec[], field: string, baseDir: string): Certificate[] {
  return specs.flatMap((spec, i) => {
    let label = '';
    try {
      const read = readPemSpec(spec, baseDir);
      label = read.label;
      return pemCertificates(read.text, read.label).map((der) => {
        const cert = parseCertificate(der);
        if (!cert.asn1.extBasicConstraints?.isCA)
          throw new Error(`certificate ${describeSubject(cert)} is not a CA certificate (basicConstraints CA:TRUE)`);
        return cert;
      });
    } catch (err) {
      const message = (err as Error).message;
      throw new PkiSpecError([field, i], label && !message.startsWith(label) ? `${label}: ${message}` : message);
    }
  });
}

function compileSigner(spec: PkiSignerSpec, index: number): PkiSignerMatcher {
  const tests: { description: string; test: (cert: Certificate) => boolean }[] = [];
  for (const { name, names } of FIELDS) {
    const exact = spec[name];
    const pattern = spec[`${name}RegExp`];
    const at = (field: string) => ['signers', index, field];
    if (exact !== undefined && pattern !== undefined)
      throw new PkiSpecError(at(`${name}RegExp`), `give either ${name} or ${name}RegExp, not both`);
    let matches: ((value: string) => boolean) | undefined;
    let description = '';
    if (exact !== undefined) {
      if (exact === '') throw new PkiSpecError(at(name), `${name} must not be empty`);
      matches = (value) => value === exact;
      description = `${name} ${exact}`;
    } else if (pattern !== undefined) {
      let re: RegExp;
      try {
        // Anchored: a policy pattern must match the whole value, never a substring of it.
        re = new RegExp(`^(?:${pattern})$`, 'u');
      } catch (err) {
        throw new PkiSpecError(at(`${name}RegExp`), `invalid regular expression: ${(err as Error).message}`);
      }
      matches = (value) => re.test(value);
      description = `${name} ~ ${pattern}`;
    }
    if (!matches) continue;
    const test = matches;
    tests.push({ description, test: (cert) => certificateNames(cert)[names].some(test) });
  }
  if (tests.length === 0)
    throw new PkiSpecError(
      ['signers', index],
      'name the signer by email, uri, dnsName or commonName (each exact or as …RegExp)',
    );
  return {
    description: tests.map((t) => t.description).join(', '),
    matches: (cert) => tests.every((t) => t.test(cert)),
  };
}
