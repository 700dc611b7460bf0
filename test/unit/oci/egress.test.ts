import test from 'ava';
import { hostAllowed, internalRange, mayConnect, NO_EXCEPTIONS, parseCidr, parseIp } from '../../../src/oci/egress.ts';

const INTERNAL: [string, RegExp][] = [
  ['127.0.0.1', /loopback/],
  ['127.255.3.4', /loopback/],
  ['::1', /loopback/],
  ['[::1]', /loopback/],
  ['0.0.0.0', /unspecified/],
  ['::', /unspecified/],
  ['10.1.2.3', /private/],
  ['172.16.0.1', /private/],
  ['172.31.255.255', /private/],
  ['192.168.1.1', /private/],
  ['100.64.0.1', /carrier-grade NAT/],
  ['100.127.255.254', /carrier-grade NAT/],
  ['169.254.169.254', /cloud metadata/],
  ['169.254.1.1', /link-local/],
  ['fd00:ec2::254', /cloud metadata/],
  ['fe80::1', /link-local/],
  ['fe80::1%eth0', /link-local/],
  ['fc00::1', /unique local/],
  ['fdff:ffff::1', /unique local/],
  ['224.0.0.1', /multicast/],
  ['239.255.255.250', /multicast/],
  ['ff02::1', /multicast/],
  ['255.255.255.255', /reserved/],
  ['::ffff:127.0.0.1', /loopback, embedded in IPv6/],
  ['::ffff:7f00:1', /loopback, embedded in IPv6/],
  ['::ffff:169.254.169.254', /cloud metadata, embedded/],
  ['::ffff:10.0.0.1', /private.*embedded/],
  ['::127.0.0.1', /loopback, embedded/],
  ['64:ff9b::10.0.0.1', /private.*embedded/],
  ['2002:7f00:1::', /loopback, embedded/],
  ['2001:db8::1', /documentation/],
  ['not-an-ip', /not an IP address/],
];

const PUBLIC = ['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '9.9.9.9'];

test('internal addresses are refused, each naming its range', (t) => {
  for (const [address, reason] of INTERNAL) {
    const d = mayConnect(address, NO_EXCEPTIONS);
    t.false(d.ok, address);
    if (!d.ok) t.regex(d.reason, reason, address);
    t.regex(internalRange(address) ?? '', reason, address);
  }
});

test('public addresses are allowed', (t) => {
  for (const address of PUBLIC) t.deepEqual(mayConnect(address, NO_EXCEPTIONS), { ok: true }, address);
});

test('an allowlisted range lets its internal addresses through, mapped forms included, and nothing else', (t) => {
  const rule = { allowHosts: [], allowCidrs: [parseCidr('10.20.0.0/16')!, parseCidr('fd12::/16')!] };
  t.true(mayConnect('10.20.5.6', rule).ok);
  t.true(mayConnect('::ffff:10.20.5.6', rule).ok);
  t.true(mayConnect('fd12:1::5', rule).ok);
  t.false(mayConnect('10.21.0.1', rule).ok);
  t.false(mayConnect('127.0.0.1', rule).ok);
  t.false(mayConnect('169.254.169.254', rule).ok);
  const single = { allowHosts: [], allowCidrs: [parseCidr('127.0.0.1')!] };
  t.true(mayConnect('127.0.0.1', single).ok);
  t.false(mayConnect('127.0.0.2', single).ok);
});

test('CIDR and address parsing', (t) => {
  t.deepEqual(parseIp('1.2.3.4'), { family: 4, value: 0x01020304n });
  t.deepEqual(parseIp('::1'), { family: 6, value: 1n });
  t.deepEqual(parseIp('1::'), { family: 6, value: 1n << 112n });
  t.deepEqual(parseIp('::ffff:1.2.3.4'), parseIp('::ffff:102:304'));
  t.is(parseIp('1.2.3'), undefined);
  t.is(parseIp('example.com'), undefined);
  t.is(parseCidr('10.0.0.0/8')?.prefix, 8);
  t.is(parseCidr('10.1.2.3/8')?.network, 10n << 24n, 'host bits are masked off');
  t.is(parseCidr('::/0')?.prefix, 0);
  for (const bad of ['10.0.0.0/33', '::/129', '10.0.0.0/x', '10.0.0.0/8/1', 'host/8', ''])
    t.is(parseCidr(bad), undefined, bad);
});

test('host allowlist: a bare name allows every port, host:port only that port', (t) => {
  const rule = { allowHosts: ['storage.internal', 'auth.internal:8443', '[fd00::1]:9000'], allowCidrs: [] };
  t.true(hostAllowed('storage.internal', '443', rule));
  t.true(hostAllowed('STORAGE.internal', '9000', rule));
  t.true(hostAllowed('auth.internal', '8443', rule));
  t.false(hostAllowed('auth.internal', '443', rule));
  t.true(hostAllowed('[fd00::1]', '9000', rule));
  t.false(hostAllowed('evil.storage.internal', '443', rule));
});
