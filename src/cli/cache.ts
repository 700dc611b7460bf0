// `pullgate cache ls | prune | verify`: the blob cache directory, read and tidied in place. These
// work on the directory the configuration names, beside a running proxy: a proxy that finds an
// entry gone (or cut short) fetches it again, so removing files is always safe.
import { BlobCache } from '../blobs/cache.ts';
import { loadConfig } from '../config/load.ts';
import { Node } from '../config/reader.ts';
import { parseDuration } from '../policy/duration.ts';
import { UsageError, type OptionSpec } from './args.ts';
import type { Command } from './command.ts';
import { table } from './output.ts';

const COMMON: Record<string, OptionSpec> = {
  config: { type: 'string', short: 'c', value: 'FILE', help: 'the configuration file naming the cache (cache.blobs)' },
  json: { type: 'boolean', help: 'print JSON' },
};

async function openCache(configFile: unknown): Promise<BlobCache> {
  const config = loadConfig(configFile as string | undefined);
  const cache = new BlobCache({ dir: config.cache.blobs.path, maxBytes: config.cache.blobs.maxBytes });
  await cache.open({ cleanTmp: false });
  return cache;
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

const cacheLs: Command = {
  spec: { name: 'cache ls', args: [], summary: 'the blobs in the cache directory, newest use first', options: COMMON },
  async run(values, _p, out) {
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
  },
};

const cachePrune: Command = {
  spec: {
    name: 'cache prune',
    args: [],
    summary: 'remove cached blobs: down to a size, or unused for a while',
    options: {
      'max-bytes': {
        type: 'string',
        value: 'SIZE',
        help: 'remove least recently used blobs down to this size (10GiB, 500MiB)',
      },
      'older-than': { type: 'string', value: 'DURATION', help: 'remove blobs unused for this long (7d, 12h, 30m)' },
      ...COMMON,
    },
    notes: ['give --max-bytes, --older-than or both. A running proxy fetches a removed blob again when asked.'],
  },
  async run(values, _p, out) {
    const maxText = values['max-bytes'] as string | undefined;
    const ageText = values['older-than'] as string | undefined;
    if (maxText === undefined && ageText === undefined) throw new UsageError('give --max-bytes, --older-than or both');
    const maxBytes =
      maxText === undefined ? undefined : new Node('--max-bytes', '--max-bytes', maxText).bytes(0, 0, 2 ** 50);
    const olderThan = ageText === undefined ? undefined : parseDuration(ageText);
    if (olderThan === undefined && ageText !== undefined)
      throw new UsageError(`--older-than: "${ageText}" is not a duration like 7d, 12h or 30m`);
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
  },
};

const cacheVerify: Command = {
  spec: {
    name: 'cache verify',
    args: [],
    summary: 're-hash every cached blob, remove those that do not match; exit 1 if any',
    options: COMMON,
  },
  async run(values, _p, out) {
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
  },
};

export const CACHE_COMMANDS: Command[] = [cacheLs, cachePrune, cacheVerify];
