// `pullgate check IMAGE`: what the running proxy would serve for an image, asked of the proxy
// itself (its admin API runs the steps a pull runs, without writing anything): pins, revocations,
// grants, dry runs, the policy and stale serving. `--offline` (or `--policy FILE`) judges the
// upstream's current digest with a policy alone (check-image.ts) and says what it leaves out.
import type { Explanation } from '../gate/types.ts';
import { ADMIN_OPTIONS, clientOf } from './admin-commands.ts';
import type { Values } from './args.ts';
import type { Command } from './command.ts';
import type { Output } from './output.ts';

export const check: Command = {
  spec: {
    name: 'check',
    args: ['[REGISTRY/]REPO[:TAG|@DIGEST]'],
    summary: 'what the running proxy would serve for an image now, and why; exit 0 served, 1 refused',
    options: {
      ...ADMIN_OPTIONS,
      explain: { type: 'boolean', help: 'print every step: pin, revocation, evidence, index, policy, stale, grant' },
      offline: { type: 'boolean', help: 'judge with the policy alone, without a running proxy' },
      policy: {
        type: 'string',
        short: 'p',
        value: 'FILE',
        help: 'judge with this policy file alone (implies --offline)',
      },
    },
    notes: [
      'asks the running proxy through its admin API: the verdict a pull gets, with pins, revocations and grants.',
      'offline, the upstreams are contacted directly and only the policy is applied; nothing is recorded.',
    ],
  },
  run: async (values, positionals, out) => {
    const image = positionals[0] ?? '';
    if (values.offline || values.policy !== undefined) {
      out.err(
        'offline check: the policy alone, on the digest the upstream serves now; pins, revocations, grants and stale serving are not consulted (leave out --offline/--policy to ask the running proxy)\n',
      );
      // Loaded when run: the verifier's modules would slow every other command's start.
      return (await import('./check-image.ts')).checkImage(values, image, out);
    }
    return checkOnline(values, image, out);
  },
};

async function checkOnline(values: Values, image: string, out: Output): Promise<number> {
  const e = await clientOf(values).call<Explanation>('GET', `/api/v1/check?image=${encodeURIComponent(image)}`);
  out.result(values.json, e, () =>
    [
      `${e.served ? 'SERVED' : 'REFUSED'} ${e.image}${e.digest ? ` → ${e.digest}` : ''}`,
      `  ${e.message}`,
      ...(values.explain || !e.served ? e.steps.map((s) => `  ${s.step}: ${s.outcome}`) : []),
      '',
    ].join('\n'),
  );
  return e.served ? 0 : 1;
}
