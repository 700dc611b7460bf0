// Strict base64 decoders. JWS (RFC 7515 §2) uses base64url WITHOUT padding: a `=` anywhere, a
// character outside the alphabet or non-zero trailing bits means the bytes were altered.

export class Base64Error extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Base64Error';
  }
}

const URL_ALPHABET = /^[A-Za-z0-9_-]*$/;
const STD_ALPHABET = /^[A-Za-z0-9+/]*={0,2}$/;

export function decodeBase64Url(text: string, what: string): Buffer {
  if (!URL_ALPHABET.test(text)) {
    const at = text.search(/[^A-Za-z0-9_-]/);
    throw new Base64Error(
      `${what}: illegal base64url character ${JSON.stringify(text[at])} at offset ${at}` +
        (text[at] === '=' ? ' (JWS forbids padding; the envelope was altered)' : ''),
    );
  }
  if (text.length % 4 === 1) throw new Base64Error(`${what}: impossible base64url length ${text.length}`);
  const bytes = Buffer.from(text, 'base64url');
  if (bytes.toString('base64url') !== text) throw new Base64Error(`${what}: non-canonical base64url (stray bits)`);
  return bytes;
}

/** Standard base64 with padding, canonical (x5c and timestamp tokens in JWS headers). */
export function decodeBase64(text: string, what: string): Buffer {
  if (text.length % 4 !== 0 || !STD_ALPHABET.test(text)) throw new Base64Error(`${what}: not canonical base64`);
  const bytes = Buffer.from(text, 'base64');
  if (bytes.toString('base64') !== text) throw new Base64Error(`${what}: non-canonical base64 (stray bits)`);
  return bytes;
}
