// The parts of undici the proxy uses (agents, one-shot requests, the connector), loaded from
// their own modules. undici's package index loads every part it has (fetch, WebSocket,
// EventSource, the HTTP caches, cookies, mocks, interceptors): ~10 MiB of RSS in each isolate
// that imports it, and the proxy has two, the main thread and the fill thread (docs/decisions.md,
// "undici without its index"). The types are the package's own.
import { createRequire } from 'node:module';
import type * as Undici from 'undici';

const load = createRequire(import.meta.url);

export const Agent: typeof Undici.Agent = load('undici/lib/dispatcher/agent.js');
export const buildConnector: typeof Undici.buildConnector = load('undici/lib/core/connect.js');
const apiRequest = load('undici/lib/api/api-request.js') as (
  this: Undici.Dispatcher,
  opts: Undici.Dispatcher.RequestOptions,
) => Promise<Undici.Dispatcher.ResponseData>;

export type Agent = Undici.Agent;
export type AgentOptions = Undici.Agent.Options;
export type BuildOptions = Undici.buildConnector.BuildOptions;
export type Connector = Undici.buildConnector.connector;
export type Dispatcher = Undici.Dispatcher;
export type ResponseData = Undici.Dispatcher.ResponseData;
export type RequestOptions = Omit<Undici.Dispatcher.RequestOptions, 'origin' | 'path' | 'method'> & {
  dispatcher: Undici.Dispatcher;
  method?: Undici.Dispatcher.HttpMethod;
};

/** One request to `url` through `opts.dispatcher`: undici's `request`, which always names its dispatcher here. */
export function request(url: string | URL, opts: RequestOptions): Promise<ResponseData> {
  const u = typeof url === 'string' ? new URL(url) : url;
  const { dispatcher, method = 'GET', ...rest } = opts;
  return apiRequest.call(dispatcher, { ...rest, origin: u.origin, path: `${u.pathname}${u.search}`, method });
}
