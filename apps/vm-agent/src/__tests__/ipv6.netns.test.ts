/**
 * The Mac's IPv6 forwarded into the tunnel (mac_source6), against real wg-quick
 * (wireguard-go), ip6tables (nft backend) and sysctls in network namespaces of this file's own
 * (prefix `wv6`, see testing/netns.ts with ipv6). Only 2001:db8::/32 and the IPv4
 * documentation prefixes are used.
 */
import type { RunOptions, RunResult, Runner } from '@wgctl/runner';
import type { UpRequest, VmEngine } from '../service/engine/engine';
import { JournalStore } from '../service/journal';
import { RunnerSysctl, type Sysctl } from '../host/sysctl';
import { type Collected, collect, engineFor, plain } from '../testing/engine-harness';
import { VmLab, canUseNetns } from '../testing/netns';

const describeNetns = canUseNetns() ? describe : describe.skip;

const up6 = (engine: VmEngine, lab: VmLab, extra: Partial<UpRequest> = {}): Promise<Collected> =>
  collect((onStep) => engine.up({ macSource: lab.macAddress, macSource6: lab.macAddress6, ...extra }, { onStep }));
const down = (engine: VmEngine): Promise<Collected> => collect((onStep) => engine.down({}, { onStep }));

async function snapshot(lab: VmLab): Promise<Record<string, string | boolean>> {
  return {
    ruleset: await lab.vmRuleset(),
    ruleset6: await lab.vmRuleset6(),
    ipRules: await lab.vmIpRules(),
    nftTables: await lab.vmNftTables(),
    ipForward: await lab.vmSysctl('net.ipv4.ip_forward'),
    forwarding6: await lab.vmSysctl('net.ipv6.conf.all.forwarding'),
    acceptRa: await lab.vmSysctl(`net.ipv6.conf.${lab.vethLan}.accept_ra`),
    srcValidMark: await lab.vmSysctl('net.ipv4.conf.all.src_valid_mark'),
    link: await lab.vmLinkExists(lab.wgVm),
  };
}

/** A runner that fails the first command whose argv (without the netns prefix) starts with `prefix`. */
class FailingRunner implements Runner {
  failed = 0;
  constructor(
    private readonly inner: Runner,
    private readonly prefix: string,
  ) {}

  run(argv: readonly string[], options?: RunOptions): Promise<RunResult> {
    if (this.failed === 0 && plain(argv).startsWith(this.prefix)) {
      this.failed++;
      return Promise.reject(new Error(`injected failure of ${plain(argv)}`));
    }
    return this.inner.run(argv, options);
  }
}

/** In the order they end; wg-quick-up runs beside the firewall and forwarding steps, so it ends anywhere between clean-stale and await-handshake. */
const UP6_STEPS = [
  'read-config',
  'resolve-lan',
  'clean-stale',
  'detect-backend',
  'firewall',
  'firewall6',
  'ip-forward',
  'ip6-forward',
  'await-handshake',
  'verify',
];
const DOWN6_STEPS = [
  'read-journal',
  'detect-backend',
  'ip-forward',
  'ip6-forward',
  'firewall6',
  'firewall',
  'firewall-tables',
  'wg-quick-down',
  'clean-stale',
  'verify',
];

describeNetns('VmEngine: the Mac IPv6 too (mac_source6), in network namespaces', () => {
  let lab: VmLab;

  beforeEach(async () => {
    lab = await new VmLab({ prefix: 'wv6', ipv6: true }).create();
  });

  afterEach(async () => {
    await lab?.destroy();
  });

  it('up/up/down/down: NAT66 to the tunnel IPv6, IPv6 kill switch, accept_ra kept, and everything restored exactly', async () => {
    const engine = engineFor(lab);
    const start = await snapshot(lab);
    expect(start).toMatchObject({ ruleset: '', ruleset6: '', forwarding6: '0', acceptRa: '1', link: false });

    const first = await up6(engine, lab);
    expect(first.outcome).toMatchObject({ ok: true, failedStep: '' });
    const finals = first.finals.map(([s]) => s);
    expect(finals.filter((s) => s !== 'wg-quick-up')).toEqual(UP6_STEPS);
    expect(finals.indexOf('wg-quick-up')).toBeGreaterThan(finals.indexOf('clean-stale'));
    expect(finals.indexOf('wg-quick-up')).toBeLessThan(finals.indexOf('await-handshake'));
    const fw6 = first.steps.find((s) => s.step === 'firewall6' && s.state === 'done')!;
    // ONE ip6tables restore process for the three tables, same backend as IPv4.
    expect(fw6.commands.map((c) => plain(c.argv))).toEqual(['ip6tables-nft-save', 'ip6tables-nft-restore -w 5 --noflush']);
    const resolve = first.steps.find((s) => s.step === 'resolve-lan' && s.state === 'done')!;
    expect(resolve.commands.map((c) => plain(c.argv))).toContain(`ip -j -6 route get ${lab.macAddress6}`);
    const applied = await snapshot(lab);
    expect(applied).toMatchObject({ forwarding6: '1', acceptRa: '2', ipForward: '1', link: true });
    expect(applied.ruleset6).toContain(`-A WGCTL-POST -s ${lab.macAddress6}/128 -o ${lab.wgVm} -j SNAT --to-source ${lab.vmTunnelAddress6}`);
    expect(applied.ruleset6).toContain('--reject-with icmp6-adm-prohibited');

    // NAT66: at the far end of the tunnel the Mac's IPv6 echo requests come from the VM's tunnel IPv6.
    const lines = await lab.capture(lab.nsSrv, ['-i', lab.wgSrv, 'icmp6'], async () => {
      expect(await lab.macPing(lab.serverTunnelAddress6, 4)).toBe(true);
    });
    const requests = lines.filter((l) => l.includes('echo request'));
    expect(requests.length).toBeGreaterThanOrEqual(1);
    for (const line of requests) expect(line).toContain(`IP6 ${lab.vmTunnelAddress6} > ${lab.serverTunnelAddress6}: ICMP6, echo request`);
    expect(lines.join('\n')).not.toContain(lab.macAddress6);

    // UDP too: a datagram from the Mac arrives at the far end from the VM's tunnel IPv6.
    const udp = await lab.capture(lab.nsSrv, ['-i', lab.wgSrv, 'udp and port 9'], async () => {
      const send = `const s = require('node:dgram').createSocket('udp6'); s.send('wgctl', 9, '${lab.serverTunnelAddress6}', () => s.close());`;
      await lab.mac.run([process.execPath, '-e', send]);
    });
    const datagrams = udp.filter((line) => line.includes('UDP'));
    expect(datagrams.length).toBeGreaterThanOrEqual(1);
    for (const line of datagrams) expect(line).toMatch(new RegExp(`IP6 ${lab.vmTunnelAddress6}\\.\\d+ > ${lab.serverTunnelAddress6}\\.9: UDP`));

    // Kill switch: the server's uplink IPv6 is on-link outside the tunnel; the Mac's packets must not leave that way.
    const leakLines = await lab.capture(lab.nsSrv, ['-i', lab.vethSrv, 'icmp6 and ip6[40] == 128'], async () => {
      const leak = await lab.mac.run(['ping', '-6', '-n', '-c', '1', '-W', '1', lab.serverAddress6], { allowFailure: true });
      expect(leak.exitCode).not.toBe(0);
      expect(leak.stdout).toMatch(/prohibited/i);
    });
    expect(leakLines.filter((l) => l.includes('echo request'))).toEqual([]);

    // Second Up: nothing to do; ip6tables, sysctls, everything unchanged.
    const second = await up6(engine, lab);
    expect(second.outcome.ok).toBe(true);
    const skipped = second.finals.filter(([, st]) => st === 'skipped').map(([s]) => s);
    expect(skipped).toEqual(expect.arrayContaining(['firewall6', 'ip6-forward', 'firewall', 'ip-forward', 'wg-quick-up']));
    expect(second.steps.filter((s) => s.step === 'firewall6').flatMap((s) => s.commands.map((c) => plain(c.argv)))).toEqual(['ip6tables-nft-save']);
    expect(await snapshot(lab)).toEqual(applied);

    const sample = await engine.sample();
    const checks = Object.fromEntries(sample.status.checks.map((c) => [c.name, c.ok]));
    expect(checks).toMatchObject({ 'firewall6-filter': true, 'firewall6-nat': true, 'firewall6-mangle': true, 'ip6-forward': true });

    const firstDown = await down(engine);
    expect(firstDown.outcome).toMatchObject({ ok: true });
    expect(firstDown.finals.map(([s]) => s)).toEqual(DOWN6_STEPS);
    expect(await snapshot(lab)).toEqual(start);

    const secondDown = await down(engine);
    expect(secondDown.outcome.ok).toBe(true);
    expect(await snapshot(lab)).toEqual(start);
  });

  it('an Up without mac_source6 after an IPv6 Up takes the IPv6 side away and keeps IPv4', async () => {
    const engine = engineFor(lab);
    const start = await snapshot(lab);
    expect((await up6(engine, lab)).outcome.ok).toBe(true);
    expect(await lab.vmSysctl('net.ipv6.conf.all.forwarding')).toBe('1');

    const v4only = await collect((onStep) => engine.up({ macSource: lab.macAddress }, { onStep }));
    expect(v4only.outcome).toMatchObject({ ok: true });
    expect(v4only.finals.filter(([, st]) => st === 'done').map(([s]) => s)).toEqual(['read-config', 'resolve-lan', 'firewall6', 'await-handshake', 'verify']);
    const after = await snapshot(lab);
    expect({ ruleset6: after.ruleset6, forwarding6: after.forwarding6, acceptRa: after.acceptRa }).toEqual({
      ruleset6: start.ruleset6,
      forwarding6: start.forwarding6,
      acceptRa: start.acceptRa,
    });
    expect((await new JournalStore(lab.stateDir).read())!.v6).toBeUndefined();
    expect(await lab.macPing(lab.serverTunnelAddress)).toBe(true);
    expect(await lab.macPing(lab.serverTunnelAddress6, 1)).toBe(false);

    const finalDown = await down(engine);
    expect(finalDown.outcome.ok).toBe(true);
    expect(finalDown.finals.map(([s]) => s)).not.toContain('firewall6');
    expect(await snapshot(lab)).toEqual(start);
  });

  it('the journal is lost after an IPv6 Up: Down finds and removes the ip6tables chains by name too', async () => {
    const engine = engineFor(lab);
    const start = await snapshot(lab);
    expect((await up6(engine, lab)).outcome.ok).toBe(true);
    expect(await lab.vmRuleset6()).toContain('WGCTL-FWD');
    await new JournalStore(lab.stateDir).remove();

    const blind = await collect((onStep) => engine.down({ forceInterfaceDown: true }, { onStep }));
    expect(blind.outcome).toMatchObject({ ok: true });
    expect(blind.finals.map(([s]) => s)).toContain('firewall6');
    const after = await snapshot(lab);
    // No chain, jump or rule of ours in either family. (Which empty tables wgctl created, and the
    // sysctls' previous values, were in the journal: without it those are left as they are.)
    const rules = (save: string | boolean) => String(save).split('\n').filter((l) => /WGCTL|^-A /.test(l));
    expect({ v4: rules(after.ruleset), v6: rules(after.ruleset6), link: after.link }).toEqual({ v4: [], v6: [], link: start.link });
    expect(after.forwarding6).toBe('1');
    // Put them back for the next tests.
    for (const [key, value] of [
      ['net.ipv6.conf.all.forwarding', start.forwarding6],
      [`net.ipv6.conf.${lab.vethLan}.accept_ra`, start.acceptRa],
      ['net.ipv4.ip_forward', start.ipForward],
      ['net.ipv4.conf.all.src_valid_mark', start.srcValidMark],
    ] as const) {
      await lab.vm.run(['sysctl', '-q', '-w', `${key}=${String(value)}`]);
    }
  });

  it('a failure in the IPv6 firewall step or the IPv6 forwarding step rolls back everything', async () => {
    const start = await snapshot(lab);

    const failing = new FailingRunner(lab.vm, 'ip6tables-nft-restore');
    const firewallFails = await up6(engineFor(lab, { runner: failing, sysctl: new RunnerSysctl(failing) }), lab);
    expect(failing.failed).toBe(1);
    expect(firewallFails.outcome).toMatchObject({ ok: false, failedStep: 'firewall6' });
    expect(firewallFails.outcome.error).toMatch(/injected failure of ip6tables-nft-restore/);
    expect(firewallFails.finals.map(([s]) => s)).toContain('rollback-firewall6');
    expect(await snapshot(lab)).toEqual(start);

    // The forwarding write fails after accept_ra went 1 → 2: the rollback puts accept_ra back.
    const sysctl = new RunnerSysctl(lab.vm);
    const failingSysctl: Sysctl = {
      read: (name, r) => sysctl.read(name, r),
      where: (name) => sysctl.where(name),
      write: (name, value, r) =>
        name === 'net.ipv6.conf.all.forwarding' && value === '1' ? Promise.reject(new Error('injected: forwarding write refused')) : sysctl.write(name, value, r),
    };
    const forwardFails = await up6(engineFor(lab, { sysctl: failingSysctl }), lab);
    expect(forwardFails.outcome).toMatchObject({ ok: false, failedStep: 'ip6-forward' });
    expect(forwardFails.finals.map(([s]) => s)).toEqual(expect.arrayContaining(['rollback-ip6-forward', 'rollback-firewall6']));
    expect(await snapshot(lab)).toEqual(start);
  });

  it('refuses mac_source6 when the config has no IPv6 Address, and when the Mac IPv6 faces another interface', async () => {
    const start = await snapshot(lab);
    // No IPv6 tunnel address: read-config fails before any change.
    const v4only = new VmLab({ prefix: 'wv6' });
    try {
      v4only.writeConfigs();
      const engine = engineFor(lab, { configPath: v4only.vmConfigPath });
      const result = await up6(engine, lab);
      expect(result.outcome).toMatchObject({ ok: false, failedStep: 'read-config' });
      expect(result.outcome.error).toBe(`mac_source6 given but ${v4only.vmConfigPath} has no IPv6 Address in [Interface]: nothing to SNAT the Mac's IPv6 traffic to`);
    } finally {
      await v4only.destroy();
    }
    // The Mac's IPv6 reached through the uplink, its IPv4 through the vnic: refused at resolve-lan.
    const other = await up6(engineFor(lab), lab, { macSource6: '2001:db8:6:2::99' });
    expect(other.outcome).toMatchObject({ ok: false, failedStep: 'resolve-lan' });
    expect(other.outcome.error).toMatch(new RegExp(`reached through ${lab.vethUp}, its IPv4 198\\.51\\.100\\.2/32 through ${lab.vethLan}`));
    expect(await snapshot(lab)).toEqual(start);

    // Dry-run: the plan names the ip6tables batch and the sysctl writes, and changes nothing.
    const plan = await up6(engineFor(lab), lab, { dryRun: true });
    expect(plan.outcome.ok).toBe(true);
    const fw6 = plan.steps.find((s) => s.step === 'firewall6' && s.state === 'done')!;
    expect(fw6.commands.filter((c) => c.dryRun).map((c) => plain(c.argv))).toEqual(['ip6tables-nft-restore -w 5 --noflush']);
    expect(fw6.message).toContain(`-A WGCTL-POST -s ${lab.macAddress6}/128 -o ${lab.wgVm} -j SNAT --to-source ${lab.vmTunnelAddress6}`);
    const fwd6 = plan.steps.find((s) => s.step === 'ip6-forward' && s.state === 'done')!;
    expect(fwd6.message).toBe(`would write 2 to sysctl net.ipv6.conf.${lab.vethLan}.accept_ra (now 1); would write 1 to sysctl net.ipv6.conf.all.forwarding (now 0)`);
    expect(await snapshot(lab)).toEqual(start);
  });

  it('the agent dies mid-Up (no rollback): a new engine on the same journal removes the IPv6 side too', async () => {
    const start = await snapshot(lab);
    const dying = engineFor(lab, { stallAfterStep: 'ip6-forward' });
    const stalled = up6(dying, lab);
    const journal = new JournalStore(lab.stateDir);
    for (let i = 0; i < 100 && (await journal.read())?.v6?.forwarding == null; i++) await new Promise((r) => setTimeout(r, 50));
    const midUp = await journal.read();
    expect(midUp).toMatchObject({ phase: 'up-in-progress', v6: { macSource: `${lab.macAddress6}/128`, forwarding: { previous: '0', applied: '1' }, acceptRa: { previous: '1', applied: '2' } } });
    expect(await lab.vmRuleset6()).toContain('WGCTL-FWD');

    // A new process: reconcile sees phase up-in-progress and removes what the journal lists.
    const reconciled = await engineFor(lab).reconcile();
    expect(reconciled).toMatchObject({ ok: true });
    expect(await snapshot(lab)).toEqual(start);
    expect(await journal.read()).toBeNull();

    // Let the stalled one end (stopping: it must not roll back anything of its own now).
    await dying.stop('test');
    expect((await stalled).outcome.ok).toBe(false);
    expect(await snapshot(lab)).toEqual(start);
  });
});
