// Listen addresses as the command line and PULLGATE_LISTEN give them: HOST:PORT, [IPv6]:PORT. Pure.
import { isIP } from 'node:net';

const HOSTNAME_RE = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** A port number 0-65535 (0: any free port), or an error message. */
export function parsePort(text: string): number | string {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) return `"${text}" is not a port number (0-65535)`;
  return Number(text);
}

/** `host:port`, `[ipv6]:port`; the host is an IP address or a host name. */
export function parseListenAddress(text: string): { host: string; port: number } | string {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):([^:]*)$/.exec(text);
  const usage = `"${text}" is not HOST:PORT (like 0.0.0.0:5050, 127.0.0.1:5050 or [::]:5050)`;
  if (!m) return usage;
  const [, v6, name, portText = ''] = m;
  const host = v6 ?? name ?? '';
  if (v6 !== undefined ? isIP(v6) !== 6 : !(isIP(host) === 4 || HOSTNAME_RE.test(host))) return usage;
  const port = parsePort(portText);
  if (typeof port === 'string') return `${usage}: ${port}`;
  return { host, port };
}
