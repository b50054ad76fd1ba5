/**
 * `--exclude` on the controller: the config key and `wgctl init --exclude` (validated, canonical
 * checks shared with the mac-agent), `wgctl up --exclude` for one run, what the Mac's Up
 * request carries, and the Excluded row / `excluded` JSON of `wgctl status`.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseWgctlConfig } from '@wgctl/config';
import { type Lab, healthyMacStatus, startLab } from '../testing/fake-agents';
import { cli, writeLabConfig } from '../testing/cli-harness';
import { statusReportSchema } from '../testing/status-schema';

describe('config `exclude`', () => {
  const base = { version: 1, vm: { address: '192.0.2.2', port: 7443 }, mac: { agent: 'unix:/tmp/x.sock' }, tlsDir: 'tls' };
  it('takes IPv4 and IPv6 CIDRs, refuses bad or too wide ones naming the entry; unknown keys stay errors', () => {
    expect(parseWgctlConfig({ ...base, exclude: ['198.51.100.0/24', '2001:db8:5::/48'] }).exclude).toEqual(['198.51.100.0/24', '2001:db8:5::/48']);
    expect(() => parseWgctlConfig({ ...base, exclude: ['0.0.0.0/0'] })).toThrow(/exclude\[0\]: 0\.0\.0\.0\/0 is too wide/);
    expect(() => parseWgctlConfig({ ...base, exclude: ['198.51.100.0/24', 'corp.example'] })).toThrow(/exclude\[1\]: "corp\.example" is not a CIDR/);
    expect(() => parseWgctlConfig({ ...base, exclude: ['fe80::/64'] })).toThrow(/link-local/);
    expect(() => parseWgctlConfig({ ...base, excludes: ['198.51.100.0/24'] })).toThrow(/excludes/);
  });
});

describe('wgctl init --exclude', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'wgctl-init-exclude-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the CIDRs to the config (repeatable or comma-separated)', async () => {
    const r = await cli(['init', '--dir', dir, '--vm-address', '192.0.2.2', '--exclude', '198.51.100.0/24,203.0.113.7/32', '--exclude', '2001:db8:5::/48']);
    expect(r.code).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).exclude).toEqual(['198.51.100.0/24', '203.0.113.7/32', '2001:db8:5::/48']);
  });

  it('refuses everything, host bits, or a range covering the VM or a DNS server: exit 2, nothing written', async () => {
    const init = (...args: string[]) => cli(['init', '--dir', dir, '--vm-address', '192.0.2.2', '--dns', '198.51.100.53', ...args]);
    const everything = await init('--exclude', '::/0');
    expect({ code: everything.code, stderr: everything.stderr }).toEqual({ code: 2, stderr: expect.stringMatching(/--exclude: ::\/0 is too wide to exclude/) });
    expect((await init('--exclude', '192.0.2.0/24')).stderr).toMatch(/--exclude\[0\]: 192\.0\.2\.0\/24 covers the VM's address 192\.0\.2\.2/);
    expect((await init('--exclude', '198.51.100.0/24')).stderr).toMatch(/covers the DNS server 198\.51\.100\.53/);
    expect((await init('--exclude', '198.51.100.7/24')).stderr).toMatch(/host bits set: write 198\.51\.100\.0\/24/);
    expect(() => readFileSync(join(dir, 'config.json'))).toThrow(/ENOENT/);
  });
});

describe('up and status with excluded destinations (fake agents)', () => {
  let lab: Lab;
  beforeEach(async () => (lab = await startLab({ allowedRoles: ['controller', 'monitor'] })));
  afterEach(() => lab.cleanup());

  it("the Mac's Up request carries the config's CIDRs and this run's --exclude, canonical and without duplicates; Down the config's", async () => {
    const config = writeLabConfig(lab, { exclude: ['198.51.100.0/24'] });
    const r = await cli(['--config', config, 'up', '--exclude', '2001:DB8:5::/48', '--exclude', '198.51.100.0/24']);
    expect(r.code).toBe(0);
    const macUps = lab.agents.calls.filter((c) => c.side === 'mac' && c.rpc === 'Up').map((c) => (c.request as { exclude: string[] }).exclude);
    expect(macUps.length).toBeGreaterThan(0);
    for (const exclude of macUps) expect(exclude).toEqual(['198.51.100.0/24', '2001:db8:5::/48']);
    // Down sends the config's (its marks, should the Mac's journal be unusable).
    expect((await cli(['--config', config, 'down'])).code).toBe(0);
    const macDown = lab.agents.calls.find((c) => c.side === 'mac' && c.rpc === 'Down');
    expect((macDown?.request as { exclude: string[] }).exclude).toEqual(['198.51.100.0/24']);
  });

  it('a bad up --exclude (here loopback, where the fake VM is) is refused before any agent is asked (exit 2)', async () => {
    const config = writeLabConfig(lab);
    const r = await cli(['--config', config, 'up', '--exclude', '127.0.0.0/8']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--exclude\[0\]: 127\.0\.0\.0\/8 (covers the VM's address 127\.0\.0\.1|overlaps 127\.0\.0\.0\/8 \(loopback\))/);
    expect(lab.agents.calls.filter((c) => c.rpc === 'Up')).toEqual([]);
  });

  it('status: an Excluded row, and `excluded` in --json with whether each route is present', async () => {
    const mac = healthyMacStatus();
    mac.exclude = ['198.51.100.0/24', '203.0.113.77/32'];
    mac.routes.push(
      { destination: '198.51.100.0/24', gateway: '192.0.2.1', interface: 'en0', present: true, evidence: '198.51.100 192.0.2.1 UGSc en0' },
      { destination: '203.0.113.77/32', gateway: '192.0.2.1', interface: 'en0', present: false, evidence: '' },
    );
    lab.agents.mac.status = mac;
    const config = writeLabConfig(lab);
    const table = await cli(['--config', config, 'status']);
    expect(table.stdout).toMatch(/^Excluded\s+-\s+198\.51\.100\.0\/24, 203\.0\.113\.77\/32 MISSING$/m);
    const json = await cli(['--config', config, '--json', 'status']);
    const doc = statusReportSchema.parse(JSON.parse(json.stdout));
    if (!doc.mac.reachable) throw new Error('unreachable');
    expect(doc.mac.excluded).toEqual([
      { destination: '198.51.100.0/24', present: true },
      { destination: '203.0.113.77/32', present: false },
    ]);
  });
});
