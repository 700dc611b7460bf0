// A private PKI made with the openssl CLI (`openssl req`, `openssl ca`): a root, intermediates
// and code-signing leaves with chosen names, extensions and validity windows, as an enterprise
// CA or `cosign sign --certificate-chain` users have. Keys are P-256 unless asked otherwise.
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runChecked } from './process.ts';

export interface IssuedCertificate {
  name: string;
  certFile: string;
  keyFile: string;
  pem: string;
  privateKey: KeyObject;
}

export interface LeafOptions {
  commonName?: string;
  /** openssl subjectAltName syntax, e.g. `email:ci@corp.test,URI:spiffe://corp.test/ci`. */
  subjectAltName?: string;
  /** openssl extendedKeyUsage value; default codeSigning; `none` leaves the extension out. */
  extendedKeyUsage?: string;
  keyUsage?: string;
  notBefore?: Date;
  notAfter?: Date;
  /** Further extension lines for the openssl extfile. */
  extra?: string[];
  /** `rsa-pss` for an id-RSASSA-PSS key (the default is ECDSA P-256). */
  keyType?: 'ec' | 'rsa-pss';
}

export interface CaOptions {
  pathLen?: number;
  /** false: issue a certificate without CA:TRUE (a broken intermediate). */
  ca?: boolean;
  keyUsage?: string;
  extendedKeyUsage?: string;
  notBefore?: Date;
  notAfter?: Date;
}

const LONG_AGO = new Date('2020-01-01T00:00:00Z');
const FAR_AHEAD = new Date('2045-01-01T00:00:00Z');

function opensslDate(d: Date): string {
  return `${d.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

export class OpensslCa {
  readonly cert: IssuedCertificate;
  readonly #dir: string;
  #count = 0;

  private constructor(dir: string, cert: IssuedCertificate) {
    this.#dir = dir;
    this.cert = cert;
  }

  /** A self-signed root CA, valid from 2020 to 2045 (so that old signing times can be tested). */
  static async root(dir: string, name: string): Promise<OpensslCa> {
    const home = join(dir, name);
    await mkdir(home, { recursive: true });
    const self = new OpensslCa(home, { name, certFile: '', keyFile: '', pem: '', privateKey: undefined as never });
    const cert = await self.#issue(
      name,
      `/O=pullgate-test/CN=${name}`,
      ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign', 'subjectKeyIdentifier=hash'],
      LONG_AGO,
      FAR_AHEAD,
      'ec',
      true,
    );
    return new OpensslCa(home, cert);
  }

  /** An intermediate CA issued by this one. */
  async intermediate(name: string, opts: CaOptions = {}): Promise<OpensslCa> {
    const lines = [
      opts.ca === false
        ? 'basicConstraints=critical,CA:FALSE'
        : `basicConstraints=critical,CA:TRUE${opts.pathLen !== undefined ? `,pathlen:${opts.pathLen}` : ''}`,
      `keyUsage=critical,${opts.keyUsage ?? 'keyCertSign,cRLSign'}`,
      ...(opts.extendedKeyUsage ? [`extendedKeyUsage=${opts.extendedKeyUsage}`] : []),
      'subjectKeyIdentifier=hash',
      'authorityKeyIdentifier=keyid',
    ];
    const issued = await this.#issue(name, `/O=pullgate-test/CN=${name}`, lines, opts.notBefore, opts.notAfter, 'ec');
    const home = join(this.#dir, `${name}-ca`);
    await mkdir(home, { recursive: true });
    return new OpensslCa(home, issued);
  }

  /** A signing certificate issued by this CA. */
  async leaf(name: string, opts: LeafOptions = {}): Promise<IssuedCertificate> {
    const eku = opts.extendedKeyUsage ?? 'codeSigning';
    const lines = [
      'basicConstraints=critical,CA:FALSE',
      `keyUsage=critical,${opts.keyUsage ?? 'digitalSignature'}`,
      ...(eku === 'none' ? [] : [`extendedKeyUsage=${eku}`]),
      ...(opts.subjectAltName ? [`subjectAltName=${opts.subjectAltName}`] : []),
      'subjectKeyIdentifier=hash',
      'authorityKeyIdentifier=keyid',
      ...(opts.extra ?? []),
    ];
    const subject = opts.commonName ? `/O=pullgate-test/CN=${opts.commonName}` : '/O=pullgate-test';
    return this.#issue(name, subject, lines, opts.notBefore, opts.notAfter, opts.keyType ?? 'ec');
  }

  async #issue(
    name: string,
    subject: string,
    extensions: string[],
    notBefore: Date = LONG_AGO,
    notAfter: Date = FAR_AHEAD,
    keyType: 'ec' | 'rsa-pss',
    selfSigned = false,
  ): Promise<IssuedCertificate> {
    const n = ++this.#count;
    const base = join(this.#dir, `${n}-${name}`);
    const keyFile = `${base}.key`;
    const csr = `${base}.csr`;
    const certFile = `${base}.crt`;
    const ext = `${base}.ext`;
    const cnf = `${base}.cnf`;
    const db = `${base}.index`;
    await runChecked('openssl', [
      'req',
      '-new',
      '-newkey',
      keyType === 'ec' ? 'ec' : 'rsa-pss',
      ...(keyType === 'ec' ? ['-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-pkeyopt', 'rsa_keygen_bits:2048']),
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      csr,
      '-subj',
      subject,
    ]);
    await writeFile(ext, `${extensions.join('\n')}\n`);
    await writeFile(db, '');
    await writeFile(`${base}.serial`, '1000\n');
    await writeFile(
      cnf,
      [
        '[ca]',
        'default_ca = this',
        '[this]',
        `database = ${db}`,
        `serial = ${base}.serial`,
        `new_certs_dir = ${this.#dir}`,
        'default_md = sha256',
        'policy = anything',
        'unique_subject = no',
        'email_in_dn = no',
        '[anything]',
        'organizationName = optional',
        'commonName = optional',
        '',
      ].join('\n'),
    );
    await runChecked('openssl', [
      'ca',
      '-batch',
      '-config',
      cnf,
      '-notext',
      '-rand_serial',
      ...(selfSigned
        ? ['-selfsign', '-keyfile', keyFile]
        : ['-cert', this.cert.certFile, '-keyfile', this.cert.keyFile]),
      '-startdate',
      opensslDate(notBefore),
      '-enddate',
      opensslDate(notAfter),
      '-extfile',
      ext,
      '-in',
      csr,
      '-out',
      certFile,
    ]);
    return loaded(name, certFile, keyFile);
  }
}

async function loaded(name: string, certFile: string, keyFile: string): Promise<IssuedCertificate> {
  const pem = await readFile(certFile, 'utf8');
  return { name, certFile, keyFile, pem, privateKey: createPrivateKey(await readFile(keyFile)) };
}
