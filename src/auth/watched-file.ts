// A small file the proxy re-reads when it changes (Kubernetes updates mounted Secrets and
// ConfigMaps in place): htpasswd, the cluster JWKS. Looked at no more than every few seconds;
// a change that does not parse keeps the previous content and is logged.
import { readFileSync, statSync } from 'node:fs';
import type { Logger } from '../ops/log.ts';

export class WatchedFile<T> {
  readonly path: string;
  readonly #parse: (text: string) => T | string;
  readonly #maxBytes: number;
  readonly #checkMs: number;
  readonly #logger: Logger;
  readonly #what: string;
  #value: T;
  #stamp: string;
  #checkedAt = 0;

  /** Reads the file now: a missing or invalid file at start is an error naming the key. */
  constructor(opts: {
    path: string;
    what: string;
    parse: (text: string) => T | string;
    maxBytes: number;
    logger: Logger;
    checkMs?: number;
  }) {
    this.path = opts.path;
    this.#parse = opts.parse;
    this.#maxBytes = opts.maxBytes;
    this.#checkMs = opts.checkMs ?? 5_000;
    this.#logger = opts.logger;
    this.#what = opts.what;
    const first = this.#read();
    if (typeof first.value === 'string') throw new Error(`${this.#what} ${this.path}: ${first.value}`);
    this.#value = first.value;
    this.#stamp = first.stamp;
    this.#checkedAt = Date.now();
  }

  #read(): { value: T | string; stamp: string } {
    let stamp = '';
    try {
      const st = statSync(this.path);
      stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
      if (st.size > this.#maxBytes) return { value: `larger than ${this.#maxBytes} bytes`, stamp };
      return { value: this.#parse(readFileSync(this.path, 'utf8')), stamp };
    } catch (err) {
      return { value: `cannot read it: ${(err as Error).message}`, stamp };
    }
  }

  current(): T {
    const now = Date.now();
    if (now - this.#checkedAt < this.#checkMs) return this.#value;
    this.#checkedAt = now;
    let stamp: string;
    try {
      const st = statSync(this.path);
      stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch {
      stamp = 'missing';
    }
    if (stamp === this.#stamp) return this.#value;
    const next = this.#read();
    this.#stamp = next.stamp || stamp;
    if (typeof next.value === 'string') {
      this.#logger.error(
        { file: this.path, error: next.value },
        `${this.#what} changed but is not valid; keeping the previous one`,
      );
    } else {
      this.#value = next.value;
      this.#logger.info({ file: this.path }, `${this.#what} reloaded`);
    }
    return this.#value;
  }
}
