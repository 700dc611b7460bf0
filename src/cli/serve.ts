// `pullgate serve`: its spec; the work is in serve-proxy.ts.
import type { Command } from './command.ts';

export const serve: Command = {
  spec: {
    name: 'serve',
    args: [],
    summary: 'run the proxy',
    options: {
      config: {
        type: 'string',
        short: 'c',
        value: 'FILE',
        help: 'the configuration file (every key: config/pullgate.example.yaml)',
      },
      listen: {
        type: 'string',
        value: 'HOST:PORT',
        help: 'listen here instead of listen.host/listen.port (also PULLGATE_LISTEN)',
      },
      port: { type: 'string', value: 'N', help: 'listen on this port instead of listen.port' },
    },
    notes: [
      'without --config: the embedded defaults (127.0.0.1:5050, SQLite in ./data, a policy denying everything).',
      'precedence: --listen/--port, then PULLGATE_LISTEN, then the config file.',
      'signals: SIGHUP reloads the policy and the TLS certificate; SIGTERM drains and stops.',
      'the admin API starts when an admin token is configured (admin.token or PULLGATE_ADMIN_TOKEN);',
      'placeholder secrets (REPLACE-…, change-me, …) are refused at start.',
    ],
  },
  // Loaded when run: the proxy's modules would slow every other command's start.
  run: async (values) => (await import('./serve-proxy.ts')).serveProxy(values),
};
