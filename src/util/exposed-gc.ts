// V8's gc() without starting node with --expose-gc (the flag is set at run time and the function
// taken from a fresh context); undefined where the runtime refuses. The idle collector and the
// fill thread use it.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export type Gc = (options?: { type?: 'major' | 'minor' }) => void;

export function exposedGc(): Gc | undefined {
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as Gc) : undefined;
  } catch {
    return undefined;
  }
}
