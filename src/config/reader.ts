// A strict reader over parsed YAML: every value is checked where it is read, unknown keys are
// refused (a typo must not silently disable a setting), and every message names the key.

export class ConfigError extends Error {
  readonly file: string;
  readonly key: string;
  constructor(file: string, key: string, problem: string) {
    super(`${file}: ${key || '(top level)'}: ${problem}`);
    this.name = 'ConfigError';
    this.file = file;
    this.key = key;
  }
}

export class Node {
  readonly file: string;
  readonly path: string;
  readonly value: unknown;
  constructor(file: string, path: string, value: unknown) {
    this.file = file;
    this.path = path;
    this.value = value;
  }

  fail(problem: string): never {
    throw new ConfigError(this.file, this.path, problem);
  }

  get present(): boolean {
    return this.value !== undefined && this.value !== null;
  }

  #child(key: string | number, value: unknown): Node {
    const path = typeof key === 'number' ? `${this.path}[${key}]` : this.path ? `${this.path}.${key}` : key;
    return new Node(this.file, path, value);
  }

  /** A mapping whose keys must all be among `allowed`. */
  object(allowed: readonly string[]): { get(key: string): Node } {
    const v = this.present ? this.value : {};
    if (typeof v !== 'object' || Array.isArray(v)) this.fail('must be a mapping');
    const record = v as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      if (!allowed.includes(key)) this.#child(key, undefined).fail(`unknown key (allowed here: ${allowed.join(', ')})`);
    }
    return { get: (key) => this.#child(key, record[key]) };
  }

  list(): Node[] {
    if (!this.present) return [];
    if (!Array.isArray(this.value)) this.fail('must be a list');
    return this.value.map((v, i) => this.#child(i, v));
  }

  string(fallback?: string): string {
    if (!this.present) {
      if (fallback === undefined) this.fail('is required');
      return fallback;
    }
    if (typeof this.value !== 'string' || this.value === '') this.fail('must be a non-empty string');
    return this.value;
  }

  optionalString(): string | undefined {
    return this.present ? this.string() : undefined;
  }

  integer(fallback: number, min: number, max: number): number {
    if (!this.present) return fallback;
    if (typeof this.value !== 'number' || !Number.isInteger(this.value))
      this.fail(`must be a whole number, got ${JSON.stringify(this.value)}`);
    if (this.value < min || this.value > max) this.fail(`must be between ${min} and ${max}, got ${this.value}`);
    return this.value;
  }

  /** A size: a whole number of bytes, or a string like `10GiB`, `500MiB`, `2GB`. */
  bytes(fallback: number, min: number, max: number): number {
    if (!this.present) return fallback;
    let n: number;
    if (typeof this.value === 'number') n = this.value;
    else {
      const m = typeof this.value === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$/i.exec(this.value) : null;
      if (!m) this.fail(`must be a size like 10GiB, 500MiB or a number of bytes, got ${JSON.stringify(this.value)}`);
      const unit = (m[2] ?? 'B').toUpperCase();
      const base = unit.includes('I') ? 1024 : 1000;
      const power = 'BKMGT'.indexOf(unit[0] as string);
      n = Math.round(Number(m[1]) * base ** power);
    }
    if (!Number.isSafeInteger(n) || n < min || n > max)
      this.fail(`must be between ${min} and ${max} bytes, got ${JSON.stringify(this.value)}`);
    return n;
  }

  boolean(fallback: boolean): boolean {
    if (!this.present) return fallback;
    if (typeof this.value !== 'boolean') this.fail('must be true or false');
    return this.value;
  }

  oneOf<T extends string>(options: readonly T[], fallback: T): T {
    if (!this.present) return fallback;
    if (typeof this.value !== 'string' || !options.includes(this.value as T))
      this.fail(`must be one of ${options.join(', ')}`);
    return this.value as T;
  }

  /** A secret given inline or through an environment variable named by the sibling `<key>Env`. */
  static secret(parent: { get(key: string): Node }, key: string, env: NodeJS.ProcessEnv): string | undefined {
    const envName = parent.get(`${key}Env`).optionalString();
    if (envName !== undefined) {
      const v = env[envName];
      if (v === undefined || v === '') parent.get(`${key}Env`).fail(`environment variable ${envName} is not set`);
      return v;
    }
    return parent.get(key).optionalString();
  }
}
