import test from 'ava';
import { placeholderMarker } from '../../../src/config/placeholder.ts';

test('placeholders: the shipped REPLACE values and the change-me family are recognised', (t) => {
  const cases: [string, string][] = [
    ['REPLACE-with-the-output-of-openssl-rand-hex-32', 'replace'],
    ['REPLACE-postgres://pullgate:PASSWORD@postgres.example.internal:5432/pullgate', 'replace'],
    ['change-me', 'changeme'],
    ['changeme-changeme', 'changeme'],
    ['CHANGE_ME_PLEASE_1234', 'changeme'],
    ['please-change-me-now', 'changeme'],
    ['replace-me-0123456789', 'replace'],
    ['admin-token-replace-me', 'replaceme'],
    ['placeholder-token-123', 'placeholder'],
    ['example-admin-token-1', 'example'],
    ['my-example-secret', 'example'],
    ['<your admin token here>', '<…>'],
    ['your-token-here-0123', 'yourtoken'],
    ['<admin-token-0123456789>', '<…>'],
    ['insert-your-token-here', 'insertyour'],
    ['dummy-dummy-dummy-123', 'dummy'],
    ['xxxxxxxxxxxxxxxxxxxx', 'xxx…'],
    ['0000000000000000', '000…'],
  ];
  for (const [value, marker] of cases) t.is(placeholderMarker(value), marker, value);
});

test('real secrets pass: random tokens, test tokens, real URLs and user names', (t) => {
  for (const value of [
    'f3b1c9e0a7d2486b9c1e5f0a3d7b2c8e4f6a1b3c5d7e9f0a2b4c6d8e0f1a3b5c',
    'cli-admin-token-0123456789',
    'quickstart-admin-token',
    'Zk3p9QmV2xL8rT4wYb6N',
    'postgres://pullgate:s3cr3t@db.internal:5432/pullgate',
    'robot$acme+pull',
  ])
    t.is(placeholderMarker(value), undefined, value);
});
