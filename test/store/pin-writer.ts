// Child process for the durability test: creates pins as fast as it can and prints each one the
// store acknowledged, until it is killed.
import { openStore } from '../../src/store/open.ts';

const store = await openStore({ kind: 'sqlite', path: process.argv[2]! });
for (let i = 0; i < 100_000; i++) {
  await store.createPin({ upstream: 'r', repository: 'app', tag: `t${i}`, digest: `sha256:${String(i).padStart(64, '0')}`, rule: 'default', attestors: [] });
  await store.appendAudit({ kind: 'pin', actor: 'writer', tag: `t${i}` });
  process.stdout.write(`t${i}\n`);
}
