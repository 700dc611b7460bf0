// Child processes for tests: long-running servers with a readiness probe (startProcess), one-shot
// commands with a time limit (runCommand), and polling with a deadline (waitFor).
//
// Nothing a test starts may outlive it. Three layers make sure of that:
// - stop() sends SIGTERM to the server's process group, then SIGKILL after a bounded wait;
// - a process 'exit' hook SIGKILLs whatever is still running when the test worker exits;
// - where util-linux `setpriv` exists, children run with a parent-death signal, so the kernel
//   kills them even when the worker itself is SIGKILLed and no hook runs.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';

export interface RunningProcess {
  pid: number;
  logFile: string;
  stop(): Promise<void>;
}

export interface StartProcessOptions {
  cmd: string;
  args: string[];
  /** Added to (and overriding) the test process's environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** stdout and stderr of the process go here (appended). */
  logFile: string;
  /** Resolves true once the process serves; errors count as "not yet". */
  ready: () => Promise<boolean>;
  readyTimeoutMs?: number;
  readyIntervalMs?: number;
  /** How long stop() waits after SIGTERM before it sends SIGKILL. */
  stopTimeoutMs?: number;
}

export interface WaitForOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Named in the timeout error: what was awaited. */
  what: string;
  /** Ends the wait early (the error then says it was aborted). */
  signal?: AbortSignal;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunCommandOptions {
  timeoutMs?: number;
  env?: Record<string, string>;
  cwd?: string;
}

const SETPRIV = '/usr/bin/setpriv';
const KILL_WAIT_MS = 5_000;
const LOG_TAIL_BYTES = 4_000;

const live = new Set<ChildProcess>();
/** Children started in their own process group, signalled as a group. */
const groupOf = new WeakSet<ChildProcess>();
let exitHookInstalled = false;

function track(child: ChildProcess, group: boolean): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const c of live) if (c.pid !== undefined) signal(c.pid, 'SIGKILL', groupOf.has(c));
    });
  }
  live.add(child);
  if (group) groupOf.add(child);
  child.once('exit', () => live.delete(child));
}

function signal(pid: number, sig: NodeJS.Signals, group: boolean): void {
  try {
    process.kill(group ? -pid : pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** The command line to exec, run under a parent-death signal when the system allows it. */
function withParentDeathSignal(cmd: string, args: string[]): [string, string[]] {
  return existsSync(SETPRIV) ? [SETPRIV, ['--pdeathsig', 'SIGKILL', '--', cmd, ...args]] : [cmd, args];
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function exitOf(child: ChildProcess): string {
  return child.signalCode !== null ? `signal ${child.signalCode}` : `code ${child.exitCode}`;
}

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (hasExited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, timeoutMs);
    const onExit = () => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The last few KB of a log file, for error messages. */
export function logTail(file: string, bytes = LOG_TAIL_BYTES): string {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const size = fstatSync(fd).size;
    const length = Math.min(size, bytes);
    const buf = Buffer.alloc(length);
    readSync(fd, buf, 0, length, size - length);
    return (size > length ? '…' : '') + buf.toString('utf8');
  } catch (err) {
    return `(log ${file} unreadable: ${(err as Error).message})`;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Polls fn until it returns a truthy value, which it resolves with. Errors thrown by fn count as
 * "not yet"; the last one is quoted when the deadline passes.
 */
export async function waitFor<T>(fn: () => T | Promise<T>, opts: WaitForOptions): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    if (opts.signal?.aborted) throw new Error(`stopped waiting for ${opts.what}: aborted`);
    const remaining = deadline - Date.now();
    try {
      const value = await withTimeout(Promise.resolve().then(fn), Math.max(remaining, 1));
      if (value) return value as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() + intervalMs > deadline) break;
    await sleep(intervalMs);
  }
  const why = lastError === undefined ? '' : ` (last error: ${(lastError as Error).message ?? String(lastError)})`;
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what}${why}`);
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Starts a server process in its own process group with output to logFile, and resolves once
 * ready() says it serves. On failure the process is stopped and the error quotes the log's tail.
 */
export async function startProcess(opts: StartProcessOptions): Promise<RunningProcess> {
  const what = `${opts.cmd} ${opts.args.join(' ')}`;
  const logFd = openSync(opts.logFile, 'a');
  const [file, argv] = withParentDeathSignal(opts.cmd, opts.args);
  let child: ChildProcess;
  try {
    child = spawn(file, argv, {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', logFd, logFd],
      detached: true,
    });
  } finally {
    closeSync(logFd);
  }
  const spawned = await new Promise<Error | undefined>((resolve) => {
    child.once('spawn', () => resolve(undefined));
    child.once('error', resolve);
  });
  if (spawned || child.pid === undefined) {
    throw new Error(`cannot start ${what}: ${spawned?.message ?? 'no pid'} (is ${opts.cmd} installed and on PATH?)`);
  }
  track(child, true);
  const pid = child.pid;
  const stopTimeoutMs = opts.stopTimeoutMs ?? 5_000;

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      if (!hasExited(child)) {
        signal(pid, 'SIGTERM', true);
        if (!(await waitForExit(child, stopTimeoutMs))) {
          signal(pid, 'SIGKILL', true);
          if (!(await waitForExit(child, KILL_WAIT_MS)))
            throw new Error(`${what} (pid ${pid}) survived SIGKILL for ${KILL_WAIT_MS} ms`);
        }
      }
      // anything the server left behind in its group
      signal(pid, 'SIGKILL', true);
    })();
    return stopping;
  };

  const abort = new AbortController();
  const exited = new Promise<never>((_, reject) => {
    const onExit = () => reject(new Error(`exited with ${exitOf(child)} before it was ready`));
    if (hasExited(child)) onExit();
    else child.once('exit', onExit);
  });
  const readyTimeoutMs = opts.readyTimeoutMs ?? 20_000;
  try {
    await Promise.race([
      waitFor(opts.ready, {
        what: 'readiness',
        timeoutMs: readyTimeoutMs,
        intervalMs: opts.readyIntervalMs ?? 100,
        signal: abort.signal,
      }),
      exited,
    ]);
  } catch (err) {
    await stop().catch(() => undefined);
    throw new Error(
      `${what} did not become ready: ${(err as Error).message}\n--- tail of ${opts.logFile} ---\n${logTail(opts.logFile)}`,
    );
  } finally {
    abort.abort();
    exited.catch(() => undefined);
  }
  return { pid, logFile: opts.logFile, stop };
}

/** Runs a command to completion, SIGKILLing it after timeoutMs (code -1, noted in stderr). */
export async function runCommand(cmd: string, args: string[], opts: RunCommandOptions = {}): Promise<CommandResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const [file, argv] = withParentDeathSignal(cmd, args);
  const child = spawn(file, argv, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout?.on('data', (d: Buffer) => stdout.push(d));
  child.stderr?.on('data', (d: Buffer) => stderr.push(d));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  try {
    const code = await new Promise<number>((resolve, reject) => {
      child.once('error', (err) =>
        reject(new Error(`cannot run ${cmd}: ${err.message} (is it installed and on PATH?)`)),
      );
      child.once('spawn', () => track(child, false));
      // 'close' (not 'exit') so that all output has been read
      child.once('close', (c) => resolve(c ?? -1));
    });
    const err = Buffer.concat(stderr).toString('utf8');
    return {
      code,
      stdout: Buffer.concat(stdout).toString('utf8'),
      stderr: timedOut ? `${err}\n[${cmd} killed: no result within ${timeoutMs} ms]` : err,
    };
  } finally {
    clearTimeout(timer);
  }
}

/** runCommand that resolves with stdout, and throws with the command line and stderr on failure. */
export async function runChecked(cmd: string, args: string[], opts: RunCommandOptions = {}): Promise<string> {
  const r = await runCommand(cmd, args, opts);
  if (r.code !== 0)
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.code}):\n${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}
