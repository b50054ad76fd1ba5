/**
 * Independent reads side by side: a step that needs several read-only commands takes as long
 * as the slowest, not the sum (each process costs a few ms; a macOS `networksetup` tens).
 *
 * Unlike Promise.all, every read is waited for even when one fails: no command outlives the
 * step that started it (its argv belongs in that step's event). The error thrown is the first
 * failure in the order the reads were given, so the result does not depend on timing.
 */

/** Awaits reads already started, in a fixed order (an array literal): the commands start in that order. */
export async function readTogether<T extends readonly unknown[] | []>(
  reads: T,
): Promise<{ -readonly [K in keyof T]: Awaited<T[K]> }> {
  const settled = await Promise.allSettled(reads);
  for (const result of settled) if (result.status === 'rejected') throw result.reason;
  return settled.map((result) => (result as PromiseFulfilledResult<unknown>).value) as { -readonly [K in keyof T]: Awaited<T[K]> };
}

/**
 * `read` over every item, at most `limit` at a time, started in the items' order; results in
 * that order. Waits for all before throwing the first failure (in item order), as readTogether.
 */
export async function mapTogether<I, R>(items: readonly I[], read: (item: I, index: number) => Promise<R>, options: { limit?: number } = {}): Promise<R[]> {
  const limit = Math.max(1, options.limit ?? items.length);
  const settled: PromiseSettledResult<R>[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      try {
        settled[index] = { status: 'fulfilled', value: await read(items[index] as I, index) };
      } catch (reason) {
        settled[index] = { status: 'rejected', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  for (const result of settled) if (result.status === 'rejected') throw result.reason;
  return settled.map((result) => (result as PromiseFulfilledResult<R>).value);
}
