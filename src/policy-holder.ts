// Holds the current policy and swaps it atomically on reload: a request sees the old or the new
// policy, never a mix. An invalid new policy leaves the old one in force.
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { EMBEDDED_POLICY, loadPolicyFile, parsePolicy, type CompiledPolicy } from './policy/load.ts';
import type { Logger } from './ops/log.ts';

/** What a reload attempt did, for the audit trail and the metrics. */
export interface ReloadOutcome {
  /** What asked for it: `file` (the file changed), `signal` (SIGHUP), `event` (another replica), or `admin:<name>`. */
  trigger: string;
  ok: boolean;
  changed: boolean;
  previous: string;
  /** The version in force afterwards. */
  current: string;
  error?: string;
}

export class PolicyHolder {
  #current: CompiledPolicy;
  readonly #file: string | undefined;
  readonly #logger: Logger;
  readonly #onChange: (p: CompiledPolicy) => void;
  readonly #onReload: ((outcome: ReloadOutcome) => void) | undefined;
  #watcher: FSWatcher | undefined;
  #debounce: NodeJS.Timeout | undefined;

  /** Throws (the proxy refuses to start) when the policy is invalid. */
  constructor(
    file: string | undefined,
    logger: Logger,
    onChange: (p: CompiledPolicy) => void,
    onReload?: (outcome: ReloadOutcome) => void,
  ) {
    this.#file = file;
    this.#logger = logger;
    this.#onChange = onChange;
    this.#onReload = onReload;
    this.#current = file
      ? loadPolicyFile(file)
      : parsePolicy(EMBEDDED_POLICY, { file: '<embedded policy>', baseDir: process.cwd() });
  }

  get current(): CompiledPolicy {
    return this.#current;
  }

  /** Reloads from the file; returns whether the policy in force changed. */
  reload(trigger = 'signal'): { ok: boolean; changed: boolean; error?: string } {
    if (!this.#file) return { ok: true, changed: false };
    const previous = this.#current.version;
    let result: { ok: boolean; changed: boolean; error?: string };
    try {
      const next = loadPolicyFile(this.#file);
      if (next.version === previous) return { ok: true, changed: false };
      this.#current = next;
      this.#logger.info(
        { policy: next.source, version: next.version.slice(0, 12), previous: previous.slice(0, 12), trigger },
        'policy reloaded',
      );
      this.#onChange(next);
      result = { ok: true, changed: true };
    } catch (err) {
      const error = (err as Error).message;
      this.#logger.error({ policy: this.#file, error, trigger }, 'policy reload failed; keeping the previous policy');
      result = { ok: false, changed: false, error };
    }
    this.#onReload?.({ trigger, ...result, previous, current: this.#current.version });
    return result;
  }

  /**
   * Reloads when the file changes. The directory is watched, because editors and Kubernetes
   * ConfigMap updates replace the file (ConfigMaps by swapping the `..data` link); other files in
   * it (a SQLite store beside the policy, say) do not trigger a reload.
   */
  watch(): void {
    if (!this.#file || this.#watcher) return;
    const file = resolve(this.#file);
    const name = basename(file);
    this.#watcher = watch(dirname(file), (_event, changed) => {
      if (changed !== null && changed !== name && !changed.startsWith('..data')) return;
      clearTimeout(this.#debounce);
      this.#debounce = setTimeout(() => this.reload('file'), 100);
    });
  }

  close(): void {
    clearTimeout(this.#debounce);
    this.#watcher?.close();
  }
}
