// Notation signatures made by the tests themselves, for what the real fixtures lack: a PKI
// (root, intermediate, RSA and EC signing leaves, a revoked leaf and its CRL) and a TSA, all
// from the openssl CLI; JWS and COSE envelopes signed with node:crypto; RFC 3161 tokens from
// `openssl ts -reply` over the raw signature bytes.
import { constants, sign, type KeyObject, createPrivateKey } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runChecked } from './process.ts';

export interface Issued {
  certFile: string;
  keyFile: string;
  der: Buffer;
  key: KeyObject;
}

export interface NotationPki {
  dir: string;
  root: Issued;
  intermediate: Issued;
  /** RSA-2048 code-signing leaf (PS256), issued by the intermediate. */
  leaf: Issued;
  /** EC P-256 code-signing leaf (ES256), issued by the intermediate. */
  ecLeaf: Issued;
  /** RSA-2048 leaf that the CRL lists as revoked. */
  revokedLeaf: Issued;
  /** CRL of the intermediate listing revokedLeaf (DER). */
  crlFile: string;
  /** CRL of the intermediate that expired a day ago (DER, lists nothing). */
  staleCrlFile: string;
  tsaRoot: Issued;
  tsa: Issued;
  /** The TSA's openssl config (ts section). */
  tsaConfig: string;
}

const CRL_URL = 'http://crl.pullgate.invalid/intermediate.crl';

async function der(certFile: string): Promise<Buffer> {
  return Buffer.from(
    await runChecked('openssl', ['x509', '-in', certFile, '-outform', 'DER', '-out', `${certFile}.der`]).then(() =>
      readFile(`${certFile}.der`),
    ),
  );
}

async function issue(
  dir: string,
  name: string,
  subject: string,
  ext: string,
  issuer: { certFile: string; keyFile: string } | undefined,
  keyAlg: 'rsa2048' | 'rsa3072' | 'p256',
  days = 3650,
): Promise<Issued> {
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.crt`);
  const extFile = join(dir, `${name}.ext`);
  await writeFile(extFile, `[req]\ndistinguished_name=dn\n[dn]\n[v3]\n${ext}\n`);
  const newkey =
    keyAlg === 'p256'
      ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']
      : ['-newkey', `rsa:${keyAlg === 'rsa2048' ? 2048 : 3072}`];
  if (!issuer) {
    await runChecked('openssl', [
      'req',
      '-x509',
      ...newkey,
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      String(days),
      '-subj',
      subject,
      '-config',
      extFile,
      '-extensions',
      'v3',
      '-sha256',
    ]);
  } else {
    const csr = join(dir, `${name}.csr`);
    await runChecked('openssl', ['req', ...newkey, '-nodes', '-keyout', keyFile, '-out', csr, '-subj', subject]);
    await runChecked('openssl', [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      issuer.certFile,
      '-CAkey',
      issuer.keyFile,
      '-CAcreateserial',
      '-out',
      certFile,
      '-days',
      String(days),
      '-sha256',
      '-extfile',
      extFile,
      '-extensions',
      'v3',
    ]);
  }
  return { certFile, keyFile, der: await der(certFile), key: createPrivateKey(await readFile(keyFile)) };
}

export async function makeNotationPki(dir: string): Promise<NotationPki> {
  const caExt = 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign';
  const leafExt = `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\ncrlDistributionPoints=URI:${CRL_URL}`;
  const root = await issue(
    dir,
    'root',
    '/C=US/ST=WA/O=Pullgate Test/CN=Pullgate Test Root',
    caExt,
    undefined,
    'rsa2048',
  );
  const intermediate = await issue(
    dir,
    'intermediate',
    '/C=US/ST=WA/O=Pullgate Test/CN=Pullgate Test Intermediate',
    caExt,
    root,
    'rsa2048',
  );
  const leaf = await issue(
    dir,
    'leaf',
    '/C=US/ST=WA/L=Seattle/O=Pullgate Test/OU=Release/CN=release-signer',
    leafExt,
    intermediate,
    'rsa2048',
  );
  const ecLeaf = await issue(dir, 'ec-leaf', '/C=US/ST=WA/O=Pullgate Test/CN=ec-signer', leafExt, intermediate, 'p256');
  const revokedLeaf = await issue(
    dir,
    'revoked-leaf',
    '/C=US/ST=WA/O=Pullgate Test/CN=revoked-signer',
    leafExt,
    intermediate,
    'rsa2048',
  );

  // CRLs through `openssl ca`, whose database is the only way the CLI revokes.
  const caDir = join(dir, 'ca-db');
  await runChecked('mkdir', ['-p', caDir]);
  await writeFile(join(caDir, 'index.txt'), '');
  await writeFile(join(caDir, 'crlnumber'), '01\n');
  const caConf = join(caDir, 'ca.cnf');
  await writeFile(
    caConf,
    `[ca]\ndefault_ca=d\n[d]\ndatabase=${caDir}/index.txt\ncrlnumber=${caDir}/crlnumber\ndefault_md=sha256\ndefault_crl_days=30\n`,
  );
  const ca = ['-config', caConf, '-keyfile', intermediate.keyFile, '-cert', intermediate.certFile];
  const stalePem = join(dir, 'stale.crl.pem');
  await runChecked('openssl', ['ca', ...ca, '-gencrl', '-crlsec', '1', '-out', stalePem]);
  await runChecked('openssl', ['ca', ...ca, '-revoke', revokedLeaf.certFile, '-crl_reason', 'keyCompromise']);
  const crlPem = join(dir, 'intermediate.crl.pem');
  await runChecked('openssl', ['ca', ...ca, '-gencrl', '-out', crlPem]);
  const crlFile = join(dir, 'intermediate.crl');
  const staleCrlFile = join(dir, 'stale.crl');
  await runChecked('openssl', ['crl', '-in', crlPem, '-outform', 'DER', '-out', crlFile]);
  await runChecked('openssl', ['crl', '-in', stalePem, '-outform', 'DER', '-out', staleCrlFile]);

  const tsaRoot = await issue(
    dir,
    'tsa-root',
    '/C=US/O=Pullgate Test/CN=Pullgate Test TSA Root',
    caExt,
    undefined,
    'rsa2048',
  );
  const tsa = await issue(
    dir,
    'tsa',
    '/C=US/O=Pullgate Test/CN=Pullgate Test TSA',
    'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping',
    tsaRoot,
    'rsa2048',
  );
  const tsaConfig = join(dir, 'tsa.cnf');
  await writeFile(
    tsaConfig,
    [
      '[tsa]',
      'default_tsa=t',
      '[t]',
      `serial=${dir}/SERIAL_FILE`,
      `signer_cert=${tsa.certFile}`,
      `certs=${tsaRoot.certFile}`,
      `signer_key=${tsa.keyFile}`,
      'signer_digest=sha256',
      'default_policy=1.2.3.4.1',
      'digests=sha256,sha384,sha512',
      'accuracy=secs:1',
      'ordering=no',
      'tsa_name=no',
      'ess_cert_id_chain=no',
      'ess_cert_id_alg=sha256',
      '',
    ].join('\n'),
  );
  return { dir, root, intermediate, leaf, ecLeaf, revokedLeaf, crlFile, staleCrlFile, tsaRoot, tsa, tsaConfig };
}

/**
 * An RFC 3161 TimeStampToken over `signature` from the PKI's TSA (Notation's countersignature);
 * `response`: the whole TimeStampResp instead, as Sigstore bundles and cosign's annotation hold it.
 */
export async function timestampToken(
  pki: NotationPki,
  signature: Buffer,
  name: string,
  opts: { response?: boolean } = {},
): Promise<Buffer> {
  const data = join(pki.dir, `${name}.sig`);
  const query = join(pki.dir, `${name}.tsq`);
  const token = join(pki.dir, `${name}.tst`);
  await writeFile(data, signature);
  await runChecked('openssl', ['ts', '-query', '-data', data, '-sha256', '-cert', '-no_nonce', '-out', query]);
  // One serial file and config per token: concurrent tests must not share openssl's counter.
  const serial = join(pki.dir, `${name}.serial`);
  const config = join(pki.dir, `${name}.tsa.cnf`);
  await writeFile(serial, '01\n');
  await writeFile(config, (await readFile(pki.tsaConfig, 'utf8')).replace(`${pki.dir}/SERIAL_FILE`, serial));
  await runChecked('openssl', [
    'ts',
    '-reply',
    '-config',
    config,
    '-queryfile',
    query,
    ...(opts.response ? [] : ['-token_out']),
    '-out',
    token,
  ]);
  return readFile(token);
}

export interface SignOptions {
  /** The descriptor the payload names (targetArtifact). */
  target: { mediaType: string; digest: string; size: number };
  key: KeyObject;
  /** DER certificates, signing certificate first. */
  chain: Buffer[];
  alg?: 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512';
  signingScheme?: 'notary.x509' | 'notary.x509.signingAuthority';
  signingTime?: Date;
  expiry?: Date;
  /** Extra protected headers and extra crit names (for the "unknown critical header" cases). */
  extraProtected?: Record<string, string>;
  extraCrit?: string[];
  /** Adds a timestamp countersignature made over the signature bytes. */
  timestamp?: (signature: Buffer) => Promise<Buffer>;
}

const HASH = {
  PS256: 'sha256',
  PS384: 'sha384',
  PS512: 'sha512',
  ES256: 'sha256',
  ES384: 'sha384',
  ES512: 'sha512',
} as const;
const COSE_ALG = { PS256: -37, PS384: -38, PS512: -39, ES256: -7, ES384: -35, ES512: -36 } as const;

function rawSign(alg: keyof typeof HASH, data: Buffer, key: KeyObject): Buffer {
  return alg.startsWith('PS')
    ? sign(HASH[alg], data, {
        key,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
      })
    : sign(HASH[alg], data, { key, dsaEncoding: 'ieee-p1363' });
}

function payloadOf(target: SignOptions['target']): Buffer {
  return Buffer.from(JSON.stringify({ targetArtifact: target }));
}

export async function signJws(opts: SignOptions): Promise<Buffer> {
  const alg = opts.alg ?? 'PS256';
  const scheme = opts.signingScheme ?? 'notary.x509';
  const time = (opts.signingTime ?? new Date()).toISOString().replace(/\.\d+Z$/, 'Z');
  const header: Record<string, unknown> = {
    alg,
    crit: [
      'io.cncf.notary.signingScheme',
      ...(scheme === 'notary.x509' ? [] : ['io.cncf.notary.authenticSigningTime']),
      ...(opts.expiry ? ['io.cncf.notary.expiry'] : []),
      ...(opts.extraCrit ?? []),
    ],
    cty: 'application/vnd.cncf.notary.payload.v1+json',
    'io.cncf.notary.signingScheme': scheme,
    [scheme === 'notary.x509' ? 'io.cncf.notary.signingTime' : 'io.cncf.notary.authenticSigningTime']: time,
    ...(opts.expiry ? { 'io.cncf.notary.expiry': opts.expiry.toISOString().replace(/\.\d+Z$/, 'Z') } : {}),
    ...opts.extraProtected,
  };
  const protectedB64 = Buffer.from(JSON.stringify(header)).toString('base64url');
  const payloadB64 = payloadOf(opts.target).toString('base64url');
  const signature = rawSign(alg, Buffer.from(`${protectedB64}.${payloadB64}`), opts.key);
  const unprotected: Record<string, unknown> = {
    x5c: opts.chain.map((c) => c.toString('base64')),
    'io.cncf.notary.signingAgent': 'pullgate-tests/1',
  };
  if (opts.timestamp)
    unprotected['io.cncf.notary.timestampSignature'] = (await opts.timestamp(signature)).toString('base64');
  return Buffer.from(
    JSON.stringify({
      payload: payloadB64,
      protected: protectedB64,
      header: unprotected,
      signature: signature.toString('base64url'),
    }),
  );
}

export async function signCose(opts: SignOptions): Promise<Buffer> {
  const alg = opts.alg ?? 'PS256';
  const scheme = opts.signingScheme ?? 'notary.x509';
  const epoch = Math.floor((opts.signingTime ?? new Date()).getTime() / 1000);
  const protectedMap = new Map<number | string, unknown>([
    [1, COSE_ALG[alg]],
    [
      2,
      [
        'io.cncf.notary.signingScheme',
        ...(scheme === 'notary.x509' ? [] : ['io.cncf.notary.authenticSigningTime']),
        ...(opts.expiry ? ['io.cncf.notary.expiry'] : []),
        ...(opts.extraCrit ?? []),
      ],
    ],
    [3, 'application/vnd.cncf.notary.payload.v1+json'],
    ['io.cncf.notary.signingScheme', scheme],
    [
      scheme === 'notary.x509' ? 'io.cncf.notary.signingTime' : 'io.cncf.notary.authenticSigningTime',
      { tag: 1, value: epoch },
    ],
  ]);
  if (opts.expiry)
    protectedMap.set('io.cncf.notary.expiry', { tag: 1, value: Math.floor(opts.expiry.getTime() / 1000) });
  for (const [k, v] of Object.entries(opts.extraProtected ?? {})) protectedMap.set(k, v);
  const protectedBytes = cbor(protectedMap);
  const payload = payloadOf(opts.target);
  const toSign = cbor(['Signature1', protectedBytes, Buffer.alloc(0), payload]);
  const signature = rawSign(alg, toSign, opts.key);
  const unprotected = new Map<number | string, unknown>([
    [33, opts.chain],
    ['io.cncf.notary.signingAgent', 'pullgate-tests/1'],
  ]);
  if (opts.timestamp) unprotected.set('io.cncf.notary.timestampSignature', await opts.timestamp(signature));
  return Buffer.concat([Buffer.from([0xd2]), cbor([protectedBytes, unprotected, payload, signature])]);
}

/** A minimal CBOR encoder for the test envelopes (ints, strings, bytes, arrays, maps, tags). */
export function cbor(v: unknown): Buffer {
  const head = (major: number, n: number): Buffer => {
    const m = major << 5;
    if (n < 24) return Buffer.from([m | n]);
    if (n < 0x100) return Buffer.from([m | 24, n]);
    if (n < 0x10000) return Buffer.from([m | 25, n >> 8, n & 0xff]);
    const b = Buffer.alloc(5);
    b[0] = m | 26;
    b.writeUInt32BE(n, 1);
    return b;
  };
  if (typeof v === 'number') return v >= 0 ? head(0, v) : head(1, -1 - v);
  if (typeof v === 'string') {
    const b = Buffer.from(v, 'utf8');
    return Buffer.concat([head(3, b.length), b]);
  }
  if (Buffer.isBuffer(v)) return Buffer.concat([head(2, v.length), v]);
  if (Array.isArray(v)) return Buffer.concat([head(4, v.length), ...v.map(cbor)]);
  if (v instanceof Map) return Buffer.concat([head(5, v.size), ...[...v].flatMap(([k, x]) => [cbor(k), cbor(x)])]);
  if (typeof v === 'object' && v !== null && 'tag' in v) {
    const t = v as { tag: number; value: unknown };
    return Buffer.concat([head(6, t.tag), cbor(t.value)]);
  }
  throw new Error(`cbor: cannot encode ${typeof v}`);
}
