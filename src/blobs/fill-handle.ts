// What every kind of fill (fill.ts in this thread, fill-thread.ts for the fill thread) keeps the
// same way: the promises its readers wait on, the readers waiting for more, and the file handle it
// shares with them.
import type { FileHandle } from 'node:fs/promises';

export interface Hooks {
  resolve: () => void;
  reject: (e: Error) => void;
}

/** A promise and its hooks. Nobody may be listening when a fill fails: its readers hear it through their own sends. */
export function deferred(): { promise: Promise<void>; hooks: Hooks } {
  let hooks!: Hooks;
  const promise = new Promise<void>((resolve, reject) => {
    hooks = { resolve, reject };
  });
  promise.catch(() => undefined);
  return { promise, hooks };
}

/** The fill's file, held by the fill itself and by each reader; the last one to let go closes it. */
export class SharedFile {
  #fh: FileHandle | undefined;
  #holders = 1;

  get handle(): FileHandle | undefined {
    return this.#fh;
  }

  set(fh: FileHandle): void {
    this.#fh = fh;
  }

  /** Another hold on the file; undefined when there is none (yet, or any more). */
  hold(): FileHandle | undefined {
    if (!this.#fh) return undefined;
    this.#holders++;
    return this.#fh;
  }

  /** Lets go of one hold; true when that was the last and the file is closed. */
  release(): boolean {
    if (--this.#holders > 0 || !this.#fh) return false;
    const fh = this.#fh;
    this.#fh = undefined;
    fh.close().catch(() => undefined);
    return true;
  }
}

/** Readers waiting for a fill to grow: woken together, or told together why it failed. */
export class Waiters {
  #hooks: Hooks[] = [];

  wait(): Promise<void> {
    return new Promise((resolve, reject) => this.#hooks.push({ resolve, reject }));
  }

  wake(): void {
    for (const w of this.#take()) w.resolve();
  }

  fail(error: Error): void {
    for (const w of this.#take()) w.reject(error);
  }

  #take(): Hooks[] {
    const hooks = this.#hooks;
    this.#hooks = [];
    return hooks;
  }
}
