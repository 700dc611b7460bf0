// Holds the current policy and swaps it atomically on reload: a request sees the old or the new
// policy, never a mix. An invalid new policy leaves the old one in force.
import { statSync, watch, type FSWatcher } from 'node:fs';
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
  readonly #watchers = new Map<string, FSWatcher>();
  #names = new Map<string, Set<string> | undefined>();
  #watching = false;
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
      this.#rewatch();
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
   * Reloads when the policy file or a file it references (keys, trust roots, CA certificates,
   * Notation trust stores, CRLs) changes. Directories are watched, because editors and Kubernetes
   * ConfigMap updates replace files (ConfigMaps by swapping the `..data` link); other files in
   * them (a SQLite store beside the policy, say) do not trigger a reload. The watched set follows
   * the policy in force.
   */
  watch(): void {
    if (!this.#file) return;
    this.#watching = true;
    this.#rewatch();
  }

  #rewatch(): void {
    if (!this.#watching || !this.#file) return;
    // directory → the names in it that matter (undefined: any change, a trust store directory)
    const wanted = new Map<string, Set<string> | undefined>();
    const file = resolve(this.#file);
    const want = (dir: string, name: string | undefined): void => {
      if (wanted.has(dir) && wanted.get(dir) === undefined) return; // already any change
      if (name === undefined) wanted.set(dir, undefined);
      else wanted.set(dir, new Set([...(wanted.get(dir) ?? []), name]));
    };
    want(dirname(file), basename(file));
    for (const input of this.#current.inputs) {
      if (isDirectory(input)) want(input, undefined);
      else want(dirname(input), basename(input));
    }
    for (const [dir, w] of this.#watchers) {
      if (!wanted.has(dir)) {
        w.close();
        this.#watchers.delete(dir);
      }
    }
    this.#names = wanted;
    for (const dir of wanted.keys()) {
      if (this.#watchers.has(dir)) continue;
      try {
        const w = watch(dir, (_event, changed) => {
          const names = this.#names.get(dir);
          if (names && changed !== null && !names.has(changed) && !changed.startsWith('..data')) return;
          clearTimeout(this.#debounce);
          this.#debounce = setTimeout(() => this.reload('file'), 100);
        });
        w.on('error', () => undefined);
        this.#watchers.set(dir, w);
      } catch (err) {
        this.#logger.warn(
          { dir, error: (err as Error).message },
          'cannot watch a directory the policy reads; reload with SIGHUP',
        );
      }
    }
  }

  close(): void {
    this.#watching = false;
    clearTimeout(this.#debounce);
    for (const w of this.#watchers.values()) w.close();
    this.#watchers.clear();
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
