/**
 * Order of operations and rollback, against fake agents served over real gRPC + mTLS: the
 * assertions read the agents' own call logs, not the orchestrator's view of itself.
 */
import * as grpc from '@grpc/grpc-js';
import { Ipv6Mode } from '@wgctl/proto';
import { loadTlsMaterial } from '@wgctl/transport';
import type { MacAgentApi, VmAgentApi } from '../agents';
import { macAgentApi, vmAgentApi } from '../clients';
import { decideIpv6, down, type OrchestratorEvent, plan, up } from '../orchestrator';
import { agentInfo, defaultMacDescription, defaultVmDescription, type Lab, okSteps, startLab } from '../testing/fake-agents';

let lab: Lab;
let vm: VmAgentApi;
let mac: MacAgentApi;

beforeEach(async () => {
  lab = await startLab();
  const tls = loadTlsMaterial(lab.tlsDir, 'controller');
  vm = vmAgentApi({ side: 'vm', target: lab.agents.vmTarget }, { tls, timeoutMs: 3000 });
  mac = macAgentApi({ side: 'mac', target: lab.agents.macTarget }, { tls, timeoutMs: 3000, vmAddress: '192.0.2.3' });
});

afterEach(async () => {
  vm.close();
  mac.close();
  await lab.cleanup();
});

const UP_OPTS = { vmAddress: '192.0.2.3' };
const describesOf = (side: 'vm' | 'mac') => lab.agents.calls.filter((c) => c.side === side && c.rpc === 'Describe').length;

describe('up', () => {
  it('connects to both, brings the VM up, makes the Mac fail-closed while it does, then routes the Mac with what the VM applied', async () => {
    const events: OrchestratorEvent[] = [];
    const result = await up(vm, mac, UP_OPTS, (e) => events.push(e));
    expect(result.failure).toBeUndefined();
    expect(result.ok).toBe(true);
    expect(lab.agents.sequence(['Describe', 'Up', 'Down'])).toEqual([
      // connect describes both in parallel: either order
      ...lab.agents.sequence(['Describe']).slice(0, 2),
      'vm.Up',
      'mac.Up', // kill switch and pins, on the VM's plan, while the VM's Up runs
      'mac.Up', // the rest, after the handshake
    ]);
    expect(lab.agents.sequence(['Describe']).slice(0, 2).sort()).toEqual(['mac.Describe', 'vm.Describe']);

    const vmUp = lab.agents.calls.find((c) => c.side === 'vm' && c.rpc === 'Up')!.request;
    expect(vmUp).toMatchObject({ macSource: '192.0.2.2', dryRun: false });
    const [macKillSwitch, macUp] = lab.agents.calls.filter((c) => c.side === 'mac' && c.rpc === 'Up').map((c) => c.request);
    const wanted = {
      vmAddress: '192.0.2.3',
      endpoints: [{ host: 'vpn.example.net', ip: '203.0.113.5', port: 51820 }],
      dnsServers: ['10.64.0.1'],
      dryRun: false,
    };
    expect(macKillSwitch).toMatchObject({ ...wanted, killSwitchOnly: true });
    expect(macUp).toMatchObject({ ...wanted, killSwitchOnly: false });
    // The mac-agent is told which VM address we mean, so it can report its vnic.
    const macDescribe = lab.agents.calls.find((c) => c.side === 'mac' && c.rpc === 'Describe')!;
    expect(macDescribe.metadata['wgctl-vm-address']).toBe('192.0.2.3');

    const topLevel = events.filter((e) => e.kind === 'start').map((e) => e.step);
    expect(topLevel).toEqual(['connect', 'vm-up', 'mac-up']);
    const agentSteps = events.filter((e) => e.kind === 'agent').map((e) => (e.kind === 'agent' ? `${e.step}:${e.side}:${e.event.step}:${e.event.state}` : ''));
    expect(agentSteps.filter((s) => s.startsWith('vm-up:vm:')).slice(0, 2)).toEqual(['vm-up:vm:wg-quick-up:1', 'vm-up:vm:wg-quick-up:2']);
    // The Mac's kill switch is reported within vm-up; the full Mac Up within mac-up.
    expect(agentSteps).toContain('vm-up:mac:kill-switch:2');
    expect(agentSteps).toContain('mac-up:mac:dns:2');
    expect(result.endpoints).toEqual([{ host: 'vpn.example.net', ip: '203.0.113.5', port: 51820 }]);
    expect(result.tunnelAddresses).toEqual(['10.64.0.2/32']);
  });

  it('uses configured DNS servers and an explicit Mac source over the described ones', async () => {
    const result = await up(vm, mac, { ...UP_OPTS, dnsServers: ['198.51.100.53'], macSource: '192.0.2.9' });
    expect(result.ok).toBe(true);
    expect(lab.agents.calls.find((c) => c.side === 'vm' && c.rpc === 'Up')!.request).toMatchObject({ macSource: '192.0.2.9' });
    expect(lab.agents.calls.find((c) => c.side === 'mac' && c.rpc === 'Up')!.request).toMatchObject({ dnsServers: ['198.51.100.53'] });
  });

  it('fails at connect, changing nothing, when an agent speaks another protocol', async () => {
    lab.agents.mac.describe = { ...defaultMacDescription(), agent: agentInfo('mac-agent', 'wgctl.v0') };
    const result = await up(vm, mac, UP_OPTS);
    expect(result.ok).toBe(false);
    expect(result.failure).toMatchObject({ step: 'connect' });
    expect(result.failure!.message).toMatch(/mac-agent speaks protocol "wgctl.v0".*needs "wgctl.v1"/);
    expect(lab.agents.sequence()).toEqual([]);
  });

  it('fails at connect when the addresses are swapped (a mac-agent answering as the VM)', async () => {
    lab.agents.vm.describe = { ...defaultVmDescription(), agent: agentInfo('mac-agent') };
    const result = await up(vm, mac, UP_OPTS);
    expect(result.failure?.message).toMatch(/configured for the vm-agent answers as "mac-agent"/);
    expect(lab.agents.sequence()).toEqual([]);
  });

  it('fails at connect naming the unreachable agent, and touches neither', async () => {
    await lab.agents.stop('mac');
    const result = await up(vm, mac, UP_OPTS);
    expect(result.failure).toMatchObject({ step: 'connect' });
    expect(result.failure!.message).toMatch(/cannot reach mac-agent at unix:/);
    expect(lab.agents.sequence()).toEqual([]);
    expect(result.rollback).toEqual([]);
  });

  it('fails at connect when no Mac source can be found', async () => {
    lab.agents.mac.describe = { ...defaultMacDescription(), vnicAddress: '' };
    const result = await up(vm, mac, UP_OPTS);
    expect(result.failure?.message).toMatch(/--mac-source/);
    expect(lab.agents.sequence()).toEqual([]);
  });

  it('failure in VM Up: rolls back the Mac it made fail-closed meanwhile, then the VM, with the failing step and command stderr', async () => {
    lab.agents.vm.up = {
      steps: [
        ...okSteps('wg-quick-up'),
        {
          step: 'await-handshake',
          state: 'failed',
          message: 'no handshake within 15 s',
          commands: [
            { argv: ['wg', 'show', 'wg0', 'latest-handshakes'], exitCode: 0 },
            { argv: ['ping', '-c1', '10.64.0.1'], exitCode: 1, stderr: 'Destination Host Unreachable' },
          ],
        },
      ],
      outcome: { ok: false, failedStep: 'await-handshake', error: 'no handshake within 15 s' },
    };
    const result = await up(vm, mac, UP_OPTS);
    expect(result.ok).toBe(false);
    expect(result.failure).toMatchObject({
      step: 'vm-up',
      agentStep: 'await-handshake',
      command: { argv: ['ping', '-c1', '10.64.0.1'], exitCode: 1, stderr: 'Destination Host Unreachable' },
    });
    expect(result.failure!.message).toBe('vm-agent failed at step await-handshake: no handshake within 15 s');
    expect(lab.agents.sequence()).toEqual(['vm.Up', 'mac.Up', 'mac.Down', 'vm.Down']);
    expect(lab.agents.calls.find((c) => c.side === 'mac' && c.rpc === 'Up')!.request).toMatchObject({ killSwitchOnly: true });
    expect(result.rollback).toEqual([
      { side: 'mac', ok: true },
      { side: 'vm', ok: true },
    ]);
  });

  it('failure in VM Up before it said what it would apply (e.g. its config): rolls back the VM only', async () => {
    lab.agents.vm.up = { steps: [{ step: 'read-config', state: 'failed', message: 'no [Peer]' }], outcome: { ok: false, failedStep: 'read-config', error: 'no [Peer]' }, plan: null };
    const result = await up(vm, mac, UP_OPTS);
    expect(result.failure).toMatchObject({ step: 'vm-up', agentStep: 'read-config' });
    expect(lab.agents.sequence()).toEqual(['vm.Up', 'vm.Down']);
    expect(result.rollback).toEqual([{ side: 'vm', ok: true }]);
  });

  it('the Mac cannot be made fail-closed (kill switch refused): vm-up fails naming the Mac, and both are rolled back', async () => {
    lab.agents.mac.upKillSwitchOnly = {
      steps: [...okSteps('discover'), { step: 'kill-switch', state: 'failed', message: 'pfctl failed', commands: [{ argv: ['pfctl', '-a', 'com.apple/000.wgctl', '-f', '/x'], exitCode: 1, stderr: 'x:3: syntax error' }] }],
      outcome: { ok: false, failedStep: 'kill-switch', error: 'pfctl failed' },
    };
    const result = await up(vm, mac, UP_OPTS);
    expect(result.failure).toMatchObject({ step: 'vm-up', agentStep: 'kill-switch', command: { stderr: 'x:3: syntax error' } });
    expect(result.failure!.message).toBe('mac-agent failed at step kill-switch: pfctl failed');
    expect(lab.agents.sequence()).toEqual(['vm.Up', 'mac.Up', 'mac.Down', 'vm.Down']);
  });

  it('the Mac is made fail-closed while the VM is still bringing its tunnel up', async () => {
    lab.agents.vm.up = { steps: okSteps('read-config', 'wg-quick-up', 'await-handshake', 'verify'), outcome: { ok: true }, delayMs: 60 };
    const events: OrchestratorEvent[] = [];
    const result = await up(vm, mac, UP_OPTS, (e) => events.push(e));
    expect(result.ok).toBe(true);
    const order = events.flatMap((e) => (e.kind === 'agent' && e.event.state === 2 ? [`${e.side}:${e.event.step}`] : []));
    // The Mac's pins are in before the VM's handshake is.
    expect(order.indexOf('mac:pin-endpoint')).toBeGreaterThanOrEqual(0);
    expect(order.indexOf('mac:pin-endpoint')).toBeLessThan(order.indexOf('vm:await-handshake'));
  });

  describe("on the VM's tunnel-ready (its handshake came, every change in)", () => {
    const vmUpToVerify = (verify: 'done' | 'failed') => ({
      steps: [...okSteps('read-config', 'wg-quick-up'), { step: 'await-handshake', state: 'done' as const, message: 'handshake with 203.0.113.5:51820 (3 ms)' }, { step: 'verify', state: verify }],
      outcome: verify === 'done' ? { ok: true } : { ok: false, failedStep: 'verify', error: 'WGCTL-FWD missing' },
      tunnelReadyAfter: 'await-handshake',
      // The vm-agent's read-back and journal, which the Mac no longer waits for.
      outcomeDelayMs: 300,
    });

    it("starts the Mac's routes and DNS before the VM's Outcome, and shows them under mac-up", async () => {
      lab.agents.vm.up = vmUpToVerify('done');
      const macUpsAtVmDone: number[] = [];
      const events: OrchestratorEvent[] = [];
      const result = await up(vm, mac, UP_OPTS, (e) => {
        events.push(e);
        if (e.kind === 'done' && e.step === 'vm-up') macUpsAtVmDone.push(lab.agents.calls.filter((c) => c.side === 'mac' && c.rpc === 'Up').length);
      });
      expect(result.ok).toBe(true);
      expect(macUpsAtVmDone).toEqual([2]); // the kill-switch-only Up and the full one
      expect(lab.agents.calls.filter((c) => c.side === 'mac' && c.rpc === 'Up').map((c) => c.request)).toMatchObject([{ killSwitchOnly: true }, { killSwitchOnly: false }]);
      // Its events come after the mac-up step has started, in their own order.
      const macUpStart = events.findIndex((e) => e.kind === 'start' && e.step === 'mac-up');
      const macUpEvents = events.flatMap((e, i) => (e.kind === 'agent' && e.step === 'mac-up' ? [i] : []));
      expect(macUpEvents.length).toBeGreaterThan(0);
      expect(Math.min(...macUpEvents)).toBeGreaterThan(macUpStart);
      expect(events.filter((e) => e.kind === 'agent' && e.step === 'vm-up' && e.side === 'mac').every((e) => (e as { event: { step: string } }).event.step !== 'split-routes')).toBe(true);
    });

    it('a VM Up that fails after it (verify): the Mac Up in flight ends first, then both are rolled back', async () => {
      lab.agents.vm.up = vmUpToVerify('failed');
      const result = await up(vm, mac, UP_OPTS);
      expect(result.failure).toMatchObject({ step: 'vm-up', agentStep: 'verify' });
      expect(lab.agents.sequence()).toEqual(['vm.Up', 'mac.Up', 'mac.Up', 'mac.Down', 'vm.Down']);
      expect(result.rollback).toEqual([
        { side: 'mac', ok: true },
        { side: 'vm', ok: true },
      ]);
    });

    it('a failing Mac full Up begun early is reported at mac-up, and both are rolled back', async () => {
      lab.agents.vm.up = vmUpToVerify('done');
      lab.agents.mac.up = {
        steps: [...okSteps('discover'), { step: 'split-routes', state: 'failed', message: 'route: writing to routing socket: File exists' }],
        outcome: { ok: false, failedStep: 'split-routes', error: 'route add failed' },
      };
      const result = await up(vm, mac, UP_OPTS);
      expect(result.failure).toMatchObject({ step: 'mac-up', agentStep: 'split-routes' });
      expect(lab.agents.sequence()).toEqual(['vm.Up', 'mac.Up', 'mac.Up', 'mac.Down', 'vm.Down']);
    });

    it('the Mac could not be made fail-closed: no full Up is begun, whatever the VM says', async () => {
      lab.agents.vm.up = vmUpToVerify('done');
      lab.agents.mac.upKillSwitchOnly = {
        steps: [{ step: 'kill-switch', state: 'failed', message: 'pfctl failed' }],
        outcome: { ok: false, failedStep: 'kill-switch', error: 'pfctl failed' },
      };
      const result = await up(vm, mac, UP_OPTS);
      expect(result.failure).toMatchObject({ step: 'vm-up', agentStep: 'kill-switch' });
      expect(lab.agents.sequence()).toEqual(['vm.Up', 'mac.Up', 'mac.Down', 'vm.Down']);
    });
  });

  it('VM Up stream broken by a transport error: still rolls the VM back (state unknown)', async () => {
    lab.agents.vm.up = { grpcError: { code: grpc.status.INTERNAL, details: 'agent crashed' }, afterSteps: okSteps('wg-quick-up') };
    const result = await up(vm, mac, UP_OPTS);
    expect(result.failure).toMatchObject({ step: 'vm-up' });
    expect(result.failure!.message).toMatch(/vm-agent connection lost during step wg-quick-up \(agent crashed\); .*wgctl status/);
    expect(lab.agents.sequence()).toEqual(['vm.Up', 'vm.Down']);
  });

  it("pins the endpoints the VM's Up reports it applied, not the described ones, without describing the VM again", async () => {
    const applied = { endpoints: [{ host: 'vpn.example.net', ip: '203.0.113.77', port: 51821 }], tunnelAddresses: ['10.64.0.9/32'] };
    // read-config: the step after which the controller used to send a second Describe.
    lab.agents.vm.up = { steps: okSteps('read-config', 'wg-quick-up', 'await-handshake'), outcome: { ok: true, vmApplied: applied }, plan: applied };
    const events: OrchestratorEvent[] = [];
    const result = await up(vm, mac, UP_OPTS, (e) => events.push(e));
    expect(result.ok).toBe(true);
    expect([describesOf('vm'), describesOf('mac')]).toEqual([1, 1]);
    for (const call of lab.agents.calls.filter((c) => c.side === 'mac' && c.rpc === 'Up')) expect(call.request).toMatchObject({ endpoints: applied.endpoints });
    expect(result).toMatchObject({ endpoints: applied.endpoints, tunnelAddresses: applied.tunnelAddresses });
    expect(events).toContainEqual(
      expect.objectContaining({
        kind: 'done',
        step: 'vm-up',
        detail: 'forwarding 192.0.2.2 into the tunnel; endpoints 203.0.113.77:51821; tunnel 10.64.0.9/32; Mac fail-closed meanwhile (kill switch, endpoints pinned)',
      }),
    );
  });

  it('a VM Up that does not say what it applied (an older vm-agent): fails vm-up, rolls the VM back, leaves the Mac alone', async () => {
    lab.agents.vm.up = { steps: okSteps('wg-quick-up'), outcome: { ok: true, vmApplied: null }, plan: null };
    const result = await up(vm, mac, UP_OPTS);
    expect(result.failure).toMatchObject({ step: 'vm-up' });
    expect(result.failure!.message).toMatch(/did not report what it applied \(vm_applied\).*upgrade it/);
    expect(lab.agents.sequence()).toEqual(['vm.Up', 'vm.Down']);
    expect(describesOf('vm')).toBe(1);
  });

  it('a VM Up that applied no server endpoint: fails vm-up and rolls the VM back', async () => {
    const none = { endpoints: [], tunnelAddresses: ['10.64.0.2/32'] };
    lab.agents.vm.up = { steps: okSteps('wg-quick-up'), outcome: { ok: true, vmApplied: none }, plan: none };
    const result = await up(vm, mac, UP_OPTS);
    expect(result.failure).toMatchObject({ step: 'vm-up' });
    expect(result.failure!.message).toMatch(/no WireGuard server endpoints/);
    expect(lab.agents.sequence()).toEqual(['vm.Up', 'vm.Down']);
  });

  it('failure in Mac Up: Mac Down first, then VM Down', async () => {
    lab.agents.mac.up = {
      steps: [
        ...okSteps('pin-endpoint', 'split-routes'),
        { step: 'kill-switch', state: 'failed', message: 'pfctl failed', commands: [{ argv: ['pfctl', '-a', 'wgctl', '-f', '-'], exitCode: 1, stderr: 'pfctl: syntax error' }] },
      ],
      outcome: { ok: false, failedStep: 'kill-switch', error: 'pfctl failed' },
    };
    const result = await up(vm, mac, UP_OPTS);
    expect(result.failure).toMatchObject({ step: 'mac-up', agentStep: 'kill-switch', command: { stderr: 'pfctl: syntax error' } });
    expect(lab.agents.sequence()).toEqual(['vm.Up', 'mac.Up', 'mac.Up', 'mac.Down', 'vm.Down']);
    expect(result.rollback).toEqual([
      { side: 'mac', ok: true },
      { side: 'vm', ok: true },
    ]);
  });

  it('failure in Mac Up when the VM was already up: leaves the pre-existing tunnel alone', async () => {
    lab.agents.vm.up = {
      steps: ['wg-quick-up', 'await-handshake', 'forward', 'snat'].map((step) => ({ step, state: 'skipped' as const })),
      outcome: { ok: true },
    };
    lab.agents.mac.up = { steps: [], outcome: { ok: false, failedStep: 'split-routes', error: 'route: writing to routing socket: File exists' } };
    const result = await up(vm, mac, UP_OPTS);
    expect(result.failure).toMatchObject({ step: 'mac-up' });
    expect(lab.agents.sequence()).toEqual(['vm.Up', 'mac.Up', 'mac.Up', 'mac.Down']);
  });

  it('a failing rollback is reported with what is left', async () => {
    lab.agents.mac.up = { steps: [], outcome: { ok: false, failedStep: 'dns', error: 'networksetup failed' } };
    lab.agents.mac.down = { steps: [], outcome: { ok: false, failedStep: 'kill-switch', error: 'pfctl: token invalid' } };
    const result = await up(vm, mac, UP_OPTS);
    expect(lab.agents.sequence()).toEqual(['vm.Up', 'mac.Up', 'mac.Up', 'mac.Down', 'vm.Down']);
    expect(result.rollback).toEqual([
      { side: 'mac', ok: false, error: 'mac-agent Down failed at kill-switch: pfctl: token invalid' },
      { side: 'vm', ok: true },
    ]);
    expect(result.left).toEqual([expect.stringMatching(/^Mac: split routes, endpoint pin, kill switch and DNS may still be in place/)]);
  });

  it('a hung Describe fails connect on the quick deadline, not the long one', async () => {
    vm.close();
    vm = vmAgentApi(
      { side: 'vm', target: lab.agents.vmTarget },
      { tls: loadTlsMaterial(lab.tlsDir, 'controller'), timeoutMs: 30_000, quickTimeoutMs: 300 },
    );
    lab.agents.vm.describe = { hang: true };
    const started = Date.now();
    const result = await up(vm, mac, UP_OPTS);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(result.failure).toMatchObject({ step: 'connect' });
    expect(result.failure!.message).toMatch(/did not answer Describe within 300 ms/);
    expect(lab.agents.sequence()).toEqual([]);
  });

  it('a hung VM Up hits the deadline, fails the step and rolls back', async () => {
    vm.close();
    vm = vmAgentApi({ side: 'vm', target: lab.agents.vmTarget }, { tls: loadTlsMaterial(lab.tlsDir, 'controller'), timeoutMs: 300 });
    lab.agents.vm.up = { hang: true };
    const result = await up(vm, mac, UP_OPTS);
    expect(result.failure?.message).toMatch(/did not answer Up within/);
    expect(lab.agents.sequence()).toEqual(['vm.Up', 'vm.Down']);
  });
});

describe("up: the VM's Up leaves before the Mac's Describe is in when nothing of it waits for that", () => {
  const LOCAL = { ...UP_OPTS, localSource: async () => '192.0.2.7' };
  const step = (e: OrchestratorEvent) => (e.kind === 'agent' ? `${e.step}:${e.side}:${e.event.step}` : e.kind === 'rollback' ? 'rollback' : `${e.kind}:${e.step}`);

  it("sends it once the VM has answered, with this host's source towards the VM; the Mac changes nothing before its own Describe", async () => {
    lab.agents.mac.describeDelayMs = 150;
    const events: OrchestratorEvent[] = [];
    const result = await up(vm, mac, LOCAL, (e) => events.push(e));
    expect(result.failure).toBeUndefined();
    const t = lab.agents.timeline;
    expect(t.indexOf('vm.Up')).toBeGreaterThan(t.indexOf('vm.Describe answered'));
    expect(t.indexOf('vm.Up')).toBeLessThan(t.indexOf('mac.Describe answered'));
    // The kill-switch-only Up, on the VM's plan, only once the mac-agent has answered.
    expect(t.indexOf('mac.Up')).toBeGreaterThan(t.indexOf('mac.Describe answered'));
    expect(lab.agents.calls.find((c) => c.side === 'vm' && c.rpc === 'Up')!.request).toMatchObject({ macSource: '192.0.2.7', macSource6: '' });
    expect(result.macSource).toBe('192.0.2.7');
    expect(result.ipv6?.mode).toBe(Ipv6Mode.IPV6_MODE_BLOCK);
    // The VM's events come within vm-up, after connect, as ever.
    const shown = events.map(step);
    expect(shown.indexOf('start:vm-up')).toBeGreaterThan(shown.indexOf('done:connect'));
    expect(shown.findIndex((x) => x.startsWith('vm-up:vm:'))).toBeGreaterThan(shown.indexOf('start:vm-up'));
    expect(shown.filter((x) => x.startsWith('start:'))).toEqual(['start:connect', 'start:vm-up', 'start:mac-up']);
    // The mac-agent's own view of its vnic differs here: said, not used.
    const connect = events.find((e) => e.kind === 'done' && e.step === 'connect');
    expect(connect).toMatchObject({ detail: expect.stringContaining('Mac source 192.0.2.7 (the mac-agent reports 192.0.2.2 on its vnic)') });
  });

  it('waits for the Mac when the IPv6 decision needs it (vm.address6 set) or the source is unknown', async () => {
    lab.agents.mac.describeDelayMs = 100;
    await up(vm, mac, { ...LOCAL, vmAddress6: '2001:db8::3' });
    let t = lab.agents.timeline;
    expect(t.indexOf('vm.Up')).toBeGreaterThan(t.indexOf('mac.Describe answered'));
    expect((await down(vm, mac, { dryRun: false, forceInterfaceDown: false, vmAddress: '192.0.2.3' })).ok).toBe(true);

    t.length = 0;
    lab.agents.calls.length = 0;
    const result = await up(vm, mac, { ...UP_OPTS, localSource: async () => undefined });
    t = lab.agents.timeline;
    expect(t.indexOf('vm.Up')).toBeGreaterThan(t.indexOf('mac.Describe answered'));
    expect(result.macSource).toBe('192.0.2.2'); // the mac-agent's vnic address, as before
  });

  it("rolls back a VM Up begun early when the Mac's Describe then fails; the Mac is not touched", async () => {
    lab.agents.mac.describeDelayMs = 100;
    lab.agents.mac.describe = { ...defaultMacDescription(), agent: agentInfo('mac-agent', 'wgctl.v0') };
    const result = await up(vm, mac, LOCAL);
    expect(result.ok).toBe(false);
    expect(result.failure).toMatchObject({ step: 'connect', message: expect.stringMatching(/mac-agent speaks protocol "wgctl.v0"/) });
    expect(lab.agents.sequence()).toEqual(['vm.Up', 'vm.Down']);
    expect(result.rollback).toEqual([{ side: 'vm', ok: true }]);
  });
});


describe('IPv6 of the Mac', () => {
  const VM6 = '2001:db8:6:1::2';
  const MAC6 = '2001:db8:6:1::1';
  const TUNNEL6 = '2001:db8:6:64::2/128';
  const withIpv6Everywhere = () => {
    lab.agents.vm.describe = { ...defaultVmDescription(), tunnelAddresses: ['10.64.0.2/32', TUNNEL6] };
    lab.agents.mac.describe = { ...defaultMacDescription(), vnicAddress6: MAC6 };
  };
  const upRequests = () => ({
    vm: lab.agents.calls.find((c) => c.side === 'vm' && c.rpc === 'Up')?.request,
    mac: lab.agents.calls.find((c) => c.side === 'mac' && c.rpc === 'Up')?.request,
  });

  it('without vm.address6 (the IPv4-only setup): the VM forwards no IPv6 and the Mac blocks it', async () => {
    withIpv6Everywhere();
    const result = await up(vm, mac, UP_OPTS);
    expect(result.ok).toBe(true);
    expect(upRequests().vm).toMatchObject({ macSource: '192.0.2.2', macSource6: '' });
    expect(upRequests().mac).toMatchObject({ ipv6: 2, vmAddress6: '' });
    expect(result.ipv6).toMatchObject({ mode: Ipv6Mode.IPV6_MODE_BLOCK });
    expect(result.ipv6!.reason).toMatch(/missing vm\.address6/);
  });

  it('auto with all three pieces: routes the Mac\'s IPv6 — the VM forwards the Mac\'s vnic IPv6, the Mac routes via the VM\'s', async () => {
    withIpv6Everywhere();
    const result = await up(vm, mac, { ...UP_OPTS, vmAddress6: VM6, ipv6: Ipv6Mode.IPV6_MODE_UNSPECIFIED });
    expect(result.ok).toBe(true);
    expect(upRequests().vm).toMatchObject({ macSource: '192.0.2.2', macSource6: MAC6 });
    expect(upRequests().mac).toMatchObject({ ipv6: 1, vmAddress6: VM6 });
    expect(result.ipv6).toEqual({ mode: Ipv6Mode.IPV6_MODE_ROUTE, macSource6: MAC6, vmAddress6: VM6, reason: `routed: ${MAC6} via ${VM6}, NAT66 to 2001:db8:6:64::2` });
  });

  it('auto without an IPv6 tunnel address, or without IPv6 on the Mac\'s vnic: blocks, and says what is missing', async () => {
    lab.agents.mac.describe = { ...defaultMacDescription(), vnicAddress6: MAC6 };
    const noTunnel6 = await up(vm, mac, { ...UP_OPTS, vmAddress6: VM6 });
    expect(noTunnel6.ok).toBe(true);
    expect(upRequests().vm).toMatchObject({ macSource6: '' });
    expect(upRequests().mac).toMatchObject({ ipv6: 2, vmAddress6: '' });
    expect(noTunnel6.ipv6!.reason).toMatch(/an IPv6 Address in the VM's WireGuard config \(vm-agent's tunnel addresses: has only 10\.64\.0\.2\/32\)/);

    const describe = { ...defaultVmDescription(), tunnelAddresses: ['10.64.0.2/32', TUNNEL6] };
    const mac0 = { ...defaultMacDescription(), vnicAddress6: '', vnicInterface: 'bridge100' };
    const decision = decideIpv6({ vmAddress6: VM6 }, describe, mac0);
    expect(decision).toEqual({ mode: Ipv6Mode.IPV6_MODE_BLOCK, reason: "ipv6: auto blocks IPv6: missing a global IPv6 address on the Mac's vnic bridge100 (mac-agent reports none)" });
  });

  it('route with a piece missing fails at connect, naming every missing piece, and changes nothing', async () => {
    lab.agents.vm.describe = { ...defaultVmDescription(), tunnelAddresses: ['10.64.0.2/32'] };
    const result = await up(vm, mac, { ...UP_OPTS, ipv6: Ipv6Mode.IPV6_MODE_ROUTE });
    expect(result.ok).toBe(false);
    expect(result.failure).toMatchObject({ step: 'connect' });
    expect(result.failure!.message).toMatch(/^ipv6: route cannot route the Mac's IPv6 through the tunnel: missing vm\.address6 in the config .*; an IPv6 Address in the VM's WireGuard config .*; a global IPv6 address on the Mac's vnic/);
    expect(lab.agents.sequence(['Up', 'Down'])).toEqual([]);
    expect(result.rollback).toEqual([]);
  });

  it('route with everything there routes; block blocks even then (also in plan)', async () => {
    withIpv6Everywhere();
    expect((await up(vm, mac, { ...UP_OPTS, vmAddress6: VM6, ipv6: Ipv6Mode.IPV6_MODE_ROUTE })).ipv6).toMatchObject({ mode: Ipv6Mode.IPV6_MODE_ROUTE });
    expect(upRequests().mac).toMatchObject({ ipv6: 1, vmAddress6: VM6 });

    lab.agents.calls.length = 0;
    const planned = await plan(vm, mac, { ...UP_OPTS, vmAddress6: VM6, ipv6: Ipv6Mode.IPV6_MODE_BLOCK });
    expect(planned.ok).toBe(true);
    expect(planned.ipv6).toEqual({ mode: Ipv6Mode.IPV6_MODE_BLOCK, reason: 'ipv6: block' });
    expect(upRequests().vm).toMatchObject({ dryRun: true, macSource6: '' });
    expect(upRequests().mac).toMatchObject({ dryRun: true, ipv6: 2, vmAddress6: '' });
  });
});

describe('down', () => {
  it('takes the Mac down before the VM', async () => {
    const result = await down(vm, mac, {});
    expect(result.ok).toBe(true);
    expect(lab.agents.sequence()).toEqual(['mac.Down', 'vm.Down']);
    expect(lab.agents.calls.find((c) => c.rpc === 'Down' && c.side === 'vm')!.request).toEqual({ dryRun: false, forceInterfaceDown: false });
  });

  it('passes --force and --dry-run through', async () => {
    await down(vm, mac, { dryRun: true, forceInterfaceDown: true, vmAddress: '192.0.2.2', vmAddress6: '2001:db8::2' });
    expect(lab.agents.calls.filter((c) => c.rpc === 'Down').map((c) => c.request)).toEqual([
      // The servers from the VM's status: the mac-agent recognises its pins by them when its journal is unusable.
      { dryRun: true, vmAddress: '192.0.2.2', vmAddress6: '2001:db8::2', endpoints: [{ host: '', ip: '203.0.113.5', port: 51820 }], exclude: [] },
      { dryRun: true, forceInterfaceDown: true },
    ]);
  });

  it("the VM's status unavailable: the Mac's Down goes on without servers", async () => {
    lab.agents.vm.status = { grpcError: { code: 14, details: 'sampler failed' } };
    const result = await down(vm, mac, { vmAddress: '192.0.2.2' });
    expect(result.ok).toBe(true);
    expect(lab.agents.calls.find((c) => c.rpc === 'Down')?.request).toMatchObject({ endpoints: [] });
  });

  it('with the Mac unreachable: still takes the VM down and says what is left', async () => {
    await lab.agents.stop('mac');
    const result = await down(vm, mac, {});
    expect(result.ok).toBe(false);
    expect(lab.agents.sequence()).toEqual(['vm.Down']);
    expect(result.sides.mac.outcome).toBe('unreachable');
    expect(result.sides.vm.outcome).toBe('done');
    expect(result.left).toEqual([expect.stringMatching(/^Mac: /)]);
  });

  it('with the VM unreachable: takes the Mac down and says what is left', async () => {
    await lab.agents.stop('vm');
    const result = await down(vm, mac, {});
    expect(lab.agents.sequence()).toEqual(['mac.Down']);
    expect(result.sides.vm.outcome).toBe('unreachable');
    expect(result.left).toEqual([expect.stringMatching(/^VM: /)]);
  });

  it('a failing Mac Down does not stop the VM Down', async () => {
    lab.agents.mac.down = { steps: [], outcome: { ok: false, failedStep: 'dns', error: 'networksetup failed' } };
    const result = await down(vm, mac, {});
    expect(lab.agents.sequence()).toEqual(['mac.Down', 'vm.Down']);
    expect(result.sides.mac).toMatchObject({ outcome: 'failed', error: 'mac-agent failed at step dns: networksetup failed' });
    expect(result.ok).toBe(false);
  });
});

describe('plan', () => {
  it('runs Up with dry_run on both agents, VM first, and lists every step with its argv', async () => {
    lab.agents.vm.up = {
      steps: [
        { step: 'wg-quick-up', state: 'done', message: 'would bring wg0 up', commands: [{ argv: ['ip', 'link', 'show', 'wg0'], exitCode: 1, dryRun: false }, { argv: ['wg-quick', 'up', 'wg0'] }] },
        { step: 'snat', state: 'skipped', message: 'already present', commands: [{ argv: ['iptables', '-t', 'nat', '-C', 'POSTROUTING'], exitCode: 0, dryRun: false }] },
      ],
      outcome: { ok: true },
    };
    const result = await plan(vm, mac, UP_OPTS);
    expect(result.ok).toBe(true);
    expect(lab.agents.sequence()).toEqual(['vm.Up', 'mac.Up']);
    expect(lab.agents.calls.filter((c) => c.rpc === 'Up').map((c) => (c.request as { dryRun: boolean }).dryRun)).toEqual([true, true]);
    expect(result.steps.slice(0, 2)).toEqual([
      {
        side: 'vm',
        step: 'wg-quick-up',
        state: 'would-run',
        message: 'would bring wg0 up',
        commands: [
          { argv: ['ip', 'link', 'show', 'wg0'], wouldRun: false },
          { argv: ['wg-quick', 'up', 'wg0'], wouldRun: true },
        ],
      },
      { side: 'vm', step: 'snat', state: 'skipped', message: 'already present', commands: [{ argv: ['iptables', '-t', 'nat', '-C', 'POSTROUTING'], wouldRun: false }] },
    ]);
    expect(result.steps.slice(2).map((s) => `${s.side}:${s.step}`)).toEqual(['mac:pin-endpoint', 'mac:split-routes', 'mac:kill-switch', 'mac:dns']);
  });

  it("reports what the VM's dry run would apply, and gives the Mac's dry run those endpoints", async () => {
    const wouldApply = { endpoints: [{ host: 'vpn.example.net', ip: '203.0.113.78', port: 51820 }], tunnelAddresses: ['10.64.0.2/32', '2001:db8:6:64::2/128'] };
    lab.agents.vm.up = { steps: okSteps('read-config', 'wg-quick-up'), outcome: { ok: true, vmApplied: wouldApply } };
    const result = await plan(vm, mac, UP_OPTS);
    expect(result.ok).toBe(true);
    expect(result).toMatchObject({ endpoints: wouldApply.endpoints, tunnelAddresses: wouldApply.tunnelAddresses });
    expect(lab.agents.calls.find((c) => c.side === 'mac' && c.rpc === 'Up')!.request).toMatchObject({ dryRun: true, endpoints: wouldApply.endpoints });
    expect([describesOf('vm'), describesOf('mac')]).toEqual([1, 1]);
  });

  it('never calls Down, even when a dry run fails', async () => {
    lab.agents.vm.up = { steps: [], outcome: { ok: false, failedStep: 'config', error: '/etc/wireguard/wg0.conf: no such file' } };
    const result = await plan(vm, mac, UP_OPTS);
    expect(result.ok).toBe(false);
    expect(result.failure).toMatchObject({ step: 'vm-plan' });
    expect(lab.agents.sequence()).toEqual(['vm.Up']);
  });
});
