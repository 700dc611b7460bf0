// `pullgate serve`, the work: load the config (placeholders refused), apply --listen/--port, run
// until SIGTERM/SIGINT; SIGHUP reloads the policy and the TLS certificate.
import { loadConfig } from '../config/load.ts';
import { parseListenAddress, parsePort } from '../config/listen.ts';
import { startProxy } from '../server.ts';
import { UsageError, type Values } from './args.ts';

export async function serveProxy(values: Values): Promise<number> {
  const config = loadConfig(values.config as string | undefined, process.env, { refusePlaceholders: true });
  if (typeof values.listen === 'string') {
    const address = parseListenAddress(values.listen);
    if (typeof address === 'string') throw new UsageError(`--listen: ${address}`);
    config.listen.host = address.host;
    config.listen.port = address.port;
  }
  if (typeof values.port === 'string') {
    const port = parsePort(values.port);
    if (typeof port === 'string') throw new UsageError(`--port: ${port}`);
    config.listen.port = port;
  }
  const proxy = await startProxy(config, { processMetrics: true, watchPolicy: true });
  process.on('SIGHUP', () => {
    proxy.policy.reload('signal');
    proxy.reloadTls();
  });
  await new Promise<void>((resolve) => {
    const stop = () => {
      proxy.close().then(resolve, resolve);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  return 0;
}
