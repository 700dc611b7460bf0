// `pullgate cache ls | prune | verify`: the blob cache directory, read and tidied in place. These
// work on the directory the configuration names, beside a running proxy: a proxy that finds an
// entry gone (or cut short) fetches it again, so removing files is always safe.
import { parseArgs } from 'node:util';
import { BlobCache } from '../blobs/cache.ts';
import { loadConfig } from '../config/load.ts';
import { Node } from '../config/reader.ts';
import { parseDuration } from '../policy/duration.ts';
import { table, type Output } from './output.ts';

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  json: { type: 'boolean' },
  'max-bytes': { type: 'string' },
  'older-than': { type: 'string' },
} as const;

async function openCache(configFile: string | undefined): Promise<BlobCache> {
  const config = loadConfig(configFile);
  const cache = new BlobCache({ dir: config.cache.blobs.path, maxBytes: config.cache.blobs.maxBytes });
  await cache.open({ cleanTmp: false });
  return cache;
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

export async function cacheLs(args: string[], out: Output): Promise<number> {
  const { values } = parseArgs({ args, options: OPTIONS, strict: true });
  const cache = await openCache(values.config);
  const entries = cache.list().reverse();
  const stats = cache.stats();
  out.result(values.json, { path: cache.dir, ...stats, entries }, () =>
    [
      `${cache.dir}: ${stats.entries} blobs, ${mib(stats.bytes)} of ${mib(stats.maxBytes)}`,
      table(
        ['DIGEST', 'SIZE', 'LAST USED'],
        entries.map((e) => [e.digest, mib(e.size), new Date(e.lastUsed).toISOString()]),
      ),
    ].join('\n'),
  );
  return 0;
}

export async function cachePrune(args: string[], out: Output): Promise<number> {
  const { values } = parseArgs({ args, options: OPTIONS, strict: true });
  if (values['max-bytes'] === undefined && values['older-than'] === undefined) {
    out.err('usage: pullgate cache prune [--max-bytes SIZE] [--older-than DURATION] [--config FILE]\n');
    return 2;
  }
  const maxBytes =
    values['max-bytes'] === undefined
      ? undefined
      : new Node('--max-bytes', '--max-bytes', values['max-bytes']).bytes(0, 0, 2 ** 50);
  const olderThan = values['older-than'] === undefined ? undefined : parseDuration(values['older-than']);
  if (olderThan === undefined && values['older-than'] !== undefined) {
    out.err(`pullgate cache prune: --older-than ${values['older-than']} is not a duration like 7d, 12h or 30m\n`);
    return 2;
  }
  const cache = await openCache(values.config);
  const removed = await cache.prune({
    ...(maxBytes === undefined ? {} : { maxBytes }),
    ...(olderThan === undefined ? {} : { before: Date.now() - olderThan }),
  });
  const freed = removed.reduce((n, e) => n + e.size, 0);
  out.result(
    values.json,
    { removed, freedBytes: freed, ...cache.stats() },
    () => `removed ${removed.length} blobs, ${mib(freed)}\n`,
  );
  return 0;
}

export async function cacheVerify(args: string[], out: Output): Promise<number> {
  const { values } = parseArgs({ args, options: OPTIONS, strict: true });
  const cache = await openCache(values.config);
  const { checked, removed } = await cache.verify();
  out.result(values.json, { checked, removed }, () =>
    [
      `checked ${checked} blobs, removed ${removed.length} whose content did not match their digest`,
      ...removed,
      '',
    ].join('\n'),
  );
  return removed.length > 0 ? 1 : 0;
}
