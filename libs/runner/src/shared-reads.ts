/**
 * One read for several readers: two parts of a check that both read the routing table (say)
 * share one command instead of running it twice.
 */
import type { RunOptions, RunResult, Runner } from './runner';

/**
 * Runs each distinct read-only command once and hands every later identical read the same
 * result (the same promise: a failure too). Mutating commands, and reads fed stdin, always run.
 * Meant for one burst of reads (one check), not to live on: nothing is ever read again.
 */
export class SharedReadRunner implements Runner {
  private readonly reads = new Map<string, Promise<RunResult>>();

  constructor(private readonly inner: Runner) {}

  run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    if (!options.readOnly || options.input !== undefined) return this.inner.run(argv, options);
    // The options that decide whether a result throws are part of what makes two reads the same.
    const key = JSON.stringify([argv, options.allowFailure ?? false, options.okExitCodes ?? []]);
    let read = this.reads.get(key);
    if (!read) {
      read = this.inner.run(argv, options);
      this.reads.set(key, read);
    }
    return read;
  }
}
