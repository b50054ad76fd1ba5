/**
 * Self-healing for real (issue #15 item 2): the engine brings the VM side up in network
 * namespaces (wireguard-go, iptables-nft, sysctls of the VM namespace), then the test removes
 * what Up applied the way an admin or another tool would, and measures how long until it is back.
 * `nft monitor` runs inside the VM namespace, as the agent runs it on a real VM.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnStreaming, type RunOptions, type RunResult, type Runner } from '@wgctl/runner';
import { createPki } from '@wgctl/transport';
import type { VmEngine } from '../service/engine/engine';
import { AgentProcess, buildBundles, runClient, type ClientLine } from '../testing/agent-process';
import { engineFor } from '../testing/engine-harness';
import { VmLab, canUseNetns } from '../testing/netns';

const describeNetns = canUseNetns() ? describe : describe.skip;
const HEAL_DEADLINE_MS = 2_000;

/** Polls `ok` every 50 ms; the time it took, or throws after `limitMs` (with room to say how late it was). */
async function timeUntil(ok: () => Promise<boolean>, limitMs: number): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < limitMs) {
    if (await ok()) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`not back within ${limitMs} ms`);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The kernel has the rule back a moment before the heal's restore process is reaped and counted. */
async function countedHeals(engine: VmEngine, n: number): Promise<void> {
  await timeUntil(async () => (engine.heals?.count ?? 0) >= n, 1_000).catch(() => undefined);
}

describeNetns('vm-agent self-heal in network namespaces', () => {
  let lab: VmLab;
  let engine: VmEngine | undefined;
  /** While set, the VM's iptables-nft-restore waits this long first: a heal stays in flight. */
  let slowRestoreMs = 0;
  let restoreStarted: () => void = () => undefined;

  const jump = (): string => '-A FORWARD -m comment --comment wgctl -j WGCTL-FWD';
  const snat = (): string => `-A WGCTL-POST -s ${lab.macAddress}/32 -o ${lab.wgVm} -j SNAT --to-source ${lab.vmTunnelAddress}`;
  const iptables = (...args: string[]): Promise<RunResult> => lab.vm.run(['iptables-nft', ...args]);
  const rulesHave = async (line: string, table = 'filter'): Promise<boolean> => (await iptables('-t', table, '-S')).stdout.split('\n').includes(line);

  function startEngine(): VmEngine {
    const slow: Runner = {
      run: async (argv: readonly string[], options?: RunOptions) => {
        if (slowRestoreMs > 0 && argv[0] === 'iptables-nft-restore') {
          restoreStarted();
          await sleep(slowRestoreMs);
        }
        return lab.vm.run(argv, options);
      },
    };
    engine = engineFor(lab, {
      runner: slow,
      selfHeal: {
        checkIntervalMs: 1_000,
        // The monitor of the VM namespace, as the agent would run it there.
        spawnMonitor: (argv, options) => spawnStreaming(['ip', 'netns', 'exec', lab.nsVm, ...argv], options),
      },
    });
    return engine;
  }

  /**
   * After Up: the watcher's first check (once nft monitor runs) is over, so what follows is found
   * the steady-state way — an nft event, or the 1 s sysctl check. nft monitor has no "listening"
   * line: without the wait, a deletion is found by that first check (healed as well, but without
   * the writer's name).
   */
  const settle = (): Promise<void> => sleep(500);

  beforeEach(async () => {
    slowRestoreMs = 0;
    // IPv6 too (documentation prefix 2001:db8:6::/48): the IPv6 case forwards the Mac's IPv6 as well.
    lab = await new VmLab({ prefix: 'wsh', ipv6: true }).create();
  });

  afterEach(async () => {
    await engine?.stop('test over');
    engine = undefined;
    await lab?.destroy();
  });

  it('puts back the FORWARD jump and the flushed forwarding chain within 2 s, naming the process that removed them', async () => {
    const e = startEngine();
    expect((await e.up({ macSource: lab.macAddress })).ok).toBe(true);
    expect(await rulesHave(jump())).toBe(true);
    await settle();

    await iptables('-D', 'FORWARD', '-m', 'comment', '--comment', 'wgctl', '-j', 'WGCTL-FWD');
    expect(await rulesHave(jump())).toBe(false);
    const jumpBackMs = await timeUntil(() => rulesHave(jump()), HEAL_DEADLINE_MS + 1_000);
    expect(jumpBackMs).toBeLessThanOrEqual(HEAL_DEADLINE_MS);
    await countedHeals(e, 1);
    expect(e.heals?.count).toBe(1);
    expect(e.heals?.last?.changes.join(' ')).toMatch(/filter WGCTL-FWD .*jump from FORWARD/);
    // nft monitor names the committing process (its comm: iptables-nft).
    expect(e.heals?.last?.trigger).toMatch(/^nft monitor: delete rule ip filter FORWARD handle \d+$/);
    expect(e.heals?.last?.by).toMatch(/firewall: .*iptables-nft \(pid \d+\)/);

    await iptables('-F', 'WGCTL-FWD');
    const flushedBackMs = await timeUntil(async () => (await iptables('-S', 'WGCTL-FWD')).stdout.split('\n').filter((l) => l.startsWith('-A')).length === 4, HEAL_DEADLINE_MS + 1_000);
    expect(flushedBackMs).toBeLessThanOrEqual(HEAL_DEADLINE_MS);
    await countedHeals(e, 2);
    expect(e.heals?.count).toBe(2);
    process.stdout.write(`self-heal: jump back after ${jumpBackMs} ms, flushed chain after ${flushedBackMs} ms\n`);
  });

  it('turns ip_forward back on within 2 s (and says Linux does not tell who turned it off)', async () => {
    const e = startEngine();
    expect((await e.up({ macSource: lab.macAddress })).ok).toBe(true);
    await settle();
    await lab.vm.run(['sysctl', '-w', 'net.ipv4.ip_forward=0']);
    const backMs = await timeUntil(async () => (await lab.vmSysctl('net.ipv4.ip_forward')) === '1', HEAL_DEADLINE_MS + 1_000);
    expect(backMs).toBeLessThanOrEqual(HEAL_DEADLINE_MS);
    await countedHeals(e, 1);
    expect(e.heals?.last).toMatchObject({
      changes: ['net.ipv4.ip_forward: 0 → 1'],
      by: expect.stringMatching(/unknown: Linux reports no writer/),
      trigger: 'sysctl check: net.ipv4.ip_forward',
    });
    // The journal still holds what was there before Up: Down restores 0, not what was set while up.
    expect((await e.down({})).ok).toBe(true);
    expect(await lab.vmSysctl('net.ipv4.ip_forward')).toBe('0');
    process.stdout.write(`self-heal: ip_forward back after ${backMs} ms\n`);
  });

  it('puts the SNAT rule back within 2 s: the Mac reaches the server through the tunnel again', async () => {
    const e = startEngine();
    expect((await e.up({ macSource: lab.macAddress })).ok).toBe(true);
    expect(await rulesHave(snat(), 'nat')).toBe(true);
    await settle();
    await iptables('-t', 'nat', '-D', 'WGCTL-POST', '-s', `${lab.macAddress}/32`, '-o', lab.wgVm, '-j', 'SNAT', '--to-source', lab.vmTunnelAddress);
    const backMs = await timeUntil(() => rulesHave(snat(), 'nat'), HEAL_DEADLINE_MS + 1_000);
    expect(backMs).toBeLessThanOrEqual(HEAL_DEADLINE_MS);
    await countedHeals(e, 1);
    expect(e.heals?.last?.changes.join(' ')).toMatch(/nat WGCTL-POST/);
    expect(await lab.macPing(lab.serverTunnelAddress, 2)).toBe(true);
    process.stdout.write(`self-heal: SNAT back after ${backMs} ms\n`);
  });

  it('IPv6 (mac_source6): the flushed ip6 SNAT chain and net.ipv6.conf.all.forwarding=0 are put back within 2 s', async () => {
    const e = startEngine();
    expect((await e.up({ macSource: lab.macAddress, macSource6: lab.macAddress6 })).ok).toBe(true);
    const snat6 = `-A WGCTL-POST -s ${lab.macAddress6}/128 -o ${lab.wgVm} -j SNAT --to-source ${lab.vmTunnelAddress6}`;
    const has6 = async (): Promise<boolean> => (await lab.vm.run(['ip6tables-nft', '-t', 'nat', '-S'])).stdout.split('\n').includes(snat6);
    expect(await has6()).toBe(true);
    await settle();
    await lab.vm.run(['ip6tables-nft', '-t', 'nat', '-F', 'WGCTL-POST']);
    await lab.vm.run(['sysctl', '-w', 'net.ipv6.conf.all.forwarding=0']);
    const backMs = await timeUntil(async () => (await has6()) && (await lab.vmSysctl('net.ipv6.conf.all.forwarding')) === '1', HEAL_DEADLINE_MS + 1_000);
    expect(backMs).toBeLessThanOrEqual(HEAL_DEADLINE_MS);
    await countedHeals(e, 1);
    expect(e.heals?.last?.changes.join(' ')).toMatch(/net\.ipv6\.conf\.all\.forwarding: 0 → 1/);
    expect(await lab.macPing(lab.serverTunnelAddress6, 2)).toBe(true);
    expect((await e.down({})).ok).toBe(true);
    expect(await has6()).toBe(false);
    expect(await lab.vmSysctl('net.ipv6.conf.all.forwarding')).toBe('0');
    process.stdout.write(`self-heal: ip6 SNAT and IPv6 forwarding back after ${backMs} ms\n`);
  });

  it('iptables-legacy (no events): the deleted jump is found by the 1 s check and put back within 2 s', async () => {
    // Legacy rules of the user's make the engine pick the legacy backend (as in engine.netns.test.ts).
    await lab.vm.run(['iptables-legacy', '-w', '-t', 'nat', '-A', 'POSTROUTING', '-o', lab.vethUp, '-j', 'MASQUERADE']);
    const e = startEngine();
    expect((await e.up({ macSource: lab.macAddress })).ok).toBe(true);
    expect(e.driverName).toBe('iptables-legacy');
    const legacyJump = async (): Promise<boolean> => (await lab.vm.run(['iptables-legacy', '-S', 'FORWARD'])).stdout.split('\n').includes(jump());
    expect(await legacyJump()).toBe(true);
    await settle();
    await lab.vm.run(['iptables-legacy', '-w', '-D', 'FORWARD', '-m', 'comment', '--comment', 'wgctl', '-j', 'WGCTL-FWD']);
    const backMs = await timeUntil(legacyJump, HEAL_DEADLINE_MS + 1_000);
    expect(backMs).toBeLessThanOrEqual(HEAL_DEADLINE_MS);
    await countedHeals(e, 1);
    expect(e.heals?.last).toMatchObject({ trigger: 'check (no firewall events)', by: 'firewall: unknown (no nft event named the writer)' });
    expect((await e.down({})).ok).toBe(true);
    process.stdout.write(`self-heal: legacy jump back after ${backMs} ms\n`);
  });

  it('a Down during a heal waits for it, then leaves nothing behind; nothing comes back afterwards', async () => {
    const e = startEngine();
    const before = { ruleset: await lab.vmRuleset(), ipForward: await lab.vmSysctl('net.ipv4.ip_forward') };
    expect((await e.up({ macSource: lab.macAddress })).ok).toBe(true);

    slowRestoreMs = 800;
    const healInFlight = new Promise<void>((resolve) => (restoreStarted = resolve));
    await iptables('-D', 'FORWARD', '-m', 'comment', '--comment', 'wgctl', '-j', 'WGCTL-FWD');
    await Promise.race([healInFlight, sleep(HEAL_DEADLINE_MS).then(() => Promise.reject(new Error('no heal started within 2 s')))]);
    expect(e.running?.op).toBe('Heal');
    slowRestoreMs = 0;

    const down = await e.down({});
    expect(down).toMatchObject({ ok: true, failedStep: '' });
    expect(e.heals?.count).toBe(1);
    const after = async () => ({ ruleset: await lab.vmRuleset(), ipForward: await lab.vmSysctl('net.ipv4.ip_forward') });
    expect(await after()).toEqual(before);
    // The watcher is gone with the Down: removing is not undone later.
    await sleep(HEAL_DEADLINE_MS + 500);
    expect(await after()).toEqual(before);
    expect(e.heals?.count).toBe(1);
  });
});

describeNetns('the vm-agent program heals by default, and Status says so', () => {
  let work: string;
  let bundles: { agent: string; client: string };
  let lab: VmLab;
  let agent: AgentProcess | undefined;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'wsh-agent-'));
    bundles = await buildBundles(work);
    await createPki(join(work, 'pki'), { vmAddresses: ['198.51.100.1'] });
  }, 60_000);

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  afterEach(async () => {
    if (agent) await agent.stop();
    agent = undefined;
    await lab?.destroy();
  });

  it('the FORWARD jump deleted while up is back within 2 s; Status carries self_heal; Down leaves nothing', async () => {
    lab = await new VmLab({ prefix: 'wsa' }).create();
    const target = '198.51.100.1:7443';
    const creds = `${join(work, 'pki')}:controller`;
    const client = (command: string, arg?: unknown): Promise<ClientLine[]> => runClient(lab.mac, bundles.client, target, creds, command, arg);
    // No --heal-check-interval: the default (1 s) is what is tested.
    agent = new AgentProcess(lab.nsVm, bundles.agent, ['--listen', target, '--tls-dir', join(work, 'pki'), '--wg-config', lab.vmConfigPath, '--state-dir', lab.stateDir, '--wg-method', 'wg-quick', '--log-level', 'info']);
    await agent.waitFor('vm-agent ready');
    const before = await lab.vmRuleset();
    const up = await client('up', { macSource: lab.macAddress });
    expect(up.map((l) => l.progress?.kind).find((k) => k?.$case === 'outcome')?.value).toMatchObject({ ok: true });
    await agent.waitFor('self-heal: watching what Up applied');
    await sleep(500); // nft monitor subscribed

    const jump = '-A FORWARD -m comment --comment wgctl -j WGCTL-FWD';
    const hasJump = async (): Promise<boolean> => (await lab.vm.run(['iptables-nft', '-S', 'FORWARD'])).stdout.split('\n').includes(jump);
    await lab.vm.run(['iptables-nft', '-D', 'FORWARD', '-m', 'comment', '--comment', 'wgctl', '-j', 'WGCTL-FWD']);
    const backMs = await timeUntil(hasJump, HEAL_DEADLINE_MS + 1_000);
    expect(backMs).toBeLessThanOrEqual(HEAL_DEADLINE_MS);
    await agent.waitFor('self-heal: put back what was removed while up');

    const status = (await client('status')).at(-1)?.result as { selfHeal?: { heals: number; lastBy: string; lastChanges: string[] } };
    expect(status.selfHeal).toMatchObject({ heals: 1, lastBy: expect.stringMatching(/iptables-nft \(pid \d+\)/) });
    expect(status.selfHeal?.lastChanges.join(' ')).toMatch(/jump from FORWARD/);

    const down = await client('down', {});
    expect(down.map((l) => l.progress?.kind).find((k) => k?.$case === 'outcome')?.value).toMatchObject({ ok: true });
    expect(await lab.vmRuleset()).toBe(before);
    await sleep(HEAL_DEADLINE_MS);
    expect(await lab.vmRuleset()).toBe(before);
    process.stdout.write(`self-heal (agent process): jump back after ${backMs} ms\n`);
  });
});
