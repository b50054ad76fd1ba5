/**
 * `wgctl status` and the agents' self-healing: what each agent put back while up is shown
 * (count, the last change, who made it) and carried in the JSON (validated against the schema).
 * A heal is information, not a problem: the agents healed, so the exit code stays 0.
 */
import { cli, writeLabConfig } from '../testing/cli-harness';
import { type Lab, healthyMacStatus, healthyVmStatus, startLab } from '../testing/fake-agents';
import { statusReportSchema } from '../testing/status-schema';

let lab: Lab;
let config: string;

beforeEach(async () => {
  lab = await startLab();
  config = writeLabConfig(lab);
});
afterEach(() => lab.cleanup());

describe('wgctl status: self-healing', () => {
  it('nothing put back: said so on both sides', async () => {
    const r = await cli(['--config', config, 'status']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Self-heal\s+nothing put back\s+nothing put back$/m);
  });

  it('heals on both sides: counted, the last one named with who did it; JSON per the schema; still exit 0', async () => {
    const at = Date.UTC(2026, 11, 3, 10, 0, 0);
    const vm = healthyVmStatus();
    const mac = healthyMacStatus();
    vm.selfHeal = { heals: 2, lastHealUnixMs: String(at), lastChanges: ['jump from FORWARD to WGCTL-FWD'], lastBy: 'firewall: iptables-nft (pid 2306)', lastTrigger: 'nft monitor: delete rule ip filter FORWARD handle 4' };
    mac.selfHeal = { heals: 1, lastHealUnixMs: String(at), lastChanges: ['route: 0.0.0.0/1 via 192.0.2.3 missing'], lastBy: 'pid 312', lastTrigger: 'routing events' };
    lab.agents.vm.status = vm;
    lab.agents.mac.status = mac;
    const r = await cli(['--config', config, 'status']);
    expect(r.code).toBe(0);
    const row = r.stdout.split('\n').find((l) => l.startsWith('Self-heal'));
    expect(row).toContain('2 put back; last 2026-12-03T10:00:00.000Z: jump from FORWARD to WGCTL-FWD by firewall: iptables-nft (pid 2306)');
    expect(row).toContain('1 put back; last 2026-12-03T10:00:00.000Z: route: 0.0.0.0/1 via 192.0.2.3 missing by pid 312');

    const json = await cli(['--config', config, '--json', 'status']);
    const doc = statusReportSchema.parse(JSON.parse(json.stdout));
    if (!doc.vm.reachable || !doc.mac.reachable) throw new Error('unreachable');
    expect(doc.vm.selfHeal).toEqual({ heals: 2, lastHeal: '2026-12-03T10:00:00.000Z', lastChanges: ['jump from FORWARD to WGCTL-FWD'], lastBy: 'firewall: iptables-nft (pid 2306)', lastTrigger: 'nft monitor: delete rule ip filter FORWARD handle 4' });
    expect(doc.mac.selfHeal).toMatchObject({ heals: 1, lastBy: 'pid 312' });
    expect(doc.exitCode).toBe(0);
  });

  it('an older agent without the field: null in the JSON, "-" in the table', async () => {
    const vm = healthyVmStatus();
    vm.selfHeal = undefined;
    lab.agents.vm.status = vm;
    const json = await cli(['--config', config, '--json', 'status']);
    const doc = statusReportSchema.parse(JSON.parse(json.stdout));
    if (!doc.vm.reachable) throw new Error('unreachable');
    expect(doc.vm.selfHeal).toBeNull();
  });
});
