/**
 * An agent's Up or Down asked for while another runs: refused at once (gRPC ABORTED), never
 * queued — a second controller must not silently redo or undo the first one's work.
 */
export class BusyError extends Error {
  constructor(
    readonly running: string,
    readonly sinceMs: number,
  ) {
    super(`another ${running} is in progress (started ${new Date(sinceMs).toISOString()}); wait for it to finish and retry`);
    this.name = 'BusyError';
  }
}
