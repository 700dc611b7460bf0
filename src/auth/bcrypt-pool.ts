// bcrypt comparisons in one worker thread with a bounded queue: a flood of logins costs one core
// at most and is refused (503) once the queue is full, while the event loop keeps serving.
import { Worker } from 'node:worker_threads';
import { RegistryError } from '../oci/errors.ts';

export interface PasswordChecker {
  compare(password: string, hash: string): Promise<boolean>;
  close(): Promise<void>;
}

export class BcryptPool implements PasswordChecker {
  readonly #maxQueue: number;
  readonly #pending = new Map<number, (ok: boolean) => void>();
  #worker: Worker | undefined;
  #next = 0;

  constructor(opts: { maxQueue?: number } = {}) {
    this.#maxQueue = opts.maxQueue ?? 64;
  }

  #start(): Worker {
    const worker = new Worker(new URL('./bcrypt-worker.ts', import.meta.url));
    worker.unref();
    worker.on('message', (m: { id: number; ok: boolean }) => {
      const done = this.#pending.get(m.id);
      this.#pending.delete(m.id);
      done?.(m.ok);
    });
    // A crashed worker fails its checks closed; the next check starts a new one.
    const fail = () => {
      if (this.#worker === worker) this.#worker = undefined;
      for (const done of this.#pending.values()) done(false);
      this.#pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', fail);
    return worker;
  }

  compare(password: string, hash: string): Promise<boolean> {
    if (this.#pending.size >= this.#maxQueue) {
      return Promise.reject(
        new RegistryError('unavailable', 'UNAVAILABLE', 'too many password checks are waiting; try again shortly', {
          retryAfter: '1',
        }),
      );
    }
    this.#worker ??= this.#start();
    const id = this.#next++;
    const worker = this.#worker;
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      worker.ref();
      worker.postMessage({ id, password, hash });
    }).finally(() => {
      if (this.#pending.size === 0) this.#worker?.unref();
    }) as Promise<boolean>;
  }

  async close(): Promise<void> {
    const worker = this.#worker;
    this.#worker = undefined;
    await worker?.terminate();
  }
}
