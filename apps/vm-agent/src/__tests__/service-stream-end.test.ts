/**
 * After an Up or Down the health sampler samples again (health changes with them), but only
 * once the answer is out: a sample spawns processes, and doing that right after call.end()
 * held back the flush of the Outcome and the status.
 */
import { Writable } from 'node:stream';
import type * as grpc from '@grpc/grpc-js';
import type { Outcome, Progress } from '@wgctl/proto';
import type { OperationContext, VmEngine } from '../engine';
import { BusyError } from '@wgctl/state';
import type { HealthSampler } from '../health';
import { vmAgentHandlers } from '../service';

/** A server stream as the handler sees it: writes are collected; end() finishes on a later tick, as in grpc-js. */
function fakeCall(): { call: grpc.ServerWritableStream<unknown, Progress>; written: Progress[] } {
  const written: Progress[] = [];
  const stream = new Writable({
    objectMode: true,
    write(chunk: Progress, _encoding, callback) {
      written.push(chunk);
      callback();
    },
  });
  const call = Object.assign(stream, {
    request: { macSource: '198.51.100.2', lanInterface: '', dryRun: false, handshakeTimeoutMs: 0 },
    cancelled: false,
    getDeadline: () => Infinity,
  });
  return { call: call as unknown as grpc.ServerWritableStream<unknown, Progress>, written };
}

const outcome: Outcome = { ok: true, failedStep: '', error: '', totalMs: '5' };

describe('vm-agent handlers: the sample after Up/Down waits for the end of the stream', () => {
  it('samples only after the stream has finished, and then exactly once', async () => {
    const order: string[] = [];
    const engine = {
      up: async (_request: unknown, ctx: OperationContext) => {
        ctx.emit?.({ kind: { $case: 'outcome', value: outcome } });
        return outcome;
      },
    } as unknown as VmEngine;
    const sampler = { refreshAfterChange: jest.fn(async () => void order.push('sample')) } as unknown as HealthSampler;
    const { call, written } = fakeCall();
    call.on('finish', () => order.push('finish'));
    await (vmAgentHandlers(engine, sampler).up as (c: unknown) => Promise<void>)(call);
    // The handler has returned and called end(); the sample has not started yet.
    expect(written).toEqual([{ kind: { $case: 'outcome', value: outcome } }]);
    expect(sampler.refreshAfterChange).not.toHaveBeenCalled();
    await new Promise((r) => setTimeout(r, 20));
    expect(order).toEqual(['finish', 'sample']);
    expect(sampler.refreshAfterChange).toHaveBeenCalledTimes(1);
  });

  it('still samples when the operation failed (the transport ends the call with the error)', async () => {
    const engine = {
      down: async () => {
        throw new BusyError('Up', Date.now());
      },
    } as unknown as VmEngine;
    const sampler = { refreshAfterChange: jest.fn(async () => undefined) } as unknown as HealthSampler;
    const { call } = fakeCall();
    await expect((vmAgentHandlers(engine, sampler).down as (c: unknown) => Promise<void>)(call)).rejects.toMatchObject({ code: 10 });
    expect(sampler.refreshAfterChange).not.toHaveBeenCalled();
    call.end(); // what the transport does with the mapped error
    await new Promise((r) => setTimeout(r, 20));
    expect(sampler.refreshAfterChange).toHaveBeenCalledTimes(1);
  });
});
