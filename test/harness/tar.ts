// Just enough of the ustar format to make image layers: regular files with fixed owner and time,
// so that the same content always gives the same layer digest.

export const TAR_BLOCK = 512;
/** Two zero blocks end an archive. */
export const TAR_END = Buffer.alloc(2 * TAR_BLOCK);
// 11 octal digits in the size field
const MAX_SIZE = 8 ** 11 - 1;

function field(header: Buffer, offset: number, length: number, value: string): void {
  header.write(value, offset, length, 'ascii');
}

const octal = (n: number, digits: number) => n.toString(8).padStart(digits, '0');

/** The 512-byte header of a regular file (mode 0644, root-owned, mtime 0). */
export function tarHeader(name: string, size: number): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar: file name longer than 100 bytes: ${name}`);
  if (!Number.isSafeInteger(size) || size < 0 || size > MAX_SIZE)
    throw new Error(`tar: file size ${size} outside 0..${MAX_SIZE}`);
  const h = Buffer.alloc(TAR_BLOCK);
  field(h, 0, 100, name);
  field(h, 100, 8, `${octal(0o644, 7)}\0`);
  field(h, 108, 8, `${octal(0, 7)}\0`);
  field(h, 116, 8, `${octal(0, 7)}\0`);
  field(h, 124, 12, `${octal(size, 11)}\0`);
  field(h, 136, 12, `${octal(0, 11)}\0`);
  field(h, 156, 1, '0');
  field(h, 257, 6, 'ustar\0');
  field(h, 263, 2, '00');
  field(h, 265, 32, 'root');
  field(h, 297, 32, 'root');
  // the checksum is summed with its own field read as eight spaces
  field(h, 148, 8, ' '.repeat(8));
  const sum = h.reduce((acc, byte) => acc + byte, 0);
  field(h, 148, 8, `${octal(sum, 6)}\0 `);
  return h;
}

/** Zero bytes that fill a file's data up to a whole block. */
export function tarPadding(size: number): Buffer {
  return Buffer.alloc((TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK);
}

/** A complete archive of small in-memory files. */
export function tarArchive(files: { name: string; content: Buffer }[]): Buffer {
  return Buffer.concat([
    ...files.flatMap((f) => [tarHeader(f.name, f.content.length), f.content, tarPadding(f.content.length)]),
    TAR_END,
  ]);
}
