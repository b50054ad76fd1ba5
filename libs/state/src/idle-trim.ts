/**
 * Gives memory back after a burst of work (an Up, a Down, a health sample). V8 keeps the
 * garbage of a burst, and the young generation it grew for it, until its memory reducer
 * runs — for a small idle heap that may be much later: an agent then idles ~15-20 MiB
 * above its need (docs/BENCHMARKS.md #7). Both agents start it. A full collection when the heap has grown since
 * the last one returns it; an idle agent's heap does not grow, so it costs nothing then.
 *
 * Node 20 has no API to start a collection without `--expose-gc` on the command line; the
 * flag can be turned on for the moment it takes to fetch `gc` from a fresh context.
 */
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export interface IdleTrimOptions {
  /** How often the heap size is looked at (a cheap read). */
  checkEveryMs?: number;
  /** Growth of the heap since the last collection that is worth one. */
  growthBytes?: number;
  /** Called after each collection (tests). */
  onTrim?: () => void;
  /** The heap size to watch (tests); default V8's total heap size. */
  heapBytes?: () => number;
}

function fullCollector(): (() => void) | undefined {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (existing) return existing;
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}

/** Starts the trimming; returns its stop function. Does nothing where `gc` is out of reach. */
export function startIdleTrim(options: IdleTrimOptions = {}): () => void {
  const gc = fullCollector();
  if (!gc) return () => undefined;
  const growth = options.growthBytes ?? 4 * 1024 * 1024;
  const heapBytes = options.heapBytes ?? (() => getHeapStatistics().total_heap_size);
  let baseline = 0; // the first look also returns what start-up left
  const timer = setInterval(() => {
    if (heapBytes() - baseline < growth) return;
    gc();
    baseline = heapBytes();
    options.onTrim?.();
  }, options.checkEveryMs ?? 5_000);
  timer.unref();
  return () => clearInterval(timer);
}
