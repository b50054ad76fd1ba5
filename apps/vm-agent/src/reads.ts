/**
 * Independent reads run side by side: a step that needs three read-only commands takes as
 * long as the slowest, not the sum (each process costs 3–7 ms).
 *
 * Unlike Promise.all, every read is waited for even when one fails: no command outlives the
 * step that started it (its argv belongs in that step's event). The error thrown is the
 * first failure in the order the reads were given, so the result does not depend on timing.
 * Pass the promises in a fixed order (an array literal): the commands start in that order.
 */
export async function readTogether<T extends readonly unknown[] | []>(
  reads: T,
): Promise<{ -readonly [K in keyof T]: Awaited<T[K]> }> {
  const settled = await Promise.allSettled(reads);
  for (const result of settled) if (result.status === 'rejected') throw result.reason;
  return settled.map((result) => (result as PromiseFulfilledResult<unknown>).value) as { -readonly [K in keyof T]: Awaited<T[K]> };
}
