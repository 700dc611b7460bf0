// A Notation attestor as the pullgate policy names it, compiled at policy load: its trust stores
// (a Notation trust-store directory and/or named stores of files), its trust policy (a Notation
// trustpolicy.json whose registryScopes pick the statement per image, or one inline statement for
// every image its rules cover) and its CRL files. Its digest covers every byte it trusts.
import { noteInput } from '../../policy/inputs.ts';
import { createHash } from 'node:crypto';
import { lstatSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseStrictJson } from './json.ts';
import { parseCrl, type Crl } from './revocation.ts';
import {
  parseStatement,
  parseTrustPolicyDocument,
  selectStatement,
  type TrustPolicyDocument,
  type TrustPolicyStatement,
} from './trust-policy.ts';
import {
  loadNamedStore,
  loadTrustStoreDir,
  STORE_TYPES,
  storeKey,
  trustStoresFrom,
  type NamedStore,
  type StoreType,
  type TrustStores,
} from './trust-store.ts';

/** The `notation:` block of an attestor in the pullgate policy (docs/policy.md). */
export interface NotationAttestorSpec {
  /** A Notation trust store directory: `x509/{ca,signingAuthority,tsa}/<name>/<cert files>`. */
  trustStoreDir?: string;
  /** Named stores given file by file: `{ca: {acme: [root.pem]}, tsa: {digicert: [tsa-root.cer]}}`. */
  trustStoreFiles?: Partial<Record<StoreType, Record<string, string[]>>>;
  /** A Notation trust policy document (version 1.0); its registryScopes select the statement. */
  trustPolicy?: string;
  /** Or one statement inline, for every image the attestor's rules cover: */
  level?: string;
  override?: Record<string, string>;
  verifyTimestamp?: string;
  trustStores?: string[];
  trustedIdentities?: string[];
  /** CRL files (DER or PEM) consulted for revocation; pullgate fetches none. */
  crls?: string[];
}

export interface CompiledNotation {
  /** The statement for `registry/repository`, or undefined when the trust policy has none for it. */
  statementFor(repositoryUri: string): TrustPolicyStatement | undefined;
  readonly trustStores: TrustStores;
  readonly crls: readonly Crl[];
  /** sha256 over the trust stores, the trust policy and the CRLs actually loaded. */
  readonly digest: string;
}

export class NotationConfigError extends Error {
  /** Path under the attestor, e.g. `['notation', 'trustStores', 1]`. */
  readonly path: (string | number)[];
  constructor(message: string, where: (string | number)[]) {
    super(message);
    this.name = 'NotationConfigError';
    this.path = where;
  }
}

const INLINE = ['level', 'override', 'verifyTimestamp', 'trustStores', 'trustedIdentities'] as const;

export function compileNotation(spec: NotationAttestorSpec, baseDir: string): CompiledNotation {
  const at = (...p: (string | number)[]) => ['notation', ...p];
  const resolve = (f: string) => path.resolve(baseDir, f);
  const hash = createHash('sha256');

  const named: NamedStore[] = [];
  if (spec.trustStoreDir !== undefined) {
    try {
      named.push(...loadTrustStoreDir(resolve(spec.trustStoreDir)).stores.values());
    } catch (err) {
      throw new NotationConfigError((err as Error).message, at('trustStoreDir'));
    }
  }
  for (const [type, stores] of Object.entries(spec.trustStoreFiles ?? {})) {
    if (!(STORE_TYPES as readonly string[]).includes(type))
      throw new NotationConfigError(
        `unknown trust store type ${type}; use ${STORE_TYPES.join(', ')}`,
        at('trustStoreFiles', type),
      );
    for (const [name, files] of Object.entries(stores ?? {})) {
      try {
        named.push(loadNamedStore(type as StoreType, name, files.map(resolve)));
      } catch (err) {
        throw new NotationConfigError((err as Error).message, at('trustStoreFiles', type, name));
      }
    }
  }
  let trustStores: TrustStores;
  try {
    trustStores = trustStoresFrom(named);
  } catch (err) {
    throw new NotationConfigError((err as Error).message, at('trustStoreFiles'));
  }
  hash.update(`stores ${trustStores.digest}\n`);

  const inline = INLINE.filter((k) => spec[k] !== undefined);
  let select: (uri: string) => TrustPolicyStatement | undefined;
  let statements: readonly TrustPolicyStatement[];
  if (spec.trustPolicy !== undefined) {
    if (inline.length > 0)
      throw new NotationConfigError(
        `give either trustPolicy or an inline statement (${inline.join(', ')}), not both`,
        at(inline[0] as string),
      );
    const file = resolve(spec.trustPolicy);
    let doc: TrustPolicyDocument;
    try {
      if (lstatSync(file).size > 1024 * 1024) throw new Error(`${file} is over 1 MiB`);
      noteInput(file);
      const bytes = readFileSync(file);
      hash.update(`policy ${createHash('sha256').update(bytes).digest('hex')}\n`);
      doc = parseTrustPolicyDocument(parseStrictJson(bytes.toString('utf8'), file), path.basename(file));
    } catch (err) {
      throw new NotationConfigError(`trust policy ${file}: ${(err as Error).message}`, at('trustPolicy'));
    }
    statements = doc.statements;
    select = (uri) => selectStatement(doc, uri);
  } else {
    if (spec.level === undefined)
      throw new NotationConfigError(
        'give trustPolicy (a Notation trustpolicy.json) or an inline level, trustStores and trustedIdentities',
        at(),
      );
    let statement: TrustPolicyStatement;
    try {
      statement = parseStatement(
        {
          name: 'inline',
          signatureVerification: {
            level: spec.level,
            ...(spec.override ? { override: spec.override } : {}),
            ...(spec.verifyTimestamp ? { verifyTimestamp: spec.verifyTimestamp } : {}),
          },
          ...(spec.trustStores ? { trustStores: spec.trustStores } : {}),
          ...(spec.trustedIdentities ? { trustedIdentities: spec.trustedIdentities } : {}),
        },
        'notation',
        { requireScopes: false },
      );
    } catch (err) {
      throw new NotationConfigError((err as Error).message.replace(/^notation\.(signatureVerification\.)?/, ''), at());
    }
    hash.update(`inline ${JSON.stringify(spec, INLINE as unknown as string[])}\n`);
    statements = [statement];
    select = () => statement;
  }
  for (const s of statements)
    for (const ref of s.trustStores)
      if (!trustStores.stores.has(storeKey(ref.type, ref.name)))
        throw new NotationConfigError(
          `trust policy statement ${JSON.stringify(s.name)} names trust store ${storeKey(ref.type, ref.name)}, which is not loaded (known: ${[...trustStores.stores.keys()].join(', ') || 'none'})`,
          at(spec.trustPolicy !== undefined ? 'trustPolicy' : 'trustStores'),
        );

  const crls = (spec.crls ?? []).map((f, i) => {
    const file = resolve(f);
    try {
      noteInput(file);
      const crl = parseCrl(readFileSync(file), file);
      hash.update(`crl ${crl.sha256}\n`);
      return crl;
    } catch (err) {
      throw new NotationConfigError((err as Error).message, at('crls', i));
    }
  });
  return { statementFor: select, trustStores, crls, digest: `sha256:${hash.digest('hex')}` };
}
