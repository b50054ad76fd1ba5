import { startIdleTrim } from '../idle-trim';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('startIdleTrim', () => {
  it('collects once after the heap grew, then not while it stays put', async () => {
    let trims = 0;
    const stop = startIdleTrim({ checkEveryMs: 20, growthBytes: 4 * 1024 * 1024, onTrim: () => trims++ });
    try {
      await sleep(100); // the first look collects what start-up left
      const afterStart = trims;
      expect(afterStart).toBe(1);
      await sleep(150); // nothing allocated: nothing collected
      expect(trims).toBe(afterStart);
      // A burst of work: garbage the heap grows for.
      const keep: number[][] = [];
      for (let i = 0; i < 400; i++) keep.push(new Array(10_000).fill(i));
      keep.length = 0;
      await sleep(150);
      expect(trims).toBeGreaterThan(afterStart);
    } finally {
      stop();
    }
  });

  it('leaves the expose-gc flag as it found it', () => {
    const stop = startIdleTrim({ checkEveryMs: 60_000 });
    stop();
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
  });
});
