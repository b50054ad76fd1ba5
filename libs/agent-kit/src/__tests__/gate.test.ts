/**
 * The operation gate and the guarded step runner: one Up/Down at a time, refusals that name
 * the running one or the stop, and an operation that only ever ends between two steps.
 */
import { ScriptedRunner, StepFailedError, type StepRecord } from '@wgctl/runner';
import { BusyError, CancelledError, GuardedStepRunner, OperationGate, StoppingError, stepCause } from '..';

const deferred = () => {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
};

describe('OperationGate', () => {
  it('runs one operation at a time: a second is refused at once (synchronously) naming the first; after it, the next one runs', async () => {
    const gate = new OperationGate('mac-agent', () => Date.parse('2026-01-02T03:04:05Z'));
    const held = deferred();
    const first = gate.run('Up', () => held.promise.then(() => 'up done'));
    expect(gate.running).toEqual({ op: 'Up', sinceMs: Date.parse('2026-01-02T03:04:05Z') });
    const started = jest.fn(async () => 'never');
    expect(() => gate.run('Down', started)).toThrow(new BusyError('Up', Date.parse('2026-01-02T03:04:05Z')));
    expect(() => gate.run('Down', started)).toThrow('another Up is in progress (started 2026-01-02T03:04:05.000Z); wait for it to finish and retry');
    expect(started).not.toHaveBeenCalled();
    held.resolve();
    expect(await first).toBe('up done');
    expect(gate.running).toBeNull();
    expect(await gate.run('Down', async () => 'down done')).toBe('down done');
  });

  it('is free again after an operation that failed, or that threw before returning its promise', async () => {
    const gate = new OperationGate('vm-agent');
    await expect(gate.run('Up', async () => Promise.reject(new Error('broken')))).rejects.toThrow('broken');
    expect(() =>
      gate.run('Up', () => {
        throw new Error('bad argument');
      }),
    ).toThrow('bad argument');
    expect(gate.running).toBeNull();
  });

  it('stop(): refuses new work, resolves once the operation in flight has ended', async () => {
    const gate = new OperationGate('vm-agent');
    const held = deferred();
    const inFlight = gate.run('Up', () => held.promise);
    let stopped = false;
    const stopping = gate.stop('SIGTERM').then(() => (stopped = true));
    expect(gate.stopping).toBe(true);
    expect(() => gate.run('Down', async () => undefined)).toThrow('the vm-agent is stopping (SIGTERM): no new Up or Down; try again once it has restarted');
    expect(() => gate.checkStop('firewall-nat')).toThrow(StoppingError);
    await new Promise((r) => setTimeout(r, 10));
    expect(stopped).toBe(false);
    held.resolve();
    await inFlight;
    await stopping;
    expect(stopped).toBe(true);
  });
});

describe('GuardedStepRunner', () => {
  const setup = (options: { signal?: AbortSignal; stallAfterStep?: string } = {}) => {
    const gate = new OperationGate('mac-agent');
    const records: StepRecord[] = [];
    const steps = new GuardedStepRunner(new ScriptedRunner([]), (r) => records.push(r), { gate, ...options });
    const ran: string[] = [];
    const run = (name: string) => steps.step(name, async () => (ran.push(name), 'ok'));
    return { gate, steps, records, ran, run };
  };

  it('a stop ends the operation before its next step, naming it; the step in flight finishes', async () => {
    const { gate, ran, run } = setup();
    await run('discover');
    const stop = gate.stop('SIGTERM');
    await expect(run('kill-switch')).rejects.toThrow(
      'the mac-agent is stopping (SIGTERM): it finished its current step and stopped before kill-switch; its journal keeps what was applied',
    );
    await stop;
    expect(ran).toEqual(['discover']);
  });

  it('a cancel ends the operation before its next step; after ignoreCancel (a rollback) the steps run to the end', async () => {
    const cancel = new AbortController();
    const { steps, ran, run } = setup({ signal: cancel.signal });
    await run('read-config');
    cancel.abort();
    const ended = await run('firewall-filter').catch((e: unknown) => e);
    expect(ended).toEqual(new CancelledError('firewall-filter'));
    expect((ended as Error).message).toBe('cancelled before firewall-filter: the caller went away or its deadline passed');
    expect(() => steps.checkpoint()).toThrow(CancelledError);
    steps.ignoreCancel();
    await run('rollback-firewall-filter');
    expect(ran).toEqual(['read-config', 'rollback-firewall-filter']);
  });

  it('the stall hook holds after its step until the agent stops, or until the caller goes away', async () => {
    const stalled = setup({ stallAfterStep: 'kill-switch' });
    let done = false;
    const held = stalled.run('kill-switch').then(() => (done = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(done).toBe(false);
    void stalled.gate.stop('SIGTERM');
    await held;

    const cancel = new AbortController();
    const cancelled = setup({ stallAfterStep: 'kill-switch', signal: cancel.signal });
    const heldToo = cancelled.run('kill-switch');
    cancel.abort();
    await heldToo;
    await expect(cancelled.run('pin-endpoint')).rejects.toThrow(CancelledError);
  });

  it('what a step threw is found under the StepFailedError that names the step', async () => {
    const { steps } = setup();
    const failed = await steps.step('verify', async () => Promise.reject(new RangeError('missing route'))).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(StepFailedError);
    expect(stepCause(failed)).toEqual(new RangeError('missing route'));
    expect(stepCause('plain')).toBe('plain');
  });
});
