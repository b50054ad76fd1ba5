/**
 * The caller of an Up or Down gets the end of its call (the trailers) before the status sample
 * that follows begins: that sample spawns its reads synchronously (fork/exec), and begun too
 * early it held the end of the VM's Up back — while `wgctl up` waits for it to start the Mac's
 * Up. Here the sample blocks the agent's event loop for BLOCK_MS, as many spawns would; the
 * client runs in a worker thread (its own event loop) and measures the time from the call's
 * last message (its outcome) to its status. (The mac-agent's twin: apps/mac-agent.)
 */
import { HealthSampler, type OperationOutcome } from '@wgctl/agent-kit';
import { busyWait, timeStreamEnd } from '@wgctl/agent-kit/testing';
import { silentLogger } from '@wgctl/logging';
import { Progress, VmAgentService, VmDownRequest } from '@wgctl/proto';
import { createAgentServer, type AgentServer } from '@wgctl/transport';
import type { VmEngine } from '../service/engine/engine';
import type { VmSample } from '../service/engine/sample';
import { vmAgentHandlers } from '../service/server';

const BLOCK_MS = 600;



describe('the end of a Down reaches the caller before the status sample after it begins (vm-agent)', () => {
  let server: AgentServer;

  afterEach(async () => {
    await server?.shutdown(0);
  });

  it(`the call ends within ${BLOCK_MS / 3} ms of the outcome though the sample then holds the agent ${BLOCK_MS} ms`, async () => {
    const outcome: OperationOutcome = { ok: true, failedStep: '', error: '', totalMs: 1 };
    // Only what the Down handler uses: the engine is not under test here, the order of reply and sample is.
    const engine = { down: async () => outcome } as unknown as VmEngine;
    let samples = 0;
    const sampler = new HealthSampler<VmSample>({
      sample: async () => {
        if (++samples > 1) busyWait(BLOCK_MS);
        return { status: {} as VmSample['status'], serving: true, reasons: [], sampledAtMs: Date.now() };
      },
      verdict: (sample) => sample,
      intervalMs: 600_000,
    });
    await sampler.refresh();
    server = createAgentServer({ serviceName: 'wgctl.v1.VmAgent', insecure: 'loopback-dev', allowedRoles: ['controller'], logger: silentLogger() });
    server.addService(VmAgentService, vmAgentHandlers(engine, sampler));
    const target = await server.listen('127.0.0.1:0');
    const request = VmDownRequest.encode(VmDownRequest.fromPartial({})).finish();
    const result = await timeStreamEnd({ grpcPath: require.resolve('@grpc/grpc-js'), target, method: '/wgctl.v1.VmAgent/Down', request });
    for (let waited = 0; samples < 2 && waited < 2_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
    expect(result.code).toBe(0);
    expect(Progress.decode(result.messages[result.messages.length - 1]!).kind).toMatchObject({ $case: 'outcome', value: { ok: true } });
    expect(samples).toBe(2); // the sample after the Down did run (and hold the loop)
    expect(result.gapMs).toBeLessThan(BLOCK_MS / 3);
  });
});
