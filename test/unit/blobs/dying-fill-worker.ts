// A fill thread that dies on its first fill, the first time one is started (a marker file in
// the test's temporary directory remembers); every later thread is the real one.
// fill-thread.test.ts checks what the main thread does then.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort } from 'node:worker_threads';

// The test names the directory in the environment, which a worker inherits.
const marker = join(process.env.DYING_FILL_WORKER_DIR ?? '.', 'died-once');
if (existsSync(marker)) {
  await import('../../../src/blobs/fill-worker.ts');
} else {
  writeFileSync(marker, '');
  parentPort?.once('message', () => process.exit(3));
}
