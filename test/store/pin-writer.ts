// Child process for the durability test: creates pins (each with an audit record) as fast as it can
// and prints each one the store acknowledged, until it is killed. Arguments: database path, tag prefix.
import { openStore } from '../../src/store/open.ts';

const [path, prefix] = process.argv.slice(2);
if (!path || !prefix) throw new Error('usage: pin-writer.ts <database path> <tag prefix>');
const store = await openStore({ kind: 'sqlite', path });
for (let i = 0; i < 100_000; i++) {
  const tag = `${prefix}${i}`;
  await store.createPin({
    upstream: 'r',
    repository: 'app',
    tag,
    digest: `sha256:${String(i).padStart(64, '0')}`,
    rule: 'default',
    attestors: [],
  });
  await store.appendAudit({ kind: 'pin', actor: 'writer', tag });
  process.stdout.write(`${tag}\n`);
}
