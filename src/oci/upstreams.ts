// The allowlist: one registry client per configured upstream, looked up by host or alias.
import type { BudgetsConfig, Config } from '../config/types.ts';
import { RegistryClient, type ClientObserver } from './client.ts';
import { DEFAULT_UPSTREAM_FETCH_LIMITS, fetchLimitsOf } from './fetch-budget.ts';
import type { SharedSlots } from '../util/shared-admission-queue.ts';

export interface UpstreamNames {
  /** Canonical host for a host or alias, if allowlisted. */
  canonical(name: string): string | undefined;
  readonly defaultUpstream: string | undefined;
}

export class Upstreams implements UpstreamNames {
  readonly #byName = new Map<string, RegistryClient>();
  readonly #clients: RegistryClient[];
  readonly defaultUpstream: string | undefined;

  constructor(
    config: Pick<Config, 'upstreams' | 'defaultUpstream'> & {
      budgets?: Pick<BudgetsConfig, 'upstreamRequests' | 'upstreamBlobRequests' | 'upstreamQueue'>;
    },
    observer?: ClientObserver,
    /** Per upstream host, the blob budget's count shared with the fill thread (server.ts). */
    blobSlots?: ReadonlyMap<string, SharedArrayBuffer>,
  ) {
    const b = config.budgets;
    // Each upstream has budgets of its own: one slow registry cannot take the slots of the others.
    const limits = b ? fetchLimitsOf(b) : DEFAULT_UPSTREAM_FETCH_LIMITS;
    this.#clients = config.upstreams.map((u) => new RegistryClient(u, observer, limits, slotsOf(blobSlots, u.host)));
    for (const client of this.#clients) {
      for (const name of [client.upstream.host, ...client.upstream.aliases]) this.#byName.set(name, client);
    }
    this.defaultUpstream = config.defaultUpstream;
  }

  canonical(name: string): string | undefined {
    return this.#byName.get(name)?.host;
  }

  /** The client of an allowlisted upstream; throws for anything else, which routing never lets through. */
  client(host: string): RegistryClient {
    const client = this.#byName.get(host);
    if (!client) throw new Error(`internal: upstream ${host} is not allowlisted`);
    return client;
  }

  async close(): Promise<void> {
    await Promise.all(this.#clients.map((c) => c.close()));
  }
}

/** The main thread's hold on an upstream's shared blob budget. */
function slotsOf(slots: ReadonlyMap<string, SharedArrayBuffer> | undefined, host: string): SharedSlots | undefined {
  const buffer = slots?.get(host);
  return buffer ? { buffer, holder: 0 } : undefined;
}
