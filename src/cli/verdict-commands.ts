// Admin commands for re-validation and the drift lifecycle: `revalidate report|run`,
// `drift resolve ID --reason TEXT`.
import { parseArgs } from 'node:util';
import type { RevalidationReport } from '../gate/revalidate.ts';
import { clientOf } from './admin-commands.ts';
import { table, type Output } from './output.ts';

const COMMON = {
  config: { type: 'string', short: 'c' },
  'admin-url': { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
} as const;

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

async function revalidate(args: string[], out: Output, method: 'GET' | 'POST'): Promise<number> {
  const { values } = parseArgs({ args, options: COMMON, strict: true });
  const { report } = await clientOf(values).call<{ report: RevalidationReport | null }>(method, '/api/v1/revalidation');
  out.result(values.json, report, () => render(report));
  return report && report.denied.length > 0 ? 1 : 0;
}

export const revalidateReport = (args: string[], out: Output) => revalidate(args, out, 'GET');
export const revalidateRun = (args: string[], out: Output) => revalidate(args, out, 'POST');

export async function driftResolve(args: string[], out: Output): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: { ...COMMON, reason: { type: 'string' } },
  });
  const [id] = positionals;
  if (!id || !values.reason) {
    out.err('usage: pullgate drift resolve ID --reason TEXT\n');
    return 2;
  }
  const { drift } = await clientOf(values).call<{ drift: { id: number; resolved: boolean } }>(
    'POST',
    `/api/v1/drift/${encodeURIComponent(id)}/resolve`,
    { reason: values.reason },
  );
  out.result(values.json, drift, () => `drift record ${drift.id} resolved\n`);
  return 0;
}
