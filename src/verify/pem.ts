// PEM documents: blocks read strictly (Go's base64 within a block, nothing but whitespace in the
// body), from evidence annotations and from policy files alike.
import { noteInput } from '../policy/inputs.ts';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { PemSpec } from '../policy/types.ts';

export interface PemBlock {
  type: string;
  /** The block body as unwrapped standard base64. */
  base64: string;
  der: Buffer;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([^-]*)-----END ([A-Z0-9 ]+)-----/g;

/** The blocks of a PEM text, or a sentence saying what is wrong with one. Text between blocks is ignored, as Go's pem.Decode does. */
export function pemBlocks(text: string): PemBlock[] | string {
  const blocks: PemBlock[] = [];
  for (const m of text.matchAll(BLOCK)) {
    if (m[1] !== m[3]) return `PEM block BEGIN ${m[1]} ends with END ${m[3]}`;
    const body = (m[2] ?? '').replace(/[ \t\r\n]+/g, '');
    if (body === '' || !isBase64(body)) return `PEM block ${m[1]} has a body that is not base64`;
    blocks.push({ type: m[1] as string, base64: body, der: Buffer.from(body, 'base64') });
  }
  return blocks;
}

/** Standard base64, padded, nothing else (callers remove what their format lets them skip). */
export function isBase64(value: string): boolean {
  return /^[A-Za-z0-9+/]*={0,2}$/.test(value) && value.length % 4 === 0;
}

/** The DER bytes of every CERTIFICATE block of a text; throws an Error naming `what` otherwise. */
export function pemCertificates(text: string, what: string): Buffer[] {
  const blocks = pemBlocks(text);
  if (typeof blocks === 'string') throw new Error(`${what}: ${blocks}`);
  const other = blocks.find((b) => b.type !== 'CERTIFICATE');
  if (other) throw new Error(`${what}: holds a PEM block of type ${other.type}, not CERTIFICATE`);
  if (blocks.length === 0) throw new Error(`${what}: holds no PEM certificate`);
  return blocks.map((b) => b.der);
}

/** The text of an inline `pem` or a `file` (relative to baseDir), and how to name it in messages. */
export function readPemSpec(spec: PemSpec, baseDir: string): { text: string; label: string } {
  if ((spec.pem === undefined) === (spec.file === undefined)) throw new Error('give exactly one of pem or file');
  if (spec.pem !== undefined) return { text: spec.pem, label: 'pem' };
  const file = path.resolve(baseDir, spec.file as string);
  try {
    noteInput(file);
    return { text: readFileSync(file, 'utf8'), label: `file ${spec.file}` };
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new Error(`file ${spec.file}: cannot read (${reason}, relative to ${baseDir})`);
  }
}
