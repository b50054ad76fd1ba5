/**
 * An Up or Down that reaches the vm-agent while its own start-up reconcile runs (it finishes or
 * undoes what a killed process left) waits for it instead of being refused as busy: the caller
 * did not start that operation and cannot see it end (found by tools/e2e/crash.netns.test.ts d).
 */
import { HealthSampler } from '@wgctl/agent-kit';
import { silentLogger } from '@wgctl/logging';
import { VmAgentClient, VmAgentService, VmDownRequest } from '@wgctl/proto';
import { connectAgent, createAgentServer, readStream, type AgentServer } from '@wgctl/transport';
import type { VmEngine, VmSample } from '../service/engine/engine';
import { vmAgentHandlers } from '../service/server';

describe('vm-agent: requests during the start-up reconcile', () => {
  let server: AgentServer;
  let client: VmAgentClient;
  let startupDone!: () => void;
  const calls: string[] = [];

  beforeAll(async () => {
    const engine = {
      driverName: 'linux',
      heals: undefined,
      down: async () => {
        calls.push('down');
        return { ok: true, failedStep: '', error: '', totalMs: 1 };
      },
    } as unknown as VmEngine;
    const startup = new Promise<void>((resolve) => (startupDone = resolve));
    server = createAgentServer({ serviceName: 'wgctl.v1.VmAgent', insecure: 'loopback-dev', allowedRoles: ['controller'], logger: silentLogger(), initialHealth: false });
    const sampler = new HealthSampler<VmSample>({ sample: async () => ({ serving: true, reasons: [] }) as unknown as VmSample, verdict: (s) => s, intervalMs: 600_000 });
    server.addService(VmAgentService, vmAgentHandlers(engine, sampler, silentLogger(), startup));
    const target = await server.listen('127.0.0.1:0');
    client = connectAgent(VmAgentClient, target, { insecure: true });
  });

  afterAll(async () => {
    client?.close();
    await server?.shutdown(1000);
  });

  it('a Down waits for the reconcile, then runs (not ABORTED)', async () => {
    const events: unknown[] = [];
    const done = (async () => {
      for await (const p of readStream(client.down(VmDownRequest.fromPartial({})))) events.push(p);
    })();
    await new Promise((r) => setTimeout(r, 200));
    expect(calls).toEqual([]); // still waiting for the reconcile
    startupDone();
    await done;
    expect(calls).toEqual(['down']);
    expect(events.at(-1)).toMatchObject({ kind: { $case: 'outcome', value: { ok: true } } });
  });
});
