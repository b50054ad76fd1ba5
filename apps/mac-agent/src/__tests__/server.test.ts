/**
 * The gRPC wiring in-process, on an in-memory host (no root): health answered from the
 * sampler without touching the host, Up/Down streamed as Progress, mTLS on TCP for the
 * controller role only.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { silentLogger } from '@wgctl/logging';
import { MacAgentClient, MacDownRequest, MacUpRequest, StatusRequest, StepState, type MacStatus, type Progress } from '@wgctl/proto';
import { connectAgent, createPki, healthCheck, loadTlsMaterial, readStream, unaryCall } from '@wgctl/transport';
import type { AgentOptions } from '../options';
import { startAgent, type RunningAgent } from '../run';
import { ConcurrencyGate } from '../testing/concurrency-gate';
import { FakeDriver, fakeHost } from '../testing/fake-host';

describe('mac-agent gRPC service (in-process, in-memory host)', () => {
  let dir: string;
  let driver: FakeDriver;
  let agent: RunningAgent;
  const options = (listen: string, tlsDir?: string): AgentOptions => ({
    driver: 'linux',
    listen,
    tlsDir,
    stateDir: join(dir, 'state'),
    logLevel: 'error',
    dnsResolvConf: join(dir, 'resolv.conf'),
    dnsMode: 'resolv-conf',
  });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wtm-srv-'));
    driver = new FakeDriver(fakeHost());
  });
  afterEach(async () => {
    await agent?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('health never touches the host; Up and Down stream steps then an outcome; Status reads back', async () => {
    // No self-healing here: the host is broken on purpose below for the sample to see it.
    agent = await startAgent(options(`unix:${join(dir, 'a.sock')}`), { driver, logger: silentLogger(), sampleIntervalMs: 60_000, engine: { healCheckMs: 0 } });
    const target = `unix:${join(dir, 'a.sock')}`;
    await agent.sampler.refresh();
    const before = driver.calls.length;
    for (let i = 0; i < 30; i++) {
      expect(await healthCheck(target, { insecure: true }, i % 2 ? '' : 'wgctl.v1.MacAgent')).toBe('SERVING');
    }
    expect(driver.calls.length).toBe(before);

    const client = connectAgent(MacAgentClient, target, { insecure: true });
    const events: Progress[] = [];
    for await (const p of readStream(client.up(MacUpRequest.fromPartial({ vmAddress: '192.0.2.130', endpoints: [{ ip: '203.0.113.10', port: 51820 }], dnsServers: ['198.51.100.53'] })))) events.push(p);
    const steps = events.filter((e) => e.kind?.$case === 'step').map((e) => (e.kind as { value: { step: string; state: StepState } }).value);
    expect(steps.filter((s) => s.state === StepState.STEP_STATE_DONE).map((s) => s.step)).toEqual(['discover', 'kill-switch', 'pin-endpoint', 'split-routes', 'ipv6', 'dns', 'verify']);
    expect(events[events.length - 1].kind).toMatchObject({ $case: 'outcome', value: { ok: true } });

    const status: MacStatus = await unaryCall(client.status.bind(client), StatusRequest.fromPartial({}), { timeoutMs: 5_000 });
    expect(status).toMatchObject({ up: true, health: { state: 1 }, vmAddress: '192.0.2.130', endpoints: [{ ip: '203.0.113.10', port: 51820 }], killSwitch: { loaded: true, interface: 'en0' }, dns: { servers: ['198.51.100.53'], previous: ['192.0.2.1'], managed: true } });
    expect(status.routes.map((r) => r.destination)).toEqual(['203.0.113.10/32', '0.0.0.0/1', '128.0.0.0/1']);

    // The host breaks behind the agent's back: the next sample turns health NOT_SERVING.
    driver.host.killSwitch = null;
    await agent.sampler.refresh();
    expect(await healthCheck(target, { insecure: true })).toBe('NOT_SERVING');

    const down: Progress[] = [];
    for await (const p of readStream(client.down(MacDownRequest.fromPartial({})))) down.push(p);
    expect(down[down.length - 1].kind).toMatchObject({ $case: 'outcome', value: { ok: true } });
    client.close();
  });

  it('a kill switch removed behind the agent\'s back is put back; Status counts the heal and tells the last one', async () => {
    agent = await startAgent(options(`unix:${join(dir, 'a.sock')}`), { driver, logger: silentLogger(), sampleIntervalMs: 60_000, engine: { healCheckMs: 200 } });
    const client = connectAgent(MacAgentClient, `unix:${join(dir, 'a.sock')}`, { insecure: true });
    for await (const p of readStream(client.up(MacUpRequest.fromPartial({ vmAddress: '192.0.2.130', endpoints: [{ ip: '203.0.113.10', port: 51820 }], dnsServers: ['198.51.100.53'] })))) void p;
    const before: MacStatus = await unaryCall(client.status.bind(client), StatusRequest.fromPartial({}), { timeoutMs: 5_000 });
    expect(before.selfHeal).toEqual({ heals: 0, lastHealUnixMs: '0', lastChanges: [], lastBy: '', lastTrigger: '' });
    driver.host.killSwitch = null;
    const deadline = Date.now() + 2_000;
    while (driver.host.killSwitch === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(driver.host.killSwitch).not.toBeNull();
    const after: MacStatus = await unaryCall(client.status.bind(client), StatusRequest.fromPartial({}), { timeoutMs: 5_000 });
    expect(after).toMatchObject({ selfHeal: { heals: 1, lastChanges: ['kill-switch: not loaded'] }, health: { state: 1 } });
    expect(after.selfHeal!.lastTrigger).toMatch(/periodic look|monitor started/);
    expect(Number(after.selfHeal!.lastHealUnixMs)).toBeGreaterThan(0);
    client.close();
  });

  it('after a kill-switch-only Up the status sample waits for the full Up (no processes beside the VM\'s wg-quick); a Status meanwhile gets a fresh one', async () => {
    agent = await startAgent(options(`unix:${join(dir, 'k.sock')}`), { driver, logger: silentLogger(), sampleIntervalMs: 60_000 });
    const client = connectAgent(MacAgentClient, `unix:${join(dir, 'k.sock')}`, { insecure: true });
    await agent.sampler.refresh();
    const request = { vmAddress: '192.0.2.130', endpoints: [{ ip: '203.0.113.10', port: 51820 }], dnsServers: ['198.51.100.53'] };
    const outcome = async (stream: grpc.ClientReadableStream<Progress>) => {
      const events: Progress[] = [];
      for await (const p of readStream(stream)) events.push(p);
      return events[events.length - 1].kind;
    };
    expect(await outcome(client.up(MacUpRequest.fromPartial({ ...request, killSwitchOnly: true })))).toMatchObject({ $case: 'outcome', value: { ok: true } });
    const taken = agent.sampler.samples;
    await new Promise((r) => setTimeout(r, 100));
    expect(agent.sampler.samples).toBe(taken); // waiting for the full Up

    // A Status meanwhile does not get the sample from before the Up: it begins the waiting one.
    const status: MacStatus = await unaryCall(client.status.bind(client), StatusRequest.fromPartial({}), { timeoutMs: 5_000 });
    expect(status).toMatchObject({ up: false, killSwitch: { loaded: true } });
    expect(agent.sampler.samples).toBe(taken + 1);

    // The full Up samples right after, as any Up.
    expect(await outcome(client.up(MacUpRequest.fromPartial(request)))).toMatchObject({ $case: 'outcome', value: { ok: true } });
    for (let i = 0; i < 200 && agent.sampler.samples === taken + 1; i++) await new Promise((r) => setTimeout(r, 5));
    expect(agent.sampler.samples).toBe(taken + 2);
    expect(agent.sampler.latest).toMatchObject({ up: true });
    client.close();
  });

  it('an Up or Down while another Up runs is refused with ABORTED, naming the running one', async () => {
    agent = await startAgent(options(`unix:${join(dir, 'b.sock')}`), { driver, logger: silentLogger(), sampleIntervalMs: 60_000 });
    const client = connectAgent(MacAgentClient, `unix:${join(dir, 'b.sock')}`, { insecure: true });
    const request = MacUpRequest.fromPartial({ vmAddress: '192.0.2.130', endpoints: [{ ip: '203.0.113.10', port: 51820 }] });
    // Hold the first Up in its discovery: the gate waits for a read that never comes.
    const gate = new ConcurrencyGate(1500);
    gate.expect(['discoverUplink', 'never']);
    driver.gate = gate;
    const first = (async () => {
      const events: Progress[] = [];
      for await (const p of readStream(client.up(request))) events.push(p);
      return events;
    })();
    while (!driver.calls.includes('discoverUplink')) await new Promise((r) => setTimeout(r, 5));
    for (const call of [() => client.up(request), () => client.down(MacDownRequest.fromPartial({}))]) {
      const refused = await (async () => {
        for await (const _ of readStream(call())) return 'streamed';
        return 'ended';
      })().catch((e: grpc.ServiceError) => e);
      expect(refused).toMatchObject({ code: grpc.status.ABORTED, details: expect.stringMatching(/^another Up is in progress \(started .*\); wait for it to finish and retry$/) });
    }
    driver.gate = undefined;
    await first;
    client.close();
  });

  it('a caller that cancels ends its Up between two steps, fail-closed (as SIGTERM does), and the agent serves the next call', async () => {
    agent = await startAgent(options(`unix:${join(dir, 'c.sock')}`), { driver, logger: silentLogger(), sampleIntervalMs: 60_000, engine: { stallAfterStep: 'kill-switch' } });
    const client = connectAgent(MacAgentClient, `unix:${join(dir, 'c.sock')}`, { insecure: true });
    const stream = client.up(MacUpRequest.fromPartial({ vmAddress: '192.0.2.130', endpoints: [{ ip: '203.0.113.10', port: 51820 }] }));
    stream.on('error', () => undefined); // CANCELLED, on our side
    await new Promise<void>((resolve) =>
      stream.on('data', (p: Progress) => {
        if (p.kind?.$case === 'step' && p.kind.value.step === 'kill-switch' && p.kind.value.state === StepState.STEP_STATE_DONE) resolve();
      }),
    );
    stream.cancel();
    for (let i = 0; i < 200 && !agent.engine.journal().lastError; i++) await new Promise((r) => setTimeout(r, 10));

    expect(agent.engine.journal()).toMatchObject({ phase: 'up-in-progress', lastError: expect.stringMatching(/^pin-endpoint: cancelled before pin-endpoint/) });
    expect(driver.host.killSwitch).not.toBeNull();
    expect(driver.host.routes.map((r) => r.destination)).toEqual(['0.0.0.0/0']);
    const down: Progress[] = [];
    for await (const p of readStream(client.down(MacDownRequest.fromPartial({})))) down.push(p);
    expect(down[down.length - 1].kind).toMatchObject({ $case: 'outcome', value: { ok: true } });
    expect(driver.host.killSwitch).toBeNull();
    client.close();
  });

  it('on TCP it requires mTLS and the controller role', async () => {
    const pki = join(dir, 'pki');
    await createPki(pki, { vmAddresses: ['192.0.2.130'], macAgentAddresses: ['127.0.0.1'] });
    agent = await startAgent(options('127.0.0.1:0', pki), { driver, logger: silentLogger() });
    const controller = connectAgent(MacAgentClient, agent.address, { tls: loadTlsMaterial(pki, 'controller') });
    const status: MacStatus = await unaryCall(controller.status.bind(controller), StatusRequest.fromPartial({}), { timeoutMs: 5_000 });
    expect(status.agent?.agent).toBe('mac-agent');
    controller.close();
    const monitor = connectAgent(MacAgentClient, agent.address, { tls: loadTlsMaterial(pki, 'monitor') });
    await expect(unaryCall(monitor.status.bind(monitor), StatusRequest.fromPartial({}), { timeoutMs: 5_000 })).rejects.toMatchObject({ code: grpc.status.PERMISSION_DENIED });
    monitor.close();
  });
});
