// A test-made Sigstore instance: a Fulcio-like CA issuing short-lived code-signing certificates
// with OIDC issuer extensions and an embedded SCT, a Rekor-like log signing inclusion promises
// (SETs), a CT log, and the trusted_root.json that describes them. Nothing here talks to a network.
import { createHash, KeyObject, sign, webcrypto, type KeyObject as KeyObjectType } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const OID_FULCIO_ISSUER_V1 = '1.3.6.1.4.1.57264.1.1';
const OID_FULCIO_ISSUER_V2 = '1.3.6.1.4.1.57264.1.8';
const OID_SCT_LIST = '1.3.6.1.4.1.11129.2.4.2';
const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface KeyPair {
  privateKey: KeyObjectType;
  publicKey: KeyObjectType;
  crypto: webcrypto.CryptoKeyPair;
}

export async function generateEcKey(): Promise<KeyPair> {
  const pair = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  return { privateKey: KeyObject.from(pair.privateKey), publicKey: KeyObject.from(pair.publicKey), crypto: pair };
}

function spki(key: KeyObjectType): Buffer {
  return key.export({ type: 'spki', format: 'der' });
}

/** A log's id: sha256 over its key's DER SubjectPublicKeyInfo (Rekor and RFC 6962 alike). */
export function logId(key: KeyObjectType): Buffer {
  return createHash('sha256').update(spki(key)).digest();
}

/** Sigstore's canonical JSON (RFC 8785 for the values used here): sorted keys, no whitespace. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export interface LeafOptions {
  /** SAN: an e-mail address or a URI (workload identities such as GitHub Actions use URIs). */
  email?: string;
  uri?: string;
  issuer: string;
  /** Which Fulcio issuer extensions to write: v1 (raw string), v2 (UTF8String) or both. */
  issuerExtensions?: 'v1' | 'v2' | 'both';
  notBefore: Date;
  notAfter: Date;
  /** Embed an SCT from the instance's CT log (default true). */
  sct?: boolean;
}

export interface Leaf {
  keys: KeyPair;
  certificate: x509.X509Certificate;
  pem: string;
}

export interface RekorEntry {
  logIndex: number;
  integratedTime: number;
  logID: string;
  body: string;
  signedEntryTimestamp: string;
}

export class SigstoreInstance {
  readonly caKeys: KeyPair;
  readonly root: x509.X509Certificate;
  readonly rekorKey: KeyPair;
  readonly ctKey: KeyPair;
  #logIndex = 0;

  private constructor(caKeys: KeyPair, root: x509.X509Certificate, rekorKey: KeyPair, ctKey: KeyPair) {
    this.caKeys = caKeys;
    this.root = root;
    this.rekorKey = rekorKey;
    this.ctKey = ctKey;
  }

  static async create(): Promise<SigstoreInstance> {
    const caKeys = await generateEcKey();
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'O=pullgate-test, CN=test-fulcio-root',
      notBefore: new Date('2020-01-01T00:00:00Z'),
      notAfter: new Date('2040-01-01T00:00:00Z'),
      signingAlgorithm: ECDSA_SHA256,
      keys: caKeys.crypto,
      extensions: [
        new x509.BasicConstraintsExtension(true, 1, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(caKeys.crypto.publicKey),
      ],
    });
    return new SigstoreInstance(caKeys, root, await generateEcKey(), await generateEcKey());
  }

  get rootPem(): string {
    return this.root.toString('pem');
  }

  /** The instance as a Sigstore TrustedRoot (JSON form); `omit` leaves parts out to test their absence. */
  trustedRoot(omit: { tlogs?: boolean; ctlogs?: boolean } = {}): object {
    const logKey = (k: KeyPair, url: string) => ({
      baseUrl: url,
      hashAlgorithm: 'SHA2_256',
      publicKey: {
        rawBytes: spki(k.publicKey).toString('base64'),
        keyDetails: 'PKIX_ECDSA_P256_SHA_256',
        validFor: { start: '2020-01-01T00:00:00Z' },
      },
      logId: { keyId: logId(k.publicKey).toString('base64') },
    });
    return {
      mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
      tlogs: omit.tlogs ? [] : [logKey(this.rekorKey, 'https://rekor.test.invalid')],
      certificateAuthorities: [
        {
          subject: { organization: 'pullgate-test', commonName: 'test-fulcio-root' },
          uri: 'https://fulcio.test.invalid',
          certChain: { certificates: [{ rawBytes: Buffer.from(this.root.rawData).toString('base64') }] },
          validFor: { start: '2020-01-01T00:00:00Z' },
        },
      ],
      ctlogs: omit.ctlogs ? [] : [logKey(this.ctKey, 'https://ctfe.test.invalid')],
      timestampAuthorities: [],
    };
  }

  async writeTrustedRoot(
    dir: string,
    name = 'trusted_root.json',
    omit: { tlogs?: boolean; ctlogs?: boolean } = {},
  ): Promise<string> {
    const file = path.join(dir, name);
    await writeFile(file, JSON.stringify(this.trustedRoot(omit), null, 2));
    return file;
  }

  /** Issues a Fulcio-style leaf certificate for a fresh key. */
  async issue(opts: LeafOptions): Promise<Leaf> {
    const keys = await generateEcKey();
    const serialNumber = createHash('sha256')
      .update(`${Date.now()}-${Math.random()}`)
      .digest('hex')
      .slice(0, 30)
      .replace(/^[89a-f]/, '1');
    const names: x509.JsonGeneralName[] = [];
    if (opts.email) names.push({ type: 'email', value: opts.email });
    if (opts.uri) names.push({ type: 'url', value: opts.uri });
    const which = opts.issuerExtensions ?? 'both';
    const extensions: x509.Extension[] = [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.codeSigning]),
      await x509.SubjectKeyIdentifierExtension.create(keys.crypto.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(this.caKeys.crypto.publicKey),
      new x509.SubjectAlternativeNameExtension(names, true),
      ...(which !== 'v2' ? [new x509.Extension(OID_FULCIO_ISSUER_V1, false, Buffer.from(opts.issuer, 'utf8'))] : []),
      ...(which !== 'v1' ? [new x509.Extension(OID_FULCIO_ISSUER_V2, false, derUtf8String(opts.issuer))] : []),
    ];
    const params = {
      serialNumber,
      subject: '',
      issuer: this.root.subject,
      notBefore: opts.notBefore,
      notAfter: opts.notAfter,
      signingAlgorithm: ECDSA_SHA256,
      publicKey: keys.crypto.publicKey,
      signingKey: this.caKeys.crypto.privateKey,
    };
    let certificate = await x509.X509CertificateGenerator.create({ ...params, extensions });
    if (opts.sct ?? true) {
      // The precertificate TBS is the final TBS without the SCT extension: issuing the same
      // fields without it first yields exactly those bytes.
      const sctList = this.#sctList(tbsOf(Buffer.from(certificate.rawData)), opts.notBefore);
      certificate = await x509.X509CertificateGenerator.create({
        ...params,
        extensions: [...extensions, new x509.Extension(OID_SCT_LIST, false, derOctetString(sctList))],
      });
    }
    return { keys, certificate, pem: certificate.toString('pem') };
  }

  /** RFC 6962 SignedCertificateTimestampList with one precert SCT from the CT log. */
  #sctList(precertTbs: Buffer, at: Date): Buffer {
    const timestamp = Buffer.alloc(8);
    timestamp.writeBigUInt64BE(BigInt(at.getTime()));
    const issuerKeyHash = createHash('sha256').update(spki(this.caKeys.publicKey)).digest();
    const signed = Buffer.concat([
      Buffer.from([0, 0]), // v1, certificate_timestamp
      timestamp,
      uint(1, 2), // precert_entry
      issuerKeyHash,
      uint(precertTbs.length, 3),
      precertTbs,
      uint(0, 2), // no extensions
    ]);
    const signature = sign('sha256', signed, this.ctKey.privateKey);
    const sct = Buffer.concat([
      Buffer.from([0]),
      logId(this.ctKey.publicKey),
      timestamp,
      uint(0, 2),
      Buffer.from([4, 3]), // sha256, ecdsa
      uint(signature.length, 2),
      signature,
    ]);
    return Buffer.concat([uint(sct.length + 2, 2), uint(sct.length, 2), sct]);
  }

  /** Enters a Rekor-style body into the log and returns the entry with its SET. */
  logEntry(body: object, integratedTime: Date): RekorEntry {
    const entry = {
      body: Buffer.from(canonicalJson(body)).toString('base64'),
      integratedTime: Math.floor(integratedTime.getTime() / 1000),
      logIndex: this.#logIndex++,
      logID: logId(this.rekorKey.publicKey).toString('hex'),
    };
    const set = sign('sha256', Buffer.from(canonicalJson(entry)), this.rekorKey.privateKey).toString('base64');
    return { ...entry, signedEntryTimestamp: set };
  }
}

function uint(value: number, bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  b.writeUIntBE(value, 0, bytes);
  return b;
}

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes = Buffer.from(n.toString(16).padStart(n > 0xff ? 4 : 2, '0'), 'hex');
  return Buffer.concat([Buffer.from([0x80 | bytes.length]), bytes]);
}

function derOctetString(content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x04]), derLength(content.length), content]);
}

function derUtf8String(text: string): Buffer {
  const content = Buffer.from(text, 'utf8');
  return Buffer.concat([Buffer.from([0x0c]), derLength(content.length), content]);
}

/** The first element (tbsCertificate) of a DER certificate SEQUENCE, header included. */
function tbsOf(certificate: Buffer): Buffer {
  const inner = headerLength(certificate, 0);
  const start = inner.header;
  const tbs = headerLength(certificate, start);
  return certificate.subarray(start, start + tbs.header + tbs.length);
}

function headerLength(der: Buffer, at: number): { header: number; length: number } {
  const first = der[at + 1] as number;
  if (first < 0x80) return { header: 2, length: first };
  const count = first & 0x7f;
  return { header: 2 + count, length: der.readUIntBE(at + 2, count) };
}
