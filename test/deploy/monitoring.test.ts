// deploy/monitoring: the alert rules and the dashboard are well formed, and every metric they name
// exists on the /metrics of a real proxy started as `pullgate serve` (with TLS and /metrics on the admin
// listener, as in the cluster).
// The reload and certificate metrics they alert on follow the proxy's state.
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { Agent, request } from 'undici';
import { stringify } from 'yaml';
import { freePort, runChecked, waitFor } from '../harness/index.ts';
import { type Doc, DEPLOY, ROOT, parseFile } from './deploy-files.ts';

const CLI = join(ROOT, 'src/cli/main.ts');
/** Series Prometheus makes itself, not the proxy. */
const PROMETHEUS_OWN = new Set(['up']);
const PROMQL_FUNCTIONS_AND_WORDS = /^(sum|rate|increase|histogram_quantile|min|max|by|and|or|time|le)$/;

const rules: Doc[] = parseFile('monitoring/alerts.yaml')[0]!.groups.flatMap((g: Doc) => g.rules);
const dashboard: Doc = JSON.parse(readFileSync(join(DEPLOY, 'monitoring/grafana-dashboard.json'), 'utf8'));
const panels: Doc[] = dashboard.panels.filter((p: Doc) => p.type !== 'row');
const dashboardExprs: string[] = [
  ...panels.flatMap((p) => p.targets.map((t: Doc) => t.expr as string)),
  // label_values(METRIC, LABEL): only METRIC is a metric
  ...dashboard.templating.list
    .filter((v: Doc) => v.type === 'query')
    .map((v: Doc) => (v.query as string).replace(/^label_values\((\w+),\s*\w+\)$/, '$1')),
];

/** The metric names a PromQL expression reads: identifiers that are not functions, keywords, labels or strings. */
function metricNames(expr: string): string[] {
  const withoutStrings = expr
    .replace(/"[^"]*"/g, '""')
    .replace(/\{[^}]*\}/g, '{}')
    .replace(/\[[^\]]*\]/g, '[]');
  const withoutGrouping = withoutStrings.replace(/\b(by|without)\s*\([^)]*\)/g, '');
  return [...withoutGrouping.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()/g)]
    .map((m) => m[1]!)
    .filter((name) => !PROMQL_FUNCTIONS_AND_WORDS.test(name) && !/^\d/.test(name));
}

function balanced(expr: string): boolean {
  let depth = 0;
  for (const c of expr.replace(/"[^"]*"/g, '')) {
    if ('({['.includes(c)) depth++;
    if (')}]'.includes(c) && --depth < 0) return false;
  }
  return depth === 0;
}

test('alert rules: every rule has an expression, a severity, a summary and a description naming what to do', (t) => {
  t.true(rules.length >= 7);
  const names = new Set(rules.map((r) => r.alert));
  for (const alert of [
    'PullgateStoreDown',
    'PullgateDenySpike',
    'PullgateStaleServes',
    'PullgateTagDrift',
    'PullgatePolicyReloadFailed',
    'PullgateTlsCertificateExpiresSoon',
  ])
    t.true(names.has(alert), alert);
  for (const r of rules) {
    t.is(typeof r.alert, 'string');
    t.true(typeof r.expr === 'string' && balanced(r.expr), `${r.alert}: ${r.expr}`);
    t.true(['critical', 'warning', 'info'].includes(r.labels?.severity), `${r.alert}: severity`);
    t.true(r.for === undefined || /^\d+[smh]$/.test(r.for), `${r.alert}: for`);
    t.true(r.annotations?.summary?.length > 10, `${r.alert}: summary`);
    t.true(r.annotations?.description?.length > 40, `${r.alert}: description`);
    t.true(metricNames(r.expr).length > 0, `${r.alert} reads a metric`);
  }
});

test('dashboard: every panel queries the selected Prometheus, has a place on the grid and a unique id', (t) => {
  t.is(dashboard.uid, 'pullgate');
  t.true(panels.length >= 10);
  const ids = dashboard.panels.map((p: Doc) => p.id);
  t.is(new Set(ids).size, ids.length);
  for (const p of panels) {
    t.deepEqual(p.datasource, { type: 'prometheus', uid: '${datasource}' }, p.title);
    t.true(p.targets.length > 0, p.title);
    for (const target of p.targets) {
      t.true(balanced(target.expr), `${p.title}: ${target.expr}`);
      t.true(target.expr.includes('job="$job"'), `${p.title}: filtered by the job variable`);
    }
    t.true(p.gridPos.x >= 0 && p.gridPos.x + p.gridPos.w <= 24 && p.gridPos.h > 0, p.title);
  }
  t.true(dashboard.templating.list.some((v: Doc) => v.name === 'datasource' && v.type === 'datasource'));
});

function selfSigned(dir: string, name: string, days: number): Promise<unknown> {
  return runChecked('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    String(days),
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout',
    join(dir, `${name}.key`),
    '-out',
    join(dir, `${name}.crt`),
  ]);
}

test('every metric the rules and the dashboard name exists on a running proxy; reload and certificate metrics follow its state', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pullgate-monitoring-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await selfSigned(dir, 'tls', 30);
  await selfSigned(dir, 'renewed', 90);
  writeFileSync(join(dir, 'tls.pem'), readFileSync(join(dir, 'tls.crt')));
  writeFileSync(join(dir, 'tls-key.pem'), readFileSync(join(dir, 'tls.key')));
  const policy = join(dir, 'policy.yaml');
  writeFileSync(policy, 'apiVersion: pullgate.dev/v1\nkind: Policy\ndefaultRule: {evaluationMode: alwaysDeny}\n');
  const port = await freePort();
  const adminPort = await freePort();
  writeFileSync(
    join(dir, 'pullgate.yaml'),
    stringify({
      listen: { host: '127.0.0.1', port, tls: { cert: 'tls.pem', key: 'tls-key.pem' } },
      // as in the shipped deployment: /metrics on the admin listener, without a token
      metrics: { listener: 'admin' },
      admin: { host: '127.0.0.1', port: adminPort },
      upstreams: [{ host: 'registry.example.test', url: 'https://127.0.0.1:9' }],
      policy: { file: 'policy.yaml' },
      store: { sqlite: { path: 'state.db' } },
    }),
  );
  const child = spawn(process.execPath, [CLI, 'serve', '--config', join(dir, 'pullgate.yaml')], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const agent = new Agent({ connect: { rejectUnauthorized: false } });
  t.teardown(() => agent.close());
  const scrape = async (): Promise<string | undefined> => {
    try {
      const res = await request(`http://127.0.0.1:${adminPort}/metrics`);
      return res.statusCode === 200 ? await res.body.text() : undefined;
    } catch {
      return undefined;
    }
  };
  const first = await waitFor(scrape, { timeoutMs: 30_000, intervalMs: 200, what: 'the proxy serving /metrics' });
  const onRegistry = await request(`https://127.0.0.1:${port}/metrics`, { dispatcher: agent });
  t.is(onRegistry.statusCode, 404, 'the registry port does not serve /metrics');
  await onRegistry.body.dump();

  const families = new Map([...first.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
  const exists = (name: string) =>
    families.has(name) ||
    ['_bucket', '_sum', '_count'].some(
      (suffix) => name.endsWith(suffix) && families.get(name.slice(0, -suffix.length)) === 'histogram',
    );
  const named = new Set([...rules.map((r) => r.expr as string), ...dashboardExprs].flatMap(metricNames));
  t.true(named.size >= 10, [...named].join(' '));
  for (const name of named) {
    if (PROMETHEUS_OWN.has(name)) continue;
    t.true(name.startsWith('pullgate_'), `${name}: the proxy's metrics are all pullgate_*`);
    t.true(exists(name), `${name} is on /metrics`);
  }

  const value = (text: string, series: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };
  const notAfter = (file: string) => new X509Certificate(readFileSync(join(dir, file))).validToDate.getTime() / 1000;
  t.is(value(first, 'pullgate_tls_certificate_expiry_timestamp_seconds'), notAfter('tls.crt'));
  t.is(value(first, 'pullgate_policy_last_reload_success'), 1);
  t.is(value(first, 'pullgate_policy_reloads_total{result="failed"}'), 0);

  // a broken policy edit and a renewed certificate, then SIGHUP: the gauges say so
  writeFileSync(policy, 'apiVersion: pullgate.dev/v1\nkind: Policy\ndefaultRule: {evaluationMode: sometimes}\n');
  writeFileSync(join(dir, 'tls.pem'), readFileSync(join(dir, 'renewed.crt')));
  writeFileSync(join(dir, 'tls-key.pem'), readFileSync(join(dir, 'renewed.key')));
  child.kill('SIGHUP');
  const after = await waitFor(
    async () => {
      const text = await scrape();
      return text && value(text, 'pullgate_policy_last_reload_success') === 0 ? text : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 100, what: 'the failed reload on /metrics' },
  );
  t.true((value(after, 'pullgate_policy_reloads_total{result="failed"}') ?? 0) >= 1);
  t.is(value(after, 'pullgate_tls_certificate_expiry_timestamp_seconds'), notAfter('renewed.crt'));
  t.true(notAfter('renewed.crt') > notAfter('tls.crt'));

  writeFileSync(policy, 'apiVersion: pullgate.dev/v1\nkind: Policy\ndefaultRule: {evaluationMode: alwaysAllow}\n');
  child.kill('SIGHUP');
  await waitFor(
    async () => {
      const text = await scrape();
      return text && value(text, 'pullgate_policy_last_reload_success') === 1 ? true : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 100, what: 'the fixed policy on /metrics' },
  );
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  t.is(await exited, 0);
});
