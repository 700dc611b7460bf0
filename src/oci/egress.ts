// Where the proxy may open connections to on behalf of an upstream. The configured upstream origin
// is trusted as the admin wrote it; every host an upstream *sends us to* (a token realm, a blob
// redirect) must not be an internal address (loopback, private, link-local, cloud metadata…)
// unless the admin allowlisted that host or range for the upstream. The check runs on the
// addresses DNS returned for the very connection being made, and again on the socket's peer
// address, so a name that resolves to a public address once and to 127.0.0.1 the next time
// (DNS rebinding) cannot slip past.
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { isIP, type Socket } from 'node:net';
import { buildConnector, type BuildOptions, type Connector } from './undici.ts';

export interface Cidr {
  family: 4 | 6;
  /** The network address as a number (IPv4: 32 bits, IPv6: 128 bits). */
  network: bigint;
  prefix: number;
  text: string;
}

/** An upstream's egress allowlist, compiled from `upstreams[].egress` and `tokenRealms`. */
export interface EgressRule {
  /** Host names (any port) or host:port that may be connected to whatever they resolve to. */
  allowHosts: readonly string[];
  /** Address ranges that may be connected to although they are internal. */
  allowCidrs: readonly Cidr[];
}

export const NO_EXCEPTIONS: EgressRule = { allowHosts: [], allowCidrs: [] };

export type Decision = { ok: true } | { ok: false; reason: string };

/** A connection the egress policy refused; its message is for the log, never for clients. */
export class EgressRefusedError extends Error {
  readonly code = 'PULLGATE_EGRESS_REFUSED';
}

/** Parses an IPv4 or IPv6 address (IPv6 may end in a dotted quad, may carry a %zone) into a number. */
export function parseIp(text: string): { family: 4 | 6; value: bigint } | undefined {
  const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  const address = bare.replace(/%.*$/, '');
  const kind = isIP(address);
  if (kind === 4) return { family: 4, value: ipv4Value(address) };
  if (kind !== 6) return undefined;
  let groups = address.toLowerCase();
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(groups);
  if (dotted?.[1]) {
    const v4 = ipv4Value(dotted[1]);
    groups = `${groups.slice(0, -dotted[1].length)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head = '', tail] = groups.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const all =
    tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  let value = 0n;
  for (const g of all) value = (value << 16n) | BigInt(parseInt(g, 16));
  return { family: 6, value };
}

function ipv4Value(address: string): bigint {
  return address.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

/** Parses `10.0.0.0/8`, `fd00::/8` or a single address (a /32 or /128). */
export function parseCidr(text: string): Cidr | undefined {
  const [addr = '', prefixText, ...rest] = text.trim().split('/');
  if (rest.length > 0) return undefined;
  const ip = parseIp(addr);
  if (!ip) return undefined;
  const bits = ip.family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? bits : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits) return undefined;
  return { family: ip.family, network: ip.value & mask(bits, prefix), prefix, text: text.trim() };
}

function mask(bits: number, prefix: number): bigint {
  return ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - prefix)) - 1n);
}

function inCidr(ip: { family: 4 | 6; value: bigint }, c: Cidr): boolean {
  return ip.family === c.family && (ip.value & mask(c.family === 4 ? 32 : 128, c.prefix)) === c.network;
}

function cidr(text: string): Cidr {
  const c = parseCidr(text);
  if (!c) throw new Error(`internal: bad built-in range ${text}`);
  return c;
}

/** Ranges that are not the public internet, most specific first (the first match names the reason). */
const INTERNAL: readonly { range: Cidr; reason: string }[] = [
  ['169.254.169.254/32', 'cloud metadata'],
  ['fd00:ec2::254/128', 'cloud metadata'],
  ['0.0.0.0/8', 'unspecified ("this network")'],
  ['10.0.0.0/8', 'private (RFC 1918)'],
  ['100.64.0.0/10', 'carrier-grade NAT (RFC 6598)'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['172.16.0.0/12', 'private (RFC 1918)'],
  ['192.0.0.0/24', 'IETF protocol assignments'],
  ['192.0.2.0/24', 'documentation'],
  ['192.88.99.0/24', '6to4 relay'],
  ['192.168.0.0/16', 'private (RFC 1918)'],
  ['198.18.0.0/15', 'benchmarking'],
  ['198.51.100.0/24', 'documentation'],
  ['203.0.113.0/24', 'documentation'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved'],
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['100::/64', 'discard'],
  ['2001:db8::/32', 'documentation'],
  ['fc00::/7', 'unique local (private)'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'site-local'],
  ['ff00::/8', 'multicast'],
].map(([range, reason]) => ({ range: cidr(range as string), reason: reason as string }));

/** IPv6 forms that carry an IPv4 address, judged as that address: mapped, compatible, NAT64, 6to4. */
function embeddedIpv4(value: bigint): bigint | undefined {
  if (value >> 32n === 0xffffn) return value & 0xffffffffn; // ::ffff:a.b.c.d
  if (value >> 32n === 0n && value > 1n) return value; // ::a.b.c.d (deprecated "compatible")
  if (value >> 32n === 0x64ff9b0000000000000000n) return value & 0xffffffffn; // 64:ff9b::/96
  if (value >> 112n === 0x2002n) return (value >> 80n) & 0xffffffffn; // 2002:AABB:CCDD::/48
  return undefined;
}

/** Why an address is internal, or undefined for a public one. Pure. */
export function internalRange(address: string): string | undefined {
  const ip = parseIp(address);
  if (!ip) return 'not an IP address';
  if (ip.family === 6) {
    const v4 = embeddedIpv4(ip.value);
    if (v4 !== undefined) {
      const inner = internalRange([24n, 16n, 8n, 0n].map((s) => String((v4 >> s) & 0xffn)).join('.'));
      if (inner) return `${inner}, embedded in IPv6`;
    }
  }
  return INTERNAL.find((r) => inCidr(ip, r.range))?.reason;
}

/** Whether a connection to `address` is allowed: public, or internal but inside an allowlisted range. Pure. */
export function mayConnect(address: string, rule: EgressRule): Decision {
  const reason = internalRange(address);
  if (reason === undefined) return { ok: true };
  const ip = parseIp(address);
  if (ip && rule.allowCidrs.some((c) => inCidr(ip, c) || (ip.family === 6 && inEmbedded(ip.value, c))))
    return { ok: true };
  return { ok: false, reason: `${address} is ${reason}` };
}

function inEmbedded(value: bigint, c: Cidr): boolean {
  const v4 = embeddedIpv4(value);
  return v4 !== undefined && inCidr({ family: 4, value: v4 }, c);
}

/** Whether a host (and port) is allowlisted by name: `name` allows every port, `name:port` that port. Pure. */
export function hostAllowed(hostname: string, port: string, rule: EgressRule): boolean {
  const name = unbracket(hostname.toLowerCase());
  return rule.allowHosts.some((h) => {
    const entry = h.toLowerCase();
    return entry === name || entry === `${name}:${port}` || entry === `[${name}]:${port}`;
  });
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** dns.lookup, refusing the answer when any address it returns is not allowed. */
function checkingLookup(rule: EgressRule) {
  return (hostname: string, options: LookupOptions, callback: LookupCallback): void => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      for (const a of addresses) {
        const d = mayConnect(a.address, rule);
        if (!d.ok) return callback(new EgressRefusedError(`${hostname} resolves to ${d.reason}`), []);
      }
      if (options.all) return callback(null, addresses);
      const first = addresses[0];
      if (!first) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), []);
      callback(null, first.address, first.family);
    });
  };
}

/**
 * An undici connector for hosts an upstream sends us to: allowlisted host names connect as usual,
 * anything else only to allowed addresses (IP literals checked before connecting, names through a
 * checking lookup, and the connected socket's peer address after).
 */
export function guardedConnector(rule: EgressRule, options: BuildOptions): Connector {
  const open = buildConnector(options);
  const checked = buildConnector({ ...options, lookup: checkingLookup(rule) } as BuildOptions);
  return (opts, callback) => {
    const hostname = unbracket(opts.hostname);
    if (hostAllowed(hostname, opts.port, rule)) return open(opts, callback);
    if (isIP(hostname)) {
      const d = mayConnect(hostname, rule);
      if (!d.ok) return callback(new EgressRefusedError(d.reason), null);
    }
    checked(opts, (err, socket) => {
      if (err || !socket) return callback(err ?? new Error('no socket'), null);
      const peer = (socket as Socket).remoteAddress;
      const d = peer === undefined ? { ok: false as const, reason: 'no peer address' } : mayConnect(peer, rule);
      if (!d.ok) {
        socket.destroy();
        return callback(new EgressRefusedError(`${opts.hostname} connected to ${d.reason}`), null);
      }
      callback(null, socket);
    });
  };
}

/**
 * An undici connector that only ever connects to one origin: the configured upstream. Anything
 * else reaching it is a bug in how a URL was built, refused rather than followed.
 */
export function originOnlyConnector(origin: URL, options: BuildOptions): Connector {
  const open = buildConnector(options);
  const port = origin.port || (origin.protocol === 'https:' ? '443' : '80');
  return (opts, callback) => {
    const samePort = (opts.port || (opts.protocol === 'https:' ? '443' : '80')) === port;
    if (unbracket(opts.hostname) !== unbracket(origin.hostname) || opts.protocol !== origin.protocol || !samePort)
      return callback(new EgressRefusedError(`${opts.hostname}:${opts.port} is not the upstream ${origin.host}`), null);
    open(opts, callback);
  };
}

function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}
