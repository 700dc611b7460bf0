// Test certificates from the openssl CLI: a CA, and server certificates it issues for loopback.
import { join } from 'node:path';
import { runChecked } from './process.ts';

export interface TestCa {
  certFile: string;
  keyFile: string;
  /** Issues a certificate for 127.0.0.1 / localhost; `name` keeps several apart in `dir`. */
  issue(name: string): Promise<{ certFile: string; keyFile: string }>;
}

export async function makeCa(dir: string, commonName = 'pullgate test CA'): Promise<TestCa> {
  const certFile = join(dir, 'ca.crt');
  const keyFile = join(dir, 'ca.key');
  await runChecked('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    '1',
    '-subj',
    `/CN=${commonName}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign',
  ]);
  return {
    certFile,
    keyFile,
    async issue(name: string) {
      const key = join(dir, `${name}.key`);
      const csr = join(dir, `${name}.csr`);
      const cert = join(dir, `${name}.crt`);
      const ext = join(dir, `${name}.ext`);
      await runChecked('openssl', [
        'req',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        key,
        '-out',
        csr,
        '-subj',
        `/CN=${name}`,
      ]);
      await runChecked('sh', [
        '-c',
        `printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth\\n' > '${ext}'`,
      ]);
      await runChecked('openssl', [
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        certFile,
        '-CAkey',
        keyFile,
        '-CAcreateserial',
        '-days',
        '1',
        '-out',
        cert,
        '-extfile',
        ext,
      ]);
      return { certFile: cert, keyFile: key };
    },
  };
}
