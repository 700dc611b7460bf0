// The CLI's side of the admin API: one authenticated JSON call per command.
import { request } from 'undici';

export class AdminClient {
  readonly #base: string;
  readonly #token: string;

  constructor(base: string, token: string | undefined) {
    if (!token)
      throw new Error(
        'no admin token: pass --token or set PULLGATE_ADMIN_TOKEN (the token the proxy was started with)',
      );
    this.#base = base.replace(/\/$/, '');
    this.#token = token;
  }

  async call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
    let res;
    try {
      res = await request(`${this.#base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.#token}`,
          'content-type': 'application/json',
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      });
    } catch (err) {
      throw new Error(
        `cannot reach the admin API at ${this.#base} (${(err as { code?: string }).code ?? (err as Error).message}): is the proxy running with an admin token? Use --admin-url to point elsewhere`,
      );
    }
    const text = await res.body.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new Error(`admin API answered ${res.statusCode} with a body that is not JSON`);
    }
    if (res.statusCode >= 400) {
      const message = (parsed as { errors?: { message?: string }[] }).errors?.[0]?.message ?? text;
      throw new Error(res.statusCode === 401 ? `the admin API refused the token: ${message}` : message);
    }
    return parsed as T;
  }
}
