/**
 * The engine against real wg-quick (wireguard-go), real iptables (nft backend) and real
 * sysctls, inside network namespaces of its own (see testing/netns.ts). Jest runs in the
 * root namespace, so every command is prefixed with `ip netns exec` and sysctls go
 * through sysctl(8) in the VM namespace.
 */
import { existsSync } from 'node:fs';
import type { AppliedTunnel } from '@wgctl/agent-kit';
import type { RunOptions, RunResult, Runner } from '@wgctl/runner';
import type { VmEngine } from '../service/engine/engine';
import { JournalStore } from '../service/journal';
import { RunnerSysctl } from '../host/sysctl';
import { type Collected, collect, engineFor, plain } from '../testing/engine-harness';
import { VmLab, canUseNetns } from '../testing/netns';

const describeNetns = canUseNetns() ? describe : describe.skip;


/** The plan (ctx.onPlan) as it came, and the steps that had started by then. */
let plans: { plan: AppliedTunnel; stepsStarted: string[] }[] = [];
/** Each ctx.onTunnelReady as it came, and the steps that had ended by then. */
let readies: { handshake: string; stepsEnded: string[] }[] = [];
const up = (engine: VmEngine, lab: VmLab, extra: { dryRun?: boolean; handshakeTimeoutMs?: number } = {}): Promise<Collected> => {
  plans = [];
  readies = [];
  const started: string[] = [];
  const ended: string[] = [];
  return collect((onStep) =>
    engine.up(
      { macSource: lab.macAddress, ...extra },
      {
        onStep: (step) => {
          if (step.state === 'started') started.push(step.step);
          else ended.push(step.step);
          onStep(step);
        },
        onPlan: (plan) => plans.push({ plan, stepsStarted: [...started] }),
        onTunnelReady: (handshake) => readies.push({ handshake, stepsEnded: [...ended] }),
      },
    ),
  );
};
/** The iptables-restore processes an operation started (each spawn blocks the agent ~2 ms). */
const restoresIn = (result: Collected): number =>
  result.steps.filter((s) => s.state !== 'started').flatMap((s) => s.commands).filter((c) => c.argv.some((a) => a.endsWith('tables-nft-restore'))).length;
const down = (engine: VmEngine, extra: { dryRun?: boolean; forceInterfaceDown?: boolean } = {}): Promise<Collected> =>
  collect((onStep) => engine.down(extra, { onStep }));

interface Snapshot {
  ruleset: string;
  ipRules: string;
  nftTables: string;
  ipForward: string;
  srcValidMark: string;
  link: boolean;
}

async function snapshot(lab: VmLab): Promise<Snapshot> {
  return {
    ruleset: await lab.vmRuleset(),
    ipRules: await lab.vmIpRules(),
    nftTables: await lab.vmNftTables(),
    ipForward: await lab.vmSysctl('net.ipv4.ip_forward'),
    srcValidMark: await lab.vmSysctl('net.ipv4.conf.all.src_valid_mark'),
    link: await lab.vmLinkExists(lab.wgVm),
  };
}

/** In the order they end; wg-quick-up runs beside the firewall and forwarding steps, so it ends anywhere between clean-stale and await-handshake. */
const UP_STEPS = [
  'read-config',
  'resolve-lan',
  'clean-stale',
  'detect-backend',
  'firewall',
  'ip-forward',
  'await-handshake',
  'verify',
];
const DOWN_STEPS = [
  'read-journal',
  'detect-backend',
  'ip-forward',
  'firewall',
  'firewall-tables',
  'wg-quick-down',
  'clean-stale',
  'verify',
];

describeNetns('VmEngine in network namespaces', () => {
  let lab: VmLab;

  beforeEach(async () => {
    lab = await new VmLab().create();
  });

  afterEach(async () => {
    await lab?.destroy();
  });

  it('up/up/down/down: real handshake, SNAT to the tunnel address, kill switch, and the start state restored exactly', async () => {
    const engine = engineFor(lab);
    const start = await snapshot(lab);
    expect(start).toMatchObject({ ruleset: '', ipForward: '0', link: false });

    const first = await up(engine, lab);
    expect(first.outcome).toMatchObject({ ok: true, failedStep: '' });
    const finals = first.finals.map(([s]) => s);
    expect(finals.filter((s) => s !== 'wg-quick-up')).toEqual(UP_STEPS);
    expect(finals.indexOf('wg-quick-up')).toBeGreaterThan(finals.indexOf('clean-stale'));
    expect(finals.indexOf('wg-quick-up')).toBeLessThan(finals.indexOf('await-handshake'));
    // What the controller hands the Mac: the endpoint it pins, and the tunnel's address.
    expect(first.outcome.vmApplied).toEqual({
      endpoints: [{ host: lab.serverAddress, ip: lab.serverAddress, port: 51820 }],
      tunnelAddresses: [`${lab.vmTunnelAddress}/24`],
    });
    // The same, said once before the tunnel came up (the controller makes the Mac fail-closed meanwhile).
    expect(plans).toHaveLength(1);
    expect(plans[0].plan).toEqual(first.outcome.vmApplied);
    expect(plans[0].stepsStarted).not.toContain('wg-quick-up');
    // Tunnel-ready once, when the handshake came and every change was in, before verify ended.
    expect(readies).toHaveLength(1);
    expect(readies[0].handshake).toMatch(/^handshake with /);
    expect(readies[0].stepsEnded).toEqual(expect.arrayContaining(['wg-quick-up', 'ip-forward', 'await-handshake']));
    expect(readies[0].stepsEnded).not.toContain('verify');
    const handshake = first.steps.find((s) => s.step === 'await-handshake' && s.state === 'done')!;
    expect(handshake.message).toMatch(/^handshake with 203\.0\.113\.1:51820 \(\d+ ms\)$/);
    process.stdout.write(`engine Up: ${first.outcome.totalMs} ms total, ${handshake.message}\n`);
    // Steps stream their argv.
    const firewallStep = first.steps.find((s) => s.step === 'firewall' && s.state === 'done')!;
    // ONE restore batch for the three tables (the rules go to its stdin): one process in the whole Up.
    expect(firewallStep.commands.map((c) => plain(c.argv))).toEqual(['iptables-nft-restore -w 5 --noflush']);
    expect(restoresIn(first)).toBe(1);
    expect(firewallStep.message).toMatch(
      /^iptables-nft: filter WGCTL-FWD \(forwarding \+ kill switch\): created, 4 rules written, jump from FORWARD; nat WGCTL-POST \(SNAT to the tunnel address\): created, 1 rules written, jump from POSTROUTING; mangle WGCTL-MSS \(TCP MSS clamping\): created, 2 rules written, jump from FORWARD$/,
    );
    expect(first.steps.find((s) => s.step === 'wg-quick-up' && s.state === 'done')!.commands.map((c) => plain(c.argv))).toContain(
      `wg-quick up ${lab.vmConfigPath}`,
    );
    const afterFirst = await snapshot(lab);
    expect(afterFirst.ipForward).toBe('1');
    expect(afterFirst.link).toBe(true);

    // SNAT: the Mac's ping reaches the server through the tunnel with the tunnel address as source.
    const lines = await lab.capture(lab.nsVm, ['-i', lab.wgVm, 'icmp'], async () => {
      expect(await lab.macPing(lab.serverTunnelAddress, 4)).toBe(true);
    });
    const requests = lines.filter((l) => l.includes('ICMP echo request'));
    expect(requests.length).toBeGreaterThanOrEqual(1);
    for (const line of requests) expect(line).toMatch(new RegExp(`IP ${lab.vmTunnelAddress} > ${lab.serverTunnelAddress}: ICMP echo request`));
    expect(lines.join('\n')).not.toContain(lab.macAddress);

    // Kill switch: the server's uplink address is routed outside the tunnel (on-link); the Mac's packets must not leave that way.
    const leak = await lab.mac.run(['ping', '-n', '-c', '1', '-W', '1', lab.serverAddress], { allowFailure: true });
    expect(leak.exitCode).not.toBe(0);
    expect(leak.stdout).toMatch(/Packet filtered|prohibited/i);

    // Second Up: nothing to do, same ruleset.
    const second = await up(engine, lab);
    expect(second.outcome.ok).toBe(true);
    const skipped = second.finals.filter(([, st]) => st === 'skipped').map(([s]) => s);
    expect(skipped).toEqual(expect.arrayContaining(['firewall', 'ip-forward', 'clean-stale', 'wg-quick-up']));
    expect(second.steps.filter((s) => s.step.startsWith('firewall')).flatMap((s) => s.commands.map((c) => c.argv)).filter((a) => !a.includes('iptables-nft-save'))).toEqual([]);
    expect(await snapshot(lab)).toEqual(afterFirst);

    const firstDown = await down(engine);
    expect(firstDown.outcome).toMatchObject({ ok: true });
    expect(firstDown.finals.map(([s]) => s)).toEqual(DOWN_STEPS);
    // The three chains removed in one batch too.
    expect(restoresIn(firstDown)).toBe(1);
    expect(await snapshot(lab)).toEqual(start);

    const secondDown = await down(engine);
    expect(secondDown.outcome.ok).toBe(true);
    expect(secondDown.finals.filter(([, st]) => st === 'done').map(([s]) => s)).toEqual(['detect-backend', 'verify']);
    expect(await snapshot(lab)).toEqual(start);
    expect(existsSync(new JournalStore(lab.stateDir).path)).toBe(false);
  });

  it("never touches the user's own rules; the ruleset after down equals the one before up", async () => {
    const user = [
      ['-t', 'filter', '-A', 'FORWARD', '-s', '203.0.113.99/32', '-m', 'comment', '--comment', 'user "quoted" rule', '-j', 'DROP'],
      ['-t', 'filter', '-P', 'FORWARD', 'DROP'],
      ['-t', 'nat', '-A', 'POSTROUTING', '-o', lab.vethUp, '-j', 'MASQUERADE'],
      ['-t', 'mangle', '-A', 'FORWARD', '-p', 'udp', '-j', 'ACCEPT'],
    ];
    for (const args of user) await lab.vm.run(['iptables', '-w', ...args]);
    const engine = engineFor(lab);
    const start = await snapshot(lab);
    expect(start.ruleset).toContain('user "quoted" rule'.replace(/"/g, '\\"'));

    expect((await up(engine, lab)).outcome.ok).toBe(true);
    const applied = await lab.vmRuleset();
    // Own jumps come first, the user's rules stay in place and in order.
    expect(applied).toMatch(/-A FORWARD -m comment --comment wgctl -j WGCTL-FWD\n-A FORWARD -s 203\.0\.113\.99\/32/);
    // FORWARD policy DROP: the Mac still gets through, thanks to the own chain.
    expect(await lab.macPing(lab.serverTunnelAddress)).toBe(true);
    expect((await up(engine, lab)).outcome.ok).toBe(true);
    expect(await lab.vmRuleset()).toBe(applied);

    expect((await down(engine)).outcome.ok).toBe(true);
    expect((await down(engine)).outcome.ok).toBe(true);
    expect(await snapshot(lab)).toEqual(start);
  });

  it('detects and uses iptables-legacy when the live rules are legacy ones', async () => {
    for (const args of [
      ['-t', 'filter', '-A', 'INPUT', '-p', 'udp', '--dport', '53', '-j', 'ACCEPT'],
      ['-t', 'nat', '-A', 'POSTROUTING', '-o', lab.vethUp, '-j', 'MASQUERADE'],
      ['-t', 'mangle', '-A', 'PREROUTING', '-p', 'udp', '-j', 'ACCEPT'],
    ]) {
      await lab.vm.run(['iptables-legacy', '-w', ...args]);
    }
    const legacySave = async (): Promise<string> =>
      (await lab.vm.run(['iptables-legacy-save'])).stdout
        .split('\n')
        .filter((l) => !l.startsWith('#'))
        .join('\n');
    const before = await legacySave();
    const engine = engineFor(lab);
    const result = await up(engine, lab);
    expect(result.outcome.ok).toBe(true);
    expect(result.steps.find((s) => s.step === 'detect-backend' && s.state === 'done')?.message).toMatch(
      /^iptables-legacy \(`iptables` is nft but only legacy holds rules; existing rules: nft 0, legacy 3\)$/,
    );
    expect(await legacySave()).toContain('-A WGCTL-POST -s 198.51.100.2/32 -o');
    expect(await lab.vmRuleset()).toBe(''); // nothing went to the nft side
    expect(await lab.macPing(lab.serverTunnelAddress)).toBe(true);
    expect((await down(engine)).outcome.ok).toBe(true);
    expect(await legacySave()).toBe(before);
  });

  it('dry-run records the mutating commands and changes nothing', async () => {
    const engine = engineFor(lab);
    const start = await snapshot(lab);
    const plan = await up(engine, lab, { dryRun: true });
    expect(plan.outcome.ok).toBe(true);
    expect(plans).toEqual([]); // nothing comes up: no plan to act on
    expect(readies).toEqual([]);
    // What the Up would apply, as a real Up reports it.
    expect(plan.outcome.vmApplied).toEqual({
      endpoints: [{ host: lab.serverAddress, ip: lab.serverAddress, port: 51820 }],
      tunnelAddresses: [`${lab.vmTunnelAddress}/24`],
    });
    const recorded = plan.steps.flatMap((s) => s.commands).filter((c) => c.dryRun).map((c) => plain(c.argv));
    expect(recorded).toEqual(expect.arrayContaining(['iptables-nft-restore -w 5 --noflush', `wg-quick up ${lab.vmConfigPath}`]));
    // What the batches would write is in the plan: argv alone does not show stdin.
    const planned = plan.steps.find((s) => s.step === 'firewall' && s.state === 'done')?.message;
    expect(planned).toContain('batch: *filter ; :WGCTL-FWD - [0:0] ; -F WGCTL-FWD ;');
    expect(planned).toContain(`-A WGCTL-POST -s 198.51.100.2/32 -o ${lab.wgVm} -j SNAT --to-source 192.0.2.2 ; -I POSTROUTING 1 -m comment --comment wgctl -j WGCTL-POST ; COMMIT`);
    expect(plan.steps.find((s) => s.step === 'ip-forward' && s.state === 'done')?.message).toMatch(/^would write 1/);
    expect(await snapshot(lab)).toEqual(start);
    expect(existsSync(new JournalStore(lab.stateDir).path)).toBe(false);
  });

  it('leaves up an interface it did not bring up, unless forced', async () => {
    await lab.vm.run(['wg-quick', 'up', lab.vmConfigPath]);
    const engine = engineFor(lab);
    const result = await up(engine, lab);
    expect(result.outcome.ok).toBe(true);
    expect(result.steps.find((s) => s.step === 'wg-quick-up' && s.state === 'skipped')?.message).toMatch(/not brought up by wgctl/);
    expect((await down(engine)).outcome.ok).toBe(true);
    expect(await lab.vmLinkExists(lab.wgVm)).toBe(true);
    expect(await lab.vmRuleset()).not.toContain('WGCTL');
    const forced = await down(engine, { forceInterfaceDown: true });
    expect(forced.outcome.ok).toBe(true);
    expect(await lab.vmLinkExists(lab.wgVm)).toBe(false);
    // wg-quick's own policy rules are gone with it.
    expect(await lab.vmIpRules()).not.toMatch(/fwmark|suppress_prefixlength/);
  });

  it('a crash mid-Up (process frozen after wg-quick up) is undone by Down from a new engine on the same state dir', async () => {
    const start = await snapshot(lab);
    let frozen = false;
    let wgQuickRan = false;
    let forwardingOn = false;
    // Freezes every command once `wg-quick up` and the forwarding switch (the last change beside
    // it) have both run: the first engine never resumes, like after kill -9.
    const freezing: Runner = {
      run: async (argv: readonly string[], options?: RunOptions): Promise<RunResult> => {
        if (frozen) return new Promise<RunResult>(() => undefined);
        const result = await lab.vm.run(argv, options);
        if (argv.includes('wg-quick')) wgQuickRan = true;
        if (argv.join(' ') === 'sysctl -w net.ipv4.ip_forward=1') forwardingOn = true;
        frozen = wgQuickRan && forwardingOn;
        return result;
      },
    };
    const crashed = engineFor(lab, { runner: freezing, sysctl: new RunnerSysctl(freezing) });
    void crashed.up({ macSource: lab.macAddress });
    for (let i = 0; i < 100 && !frozen; i++) await new Promise((r) => setTimeout(r, 100));
    expect(frozen).toBe(true);
    const mid = await snapshot(lab);
    expect(mid).toMatchObject({ ipForward: '1', link: true });
    expect(mid.ruleset).toContain('WGCTL-FWD');
    expect((await new JournalStore(lab.stateDir).read())?.phase).toBe('up-in-progress');

    // Explicit Down by a new engine (the program's start-up reconcile is tested in vm-agent.netns.test.ts).
    const fresh = engineFor(lab);
    const result = await down(fresh);
    expect(result.outcome.ok).toBe(true);
    expect(result.steps.find((s) => s.step === 'read-journal' && s.state === 'done')?.message).toMatch(/^journal \(up-in-progress\)/);
    expect(await snapshot(lab)).toEqual(start);
    // A second Down finds nothing left.
    expect((await down(fresh)).outcome.ok).toBe(true);
    expect(await snapshot(lab)).toEqual(start);
  });

  it('cleans the leftovers of a crashed wg-quick (policy rules, nft table) before Up', async () => {
    const start = await snapshot(lab);
    // wg-quick up, then the link vanishes without wg-quick down: rules and nft table stay behind.
    await lab.vm.run(['wg-quick', 'up', lab.vmConfigPath]);
    await lab.vm.run(['ip', 'link', 'del', lab.wgVm]);
    expect(await lab.vmIpRules()).toMatch(/not from all fwmark 0xca6c lookup 51820/);
    expect(await lab.vmNftTables()).toContain(`wg-quick-${lab.wgVm}`);
    const engine = engineFor(lab);
    const result = await up(engine, lab);
    expect(result.outcome.ok).toBe(true);
    const clean = result.steps.find((s) => s.step === 'clean-stale' && s.state === 'done')!;
    expect(clean.message).toMatch(/nft table ip wg-quick-wtv.*not fwmark 0xca6c lookup 51820.*suppress_prefixlength 0/);
    expect(clean.commands.map((c) => plain(c.argv))).toEqual(
      expect.arrayContaining([`nft delete table ip wg-quick-${lab.wgVm}`, expect.stringMatching(/^ip -4 rule delete priority \d+ not fwmark 0xca6c table 51820$/)]),
    );
    expect((await down(engine)).outcome.ok).toBe(true);
    const end = await snapshot(lab);
    // wg-quick's own src_valid_mark=1 from the crashed run is not ours to restore.
    expect({ ...end, srcValidMark: start.srcValidMark }).toEqual(start);
  });

  it('refuses a concurrent Up while one runs', async () => {
    const engine = engineFor(lab);
    const running = engine.up({ macSource: lab.macAddress });
    await expect(engine.up({ macSource: lab.macAddress })).rejects.toThrow(/another Up is in progress/);
    await expect(engine.down({})).rejects.toThrow(/another Up is in progress/);
    expect((await running).ok).toBe(true);
    expect((await engine.down({})).ok).toBe(true);
  });
});

describeNetns('VmEngine when the handshake does not come', () => {
  let lab: VmLab;

  afterEach(async () => {
    await lab?.destroy();
  });

  it('says "no reply" when the server is silent, and rolls everything back', async () => {
    lab = await new VmLab({ serverUp: false }).create();
    const engine = engineFor(lab);
    const start = await snapshot(lab);
    const result = await up(engine, lab, { handshakeTimeoutMs: 1500 });
    expect(result.outcome).toMatchObject({ ok: false, failedStep: 'await-handshake' });
    expect(result.outcome.error).toMatch(/no handshake within 1500 ms: no reply from endpoint 203\.0\.113\.1:51820: sent \d+ bytes via wtv/);
    expect(result.finals.map(([s]) => s)).toEqual(expect.arrayContaining(['rollback-ip-forward', 'rollback-firewall', 'rollback-wg-quick-down']));
    expect(await snapshot(lab)).toEqual(start);
    expect(existsSync(new JournalStore(lab.stateDir).path)).toBe(false);

    // The caller's deadline, not the 60 s asked for, bounds the wait (minus the reserve for the rollback).
    const deadlineMs = Date.now() + 6000;
    const bounded = await collect((onStep) => engine.up({ macSource: lab.macAddress, handshakeTimeoutMs: 60_000 }, { onStep, deadlineMs }));
    const waited = Number(/^no handshake within (\d+) ms/.exec(bounded.outcome.error)?.[1]);
    expect(waited).toBeLessThanOrEqual(3000); // 6000 - the steps before it - 3000 reserve
    expect(Date.now()).toBeLessThan(deadlineMs);
    expect(await snapshot(lab)).toEqual(start);
  });

  it('says "no route" for an endpoint nothing routes to, and pokes a peer without keepalive', async () => {
    lab = await new VmLab({ keepalive: 0 }).create();
    // An IPv6 endpoint in a VM without IPv6 routes.
    const { readFileSync, writeFileSync } = await import('node:fs');
    writeFileSync(lab.vmConfigPath, readFileSync(lab.vmConfigPath, 'utf8').replace(`Endpoint = ${lab.serverAddress}:51820`, 'Endpoint = [2001:db8::1]:51820'));
    const engine = engineFor(lab);
    const result = await up(engine, lab, { handshakeTimeoutMs: 1000 });
    expect(result.outcome.ok).toBe(false);
    expect(result.outcome.error).toMatch(/no route to endpoint \[2001:db8::1\]:51820/);
    const argvs = result.steps.flatMap((s) => s.commands.map((c) => plain(c.argv)));
    expect(argvs).toContain(`wg set ${lab.wgVm} peer ${lab.serverKeys.publicKey} persistent-keepalive 25`);
    expect(argvs).toContain(`wg set ${lab.wgVm} peer ${lab.serverKeys.publicKey} persistent-keepalive off`);
  });

  it('handshakes without PersistentKeepalive thanks to the poke', async () => {
    lab = await new VmLab({ keepalive: 0 }).create();
    const engine = engineFor(lab);
    const result = await up(engine, lab);
    expect(result.outcome.ok).toBe(true);
    expect(result.steps.find((s) => s.step === 'read-config' && s.state === 'done')?.message).toMatch(/no PersistentKeepalive/);
    const dump = await lab.vm.run(['wg', 'show', lab.wgVm, 'persistent-keepalive']);
    expect(dump.stdout.trim().endsWith('off')).toBe(true);
    expect((await engine.down({})).ok).toBe(true);
  });
});
