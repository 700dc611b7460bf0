// `pullgate check IMAGE`: its spec; the work is in check-image.ts.
import type { Command } from './command.ts';

export const check: Command = {
  spec: {
    name: 'check',
    args: ['[REGISTRY/]REPO[:TAG|@DIGEST]'],
    summary: 'evaluate the policy for an image now; exit 0 allow, 1 deny',
    options: {
      config: { type: 'string', short: 'c', value: 'FILE', help: 'the configuration file (upstreams, policy)' },
      policy: { type: 'string', short: 'p', value: 'FILE', help: 'this policy instead of the configured one' },
      json: { type: 'boolean', help: 'print JSON' },
    },
    notes: [
      "prints the verdict with every attestor's evidence and why each piece was rejected.",
      'the upstreams are contacted directly, not through a running proxy; nothing is recorded.',
    ],
  },
  // Loaded when run: the verifier's modules would slow every other command's start.
  run: async (values, positionals, out) =>
    (await import('./check-image.ts')).checkImage(values, positionals[0] ?? '', out),
};
