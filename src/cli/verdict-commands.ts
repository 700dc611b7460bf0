// Admin commands for re-validation and the drift lifecycle: `revalidate report|run`,
// `drift resolve ID --reason TEXT`.
import type { RevalidationReport } from '../gate/revalidate.ts';
import { admin } from './admin-commands.ts';
import type { Command } from './command.ts';
import { table } from './output.ts';

function render(report: RevalidationReport | null): string {
  if (!report) return 'no re-validation has run yet on this replica (pullgate revalidate run starts one)\n';
  return [
    `re-validation ${report.startedAt} → ${report.finishedAt}: ${report.judged} judged, ${report.unchecked} unchecked, ${report.denied.length} would now be denied${report.enforce ? ' and were withdrawn' : ''}`,
    table(
      ['IMAGE', 'RULE', 'WITHDRAWN', 'REASONS'],
      report.denied.map((d) => [d.image, d.rule, d.withdrawn ? 'yes' : 'no', d.reasons.join('; ')]),
    ),
  ].join('\n');
}

function revalidate(name: string, method: 'GET' | 'POST', summary: string): Command {
  return admin({ name, args: [], summary }, async (v, _p, client, out) => {
    const { report } = await client.call<{ report: RevalidationReport | null }>(method, '/api/v1/revalidation');
    out.result(v.json, report, () => render(report));
    return report && report.denied.length > 0 ? 1 : 0;
  });
}

const driftResolve = admin(
  {
    name: 'drift resolve',
    args: ['ID'],
    summary: 'close a drift record by hand, with the reason',
    options: { reason: { type: 'string', value: 'TEXT', help: 'why (goes into the audit trail)', required: true } },
  },
  async (v, [id], client, out) => {
    const { drift } = await client.call<{ drift: { id: number } }>(
      'POST',
      `/api/v1/drift/${encodeURIComponent(id ?? '')}/resolve`,
      {
        reason: v.reason,
      },
    );
    out.result(v.json, drift, () => `drift record ${drift.id} resolved\n`);
    return 0;
  },
);

export const VERDICT_COMMANDS: Command[] = [
  driftResolve,
  revalidate(
    'revalidate report',
    'GET',
    'the last re-validation run: digests served lately that would now be denied; exit 1 if any',
  ),
  revalidate(
    'revalidate run',
    'POST',
    'judge every digest served lately again now, with fresh evidence; exit 1 if any would be denied',
  ),
];
