/**
 * `wgctl status` and the vm-agent's liveness through the tunnel: shown (alive, last reply
 * age, dead since), in the JSON (validated against the schema), and a tunnel reported dead
 * makes the exit code non-zero with the agent's reason — even where the handshake is fresh.
 */
import type { VmStatus } from '@wgctl/proto';
import { cli, writeLabConfig } from '../testing/cli-harness';
import { type Lab, healthyVmStatus, startLab } from '../testing/fake-agents';
import { statusReportSchema } from '../testing/status-schema';

let lab: Lab;
let config: string;

beforeEach(async () => {
  lab = await startLab();
  config = writeLabConfig(lab);
});
afterEach(() => lab.cleanup());

async function statusJson() {
  const r = await cli(['--config', config, '--json', 'status']);
  const parsed = statusReportSchema.safeParse(JSON.parse(r.stdout));
  if (!parsed.success) throw new Error(`status JSON does not match the schema: ${JSON.stringify(parsed.error.issues, null, 2)}`);
  expect(parsed.data.exitCode).toBe(r.code);
  return parsed.data;
}

/** A VM whose probe went unanswered, as the vm-agent reports it 13 s after the probe. */
function deadVmStatus(): VmStatus {
  const vm = healthyVmStatus();
  const nowMs = Date.now();
  const probeAt = nowMs - 13_000;
  const detail = `no reply through the tunnel for 13 s since a probe at ${new Date(probeAt).toISOString()} (dead since ${new Date(nowMs - 1_000).toISOString()}; last reply 23 s ago)`;
  vm.liveness = {
    state: 'dead',
    interface: 'wg0',
    lastReplyUnixMs: String(nowMs - 23_000),
    lastProbeUnixMs: String(nowMs - 1_000),
    deadSinceUnixMs: String(nowMs - 1_000),
    probeTarget: '192.0.2.1',
    detail,
  };
  vm.health = { state: 2, reasons: [`liveness: ${detail}`], sampledAtMs: String(nowMs) };
  vm.checks = [...vm.checks, { name: 'liveness', ok: false, detail, evidence: [] }];
  return vm;
}

describe('wgctl status: liveness through the tunnel', () => {
  it('alive: shown with the last reply\'s age, healthy (exit 0)', async () => {
    const r = await cli(['--config', config, 'status']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Liveness\s+alive \(last reply [45] s ago\)\s+-$/m);
    const doc = await statusJson();
    if (!doc.vm.reachable) throw new Error('unreachable');
    expect(doc.vm.liveness).toMatchObject({ state: 'alive', lastReplyAgeSeconds: expect.any(Number), lastProbe: null, deadSince: null, probeTarget: '192.0.2.1' });
  });

  it('dead: exit 1 with the agent\'s reason once, though the handshake is 12 s old', async () => {
    lab.agents.vm.status = deadVmStatus();
    const r = await cli(['--config', config, 'status']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^Liveness\s+DEAD since \d{4}-\d\d-\d\dT[0-9:.]+Z \(last reply 2[34] s ago\)\s+-$/m);
    const doc = await statusJson();
    expect(doc.overall).toBe('degraded');
    const tunnelProblems = doc.problems.filter((p) => p.includes('no reply through the tunnel'));
    expect(tunnelProblems).toEqual([
      expect.stringMatching(/^vm-agent NOT_SERVING: liveness: no reply through the tunnel for 13 s since a probe at /),
      expect.stringMatching(/^VM: nothing comes back through the tunnel: no reply through the tunnel for 13 s since a probe at /),
    ]);
    if (!doc.vm.reachable) throw new Error('unreachable');
    expect(doc.vm.liveness).toMatchObject({ state: 'dead', deadSince: expect.any(String), probeTarget: '192.0.2.1' });
    expect(doc.vm.peers[0].handshakeAgeSeconds).toBe(12);
  });

  it('dead is not healthy even from an agent whose health still says SERVING', async () => {
    const vm = deadVmStatus();
    vm.health = { state: 1, reasons: [], sampledAtMs: String(Date.now()) };
    vm.checks = vm.checks.filter((c) => c.name !== 'liveness');
    lab.agents.vm.status = vm;
    const doc = await statusJson();
    expect(doc.exitCode).toBe(1);
    expect(doc.problems).toEqual([expect.stringMatching(/^VM: nothing comes back through the tunnel: /)]);
  });

  it('an agent that does not watch the tunnel (older, or not up): liveness null, not a problem', async () => {
    lab.agents.vm.status = { ...healthyVmStatus(), liveness: undefined };
    const r = await cli(['--config', config, 'status']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Liveness\s+-\s+-$/m);
    const doc = await statusJson();
    if (!doc.vm.reachable) throw new Error('unreachable');
    expect(doc.vm.liveness).toBeNull();
  });
});
