// Runs in a worker thread: bcrypt comparisons are CPU work (tens to hundreds of milliseconds
// each in JavaScript) that must never run on the proxy's event loop.
import { parentPort } from 'node:worker_threads';
import bcrypt from 'bcryptjs';

interface Job {
  id: number;
  password: string;
  hash: string;
}

parentPort?.on('message', (job: Job) => {
  let ok = false;
  try {
    ok = bcrypt.compareSync(job.password, job.hash);
  } catch {
    ok = false;
  }
  parentPort?.postMessage({ id: job.id, ok });
});
