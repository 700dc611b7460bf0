// V8 collects garbage when allocation asks for it, not when the process goes quiet. The chunk
// buffers a blob transfer leaves behind live outside the JavaScript heap, so nothing asks: after a
// burst of pulls they stayed allocated (tens of MiB of RSS) until the next burst. Once the proxy
// has been quiet for a while after serving something, one full collection hands them back. It runs
// only while idle, so its pause (tens of milliseconds) meets no request.
import { exposedGc } from '../util/exposed-gc.ts';

export interface IdleCollector {
  /** Something happened (a request): the next quiet spell ends with a collection. */
  touch(): void;
  stop(): void;
}

/** `release` lets go of what is only kept for reuse (spare buffers) just before the collection. */
export function startIdleCollector(
  quietMs: number,
  onCollect?: (ms: number) => void,
  release?: () => void | Promise<void>,
): IdleCollector {
  const gc = exposedGc();
  let lastTouch = 0;
  let dirty = false;
  const timer = setInterval(() => {
    if (!gc || !dirty || Date.now() - lastTouch < quietMs) return;
    dirty = false;
    // What is let go (a worker's whole heap) must be gone before the collection and the reading.
    void Promise.resolve(release?.())
      .catch(() => undefined)
      .then(() => {
        const t0 = performance.now();
        gc();
        onCollect?.(performance.now() - t0);
      });
  }, quietMs);
  timer.unref();
  return {
    touch() {
      lastTouch = Date.now();
      dirty = true;
    },
    stop() {
      clearInterval(timer);
    },
  };
}
