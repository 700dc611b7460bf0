// The tests that measure the proxy itself (event-loop delay under a signature bomb, RSS at rest,
// socket deadlines): they run after the rest, one file at a time, so what they read is the proxy
// and not the other suites' load on a small machine. package.json's "ava" key runs everything else.
export default {
  extensions: { ts: 'module' },
  files: [
    'test/integration/budgets.test.ts',
    'test/integration/deadlines.test.ts',
    'test/integration/memory-at-rest.test.ts',
    'test/unit/verify/budgets.test.ts',
  ],
  timeout: '120s',
  concurrency: 1,
  workerThreads: false,
};
