// Notation trust stores: named collections of root certificates of three types, read from the
// Notation layout `<dir>/x509/{ca,signingAuthority,tsa}/<name>/<file>` or given file by file.
// Read once at policy load; their content digest is part of the attestor's fingerprint so a
// verdict cache misses when a certificate is added, removed or replaced.
import { noteInput } from '../../policy/inputs.ts';
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { basicConstraints, certificatesFromFile, signedBy, type Certificate } from './x509.ts';

export const STORE_TYPES = ['ca', 'signingAuthority', 'tsa'] as const;
export type StoreType = (typeof STORE_TYPES)[number];

const MAX_FILES_PER_STORE = 256;
const MAX_FILE_BYTES = 1024 * 1024;

export interface NamedStore {
  readonly type: StoreType;
  readonly name: string;
  readonly certificates: readonly Certificate[];
  /** `file → sha256 of each certificate`, for the digest and for messages. */
  readonly files: readonly { file: string; sha256: string[] }[];
}

export interface TrustStores {
  readonly stores: ReadonlyMap<string, NamedStore>;
  /** sha256 over every store's type, name and certificate digests, in a fixed order. */
  readonly digest: string;
}

export class TrustStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrustStoreError';
  }
}

export function storeKey(type: StoreType, name: string): string {
  return `${type}:${name}`;
}

/** Reads every named store under `<root>/x509/<type>/`. Symlinks are refused (spec); sub-directories are ignored. */
export function loadTrustStoreDir(root: string): TrustStores {
  const stores = new Map<string, NamedStore>();
  const x509 = path.join(root, 'x509');
  if (!isDir(x509))
    throw new TrustStoreError(
      `${x509}: no such directory (expected the Notation trust store layout x509/{ca,signingAuthority,tsa}/<name>/)`,
    );
  for (const type of STORE_TYPES) {
    const typeDir = path.join(x509, type);
    if (!isDir(typeDir)) continue;
    noteInput(typeDir);
    for (const name of readdirSync(typeDir).sort()) {
      const dir = path.join(typeDir, name);
      refuseSymlink(dir);
      if (!isDir(dir)) continue;
      noteInput(dir);
      const files = readdirSync(dir)
        .sort()
        .map((f) => path.join(dir, f))
        .filter((f) => {
          refuseSymlink(f);
          return lstatSync(f).isFile();
        });
      if (files.length > MAX_FILES_PER_STORE)
        throw new TrustStoreError(`${dir}: more than ${MAX_FILES_PER_STORE} files`);
      stores.set(storeKey(type, name), loadNamedStore(type, name, files));
    }
  }
  return withDigest(stores);
}

/** A named store from explicit files (PEM with one or more certificates, or one DER certificate each). */
export function loadNamedStore(type: StoreType, name: string, files: readonly string[]): NamedStore {
  const certificates: Certificate[] = [];
  const listed: { file: string; sha256: string[] }[] = [];
  for (const file of files) {
    // Stores given file by file (trustStoreFiles) are watched file by file.
    noteInput(file);
    refuseSymlink(file);
    let bytes: Buffer;
    try {
      const size = lstatSync(file).size;
      if (size > MAX_FILE_BYTES) throw new TrustStoreError(`${file}: ${size} bytes, over ${MAX_FILE_BYTES}`);
      bytes = readFileSync(file);
    } catch (err) {
      if (err instanceof TrustStoreError) throw err;
      throw new TrustStoreError(
        `${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      );
    }
    let certs: Certificate[];
    try {
      certs = certificatesFromFile(bytes, file);
    } catch (err) {
      throw new TrustStoreError(`trust store ${type}:${name}: ${(err as Error).message}`);
    }
    for (const cert of certs) {
      // A trust anchor is a CA or a self-signed signing certificate (as notation-go requires).
      if (!basicConstraints(cert)?.ca && !signedBy(cert, cert))
        throw new TrustStoreError(
          `trust store ${type}:${name}: ${file}: "${cert.subject}" is neither a CA certificate nor self-signed`,
        );
    }
    certificates.push(...certs);
    listed.push({ file, sha256: certs.map((c) => c.sha256) });
  }
  return { type, name, certificates, files: listed };
}

export function trustStoresFrom(stores: readonly NamedStore[]): TrustStores {
  const map = new Map<string, NamedStore>();
  for (const s of stores) {
    const key = storeKey(s.type, s.name);
    if (map.has(key)) throw new TrustStoreError(`trust store ${key} is given twice`);
    map.set(key, s);
  }
  return withDigest(map);
}

function withDigest(stores: Map<string, NamedStore>): TrustStores {
  const h = createHash('sha256');
  for (const key of [...stores.keys()].sort()) {
    const s = stores.get(key) as NamedStore;
    h.update(`${key}\n`);
    for (const c of s.certificates) h.update(`${c.sha256}\n`);
  }
  return { stores, digest: `sha256:${h.digest('hex')}` };
}

function isDir(p: string): boolean {
  try {
    return lstatSync(p).isDirectory();
  } catch {
    return false;
  }
}

function refuseSymlink(p: string): void {
  let st;
  try {
    st = lstatSync(p);
  } catch (err) {
    throw new TrustStoreError(`${p}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (st.isSymbolicLink())
    throw new TrustStoreError(`${p} is a symbolic link; Notation trust stores must not use them`);
}
