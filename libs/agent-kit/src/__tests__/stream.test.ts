/**
 * The Up/Down stream handler both agents serve (moved here with the code from
 * apps/vm-agent/src/__tests__/service-stream-end.test.ts): steps then the Outcome, refusals
 * as statuses, a cancel aborting the operation, and the sample after a change waiting for the
 * end of the call.
 */
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { StepState, type Progress } from '@wgctl/proto';
import type { StepRecord } from '@wgctl/runner';
import { BusyError, InvalidRequestError, StoppingError, type OperationContext, type OperationOutcome } from '..';
import { outcomeProgress, stepProgress, streamOperation, type OperationCall } from '../grpc';

/** A server stream as the handler sees it: writes are collected; end() finishes on a later tick, as in grpc-js. */
function fakeCall(deadline: Date | number = Infinity): { call: OperationCall & { cancelled: boolean }; written: Progress[] } {
  const written: Progress[] = [];
  const stream = new Writable({
    objectMode: true,
    write(chunk: Progress, _encoding, callback) {
      written.push(chunk);
      callback();
    },
  });
  const call = Object.assign(stream, { request: {}, cancelled: false, getDeadline: () => deadline });
  return { call: call as unknown as OperationCall & { cancelled: boolean }, written };
}

const step = (name: string, state: StepRecord['state']): StepRecord => ({ step: name, state, message: '', commands: [], elapsedMs: 1.4 });
const outcome: OperationOutcome = { ok: true, failedStep: '', error: '', totalMs: 5 };
const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

describe('streamOperation', () => {
  it('streams each step, then the Outcome, then ends; the sample after the change starts only once the stream has finished, once', async () => {
    const order: string[] = [];
    const { call, written } = fakeCall();
    call.on('finish', () => order.push('finish'));
    await streamOperation(
      call,
      async ({ onStep }) => {
        onStep?.(step('read-config', 'started'));
        onStep?.(step('read-config', 'done'));
        return outcome;
      },
      () => order.push('sample'),
    );
    // The handler has returned and called end(); the sample has not started yet.
    expect(written).toEqual([stepProgress(step('read-config', 'started')), stepProgress(step('read-config', 'done')), outcomeProgress(outcome)]);
    expect(order).toEqual([]);
    await tick();
    expect(order).toEqual(['finish', 'sample']);
  });

  it('an operation that throws: the error goes to the transport, the sample runs once the transport has ended the call', async () => {
    const afterwards = jest.fn();
    const { call } = fakeCall();
    await expect(streamOperation(call, async () => Promise.reject(new Error('journal unreadable')), afterwards)).rejects.toThrow('journal unreadable');
    expect(afterwards).not.toHaveBeenCalled();
    call.end(); // what the transport does with the error
    await tick();
    expect(afterwards).toHaveBeenCalledTimes(1);
  });

  it.each([
    ['a bad request', new InvalidRequestError(['mac_source: required']), grpc.status.INVALID_ARGUMENT],
    ['another operation running', new BusyError('Up', Date.now()), grpc.status.ABORTED],
    ['the agent stopping', new StoppingError('vm-agent', 'SIGTERM'), grpc.status.UNAVAILABLE],
  ])('refuses %s with its status, and samples nothing: nothing ran', async (_what, refusal, code) => {
    const afterwards = jest.fn();
    const { call } = fakeCall();
    await expect(
      streamOperation(
        call,
        () => {
          throw refusal;
        },
        afterwards,
      ),
    ).rejects.toMatchObject({ code, details: refusal.message });
    call.end();
    await tick(1_100); // past the wait for the end of a failed call
    expect(afterwards).not.toHaveBeenCalled();
  });

  it('a caller that cancels aborts the operation: its signal fires, nothing more is written', async () => {
    const { call, written } = fakeCall();
    let ctx: OperationContext = {};
    let cancel!: () => void;
    const cancelled = new Promise<void>((resolve) => (cancel = resolve));
    const done = streamOperation(
      call,
      async (given) => {
        ctx = given;
        given.onStep?.(step('discover', 'done'));
        await cancelled;
        given.onStep?.(step('kill-switch', 'started'));
        return { ok: false, failedStep: 'kill-switch', error: 'cancelled before kill-switch', totalMs: 3 };
      },
      () => undefined,
    );
    expect(ctx.signal?.aborted).toBe(false);
    call.cancelled = true;
    call.emit('cancelled');
    expect(ctx.signal?.aborted).toBe(true);
    cancel();
    await done;
    expect(written.map((p) => p.kind?.$case)).toEqual(['step']);
  });

  it('hands the call deadline to the operation', async () => {
    const deadline = new Date(Date.now() + 30_000);
    let seen: number | undefined;
    await streamOperation(
      fakeCall(deadline).call,
      async ({ deadlineMs }) => {
        seen = deadlineMs;
        return outcome;
      },
      () => undefined,
    );
    expect(seen).toBe(deadline.getTime());
  });
});

describe('Progress from the engines', () => {
  it('maps each step state and rounds durations to the whole milliseconds int64 carries', () => {
    const record: StepRecord = { step: 'verify', state: 'failed', message: 'm', elapsedMs: 12.6, commands: [{ argv: ['ip', 'link'], exitCode: 1, stderr: 'e', dryRun: false, durationMs: 3.49 }] };
    expect(stepProgress(record)).toEqual({
      kind: {
        $case: 'step',
        value: { step: 'verify', state: StepState.STEP_STATE_FAILED, message: 'm', elapsedMs: '13', commands: [{ argv: ['ip', 'link'], exitCode: 1, stderr: 'e', dryRun: false, durationMs: '3' }] },
      },
    });
    expect((['started', 'done', 'skipped'] as const).map((state) => (stepProgress(step('x', state)).kind as { value: { state: StepState } }).value.state)).toEqual([
      StepState.STEP_STATE_STARTED,
      StepState.STEP_STATE_DONE,
      StepState.STEP_STATE_SKIPPED,
    ]);
  });

  it('carries what a vm-agent Up applied in the Outcome, and nothing for any other operation', () => {
    const vmApplied = { endpoints: [{ host: 'vpn.example.net', ip: '203.0.113.1', port: 51820 }], tunnelAddresses: ['192.0.2.2/24'] };
    expect(outcomeProgress({ ...outcome, totalMs: 7.5, vmApplied })).toEqual({ kind: { $case: 'outcome', value: { ok: true, failedStep: '', error: '', totalMs: '8', vmApplied, notRestored: [] } } });
    expect(outcomeProgress(outcome).kind).toMatchObject({ value: { vmApplied: undefined } });
  });

  it('carries what a Down without a usable journal could not restore (Outcome.not_restored)', () => {
    const notRestored = ['net.ipv4.ip_forward=1 left as it is'];
    expect(outcomeProgress({ ...outcome, notRestored }).kind).toMatchObject({ value: { ok: true, notRestored } });
  });
});
