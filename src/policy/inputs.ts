// The files a policy was compiled from, besides the policy file itself (keys, trust roots, CA
// certificates, Notation trust stores, CRLs), so the policy holder can watch them too: a key file
// replaced on disk changes the policy in force as much as an edit to the policy does.
// Compilation is synchronous, so one collector at a time is enough.
import { resolve } from 'node:path';

let collecting: Set<string> | undefined;

/** Notes that the policy being compiled read this file or directory. */
export function noteInput(path: string): void {
  collecting?.add(resolve(path));
}

/** Runs a compilation and returns what it read. */
export function collectInputs<T>(fn: () => T): { value: T; inputs: string[] } {
  const outer = collecting;
  const mine = new Set<string>();
  collecting = mine;
  try {
    return { value: fn(), inputs: [...mine].sort() };
  } finally {
    collecting = outer;
  }
}
