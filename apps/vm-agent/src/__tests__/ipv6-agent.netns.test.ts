/**
 * The real vm-agent program (esbuild bundle) with mac_source6, called over mTLS gRPC from the
 * Mac namespace: INVALID_ARGUMENT for a bad mac_source6, Describe's tunnel IPv6, and kill -9
 * in the middle of an IPv6 Up followed by a new process on the same state dir — Down leaves no
 * ip6tables chain and both IPv6 sysctls as before. Names with the `wv6` prefix.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPki } from '@wgctl/transport';
import { AgentProcess, buildBundles, runClient, streamClient, type ClientLine } from '../testing/agent-process';
import { VmLab, canUseNetns } from '../testing/netns';

const describeNetns = canUseNetns() ? describe : describe.skip;

describeNetns('vm-agent program with mac_source6', () => {
  let work: string;
  let bundles: { agent: string; client: string };
  let pki: string;
  let lab: VmLab | undefined;
  let agent: AgentProcess | undefined;
  const target = '198.51.100.1:7443';

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'wv6-e2e-'));
    bundles = await buildBundles(work);
    pki = join(work, 'pki');
    await createPki(pki, { vmAddresses: ['198.51.100.1'] });
  }, 60_000);

  afterAll(() => {
    rmSync(work, { recursive: true, force: true });
  });

  afterEach(async () => {
    if (agent) await agent.stop();
    agent = undefined;
    await lab?.destroy();
  });

  const startAgent = async (l: VmLab): Promise<AgentProcess> => {
    const proc = new AgentProcess(l.nsVm, bundles.agent, [
      '--listen',
      target,
      '--tls-dir',
      pki,
      '--wg-config',
      l.vmConfigPath,
      '--state-dir',
      l.stateDir,
      '--health-interval',
      '300',
      '--wg-method',
      'wg-quick',
    ]);
    await proc.waitFor('vm-agent ready');
    return proc;
  };
  const controller = (): string => `${pki}:controller`;
  const last = (lines: ClientLine[]): ClientLine => lines[lines.length - 1];
  const outcomeOf = (lines: ClientLine[]): Record<string, unknown> | undefined =>
    lines.map((l) => l.progress?.kind).find((k) => k?.$case === 'outcome')?.value;

  const state = async (l: VmLab): Promise<Record<string, string>> => ({
    ruleset: await l.vmRuleset(),
    ruleset6: await l.vmRuleset6(),
    ipRules: await l.vmIpRules(),
    nft: await l.vmNftTables(),
    ipForward: await l.vmSysctl('net.ipv4.ip_forward'),
    forwarding6: await l.vmSysctl('net.ipv6.conf.all.forwarding'),
    acceptRa: await l.vmSysctl(`net.ipv6.conf.${l.vethLan}.accept_ra`),
    srcValidMark: await l.vmSysctl('net.ipv4.conf.all.src_valid_mark'),
  });

  it('kill -9 in the middle of an IPv6 Up, then a new process: Down leaves no v4/v6 chain, rule or changed sysctl', async () => {
    lab = await new VmLab({ prefix: 'wv6', ipv6: true, serverUp: false }).create(); // no handshake: Up waits
    const l = lab;
    const start = await state(l);
    expect(start).toMatchObject({ forwarding6: '0', acceptRa: '1', ruleset6: '' });
    agent = await startAgent(l);
    const client = (command: string, arg?: unknown): Promise<ClientLine[]> => runClient(l.mac, bundles.client, target, controller(), command, arg);

    // Bad mac_source6: INVALID_ARGUMENT naming the field, nothing changed.
    const bad = last(await client('up', { macSource: l.macAddress, macSource6: '198.51.100.9' })).error;
    expect(bad?.code).toBe(3);
    expect(bad?.details).toMatch(/mac_source6: /);
    // Describe reports the tunnel IPv6 (what the controller needs to decide IPv6 routing).
    const described = last(await client('describe')).result as { tunnelAddresses: string[] };
    expect(described.tunnelAddresses).toEqual([`${l.vmTunnelAddress}/24`, `${l.vmTunnelAddress6}/64`]);
    expect(await state(l)).toEqual(start);

    let waiting!: () => void;
    const handshakeStarted = new Promise<void>((r) => (waiting = r));
    const upClient = streamClient(l.nsMac, bundles.client, target, controller(), 'up', { macSource: l.macAddress, macSource6: l.macAddress6, handshakeTimeoutMs: 60_000 }, (line) => {
      const k = line.progress?.kind;
      if (k?.$case === 'step' && k.value.step === 'await-handshake') waiting();
    });
    await handshakeStarted;
    const first = agent;
    first.kill9();
    expect((await first.exited).signal).toBe('SIGKILL');
    await upClient.exited;
    agent = undefined;

    // Mid-Up: the IPv6 side is in place and journaled.
    expect(await l.vmRuleset6()).toContain('-A WGCTL-POST');
    expect(await l.vmSysctl('net.ipv6.conf.all.forwarding')).toBe('1');
    expect(await l.vmSysctl(`net.ipv6.conf.${l.vethLan}.accept_ra`)).toBe('2');
    const journal = JSON.parse(readFileSync(join(l.stateDir, 'journal.json'), 'utf8'));
    expect(journal).toMatchObject({ phase: 'up-in-progress', v6: { macSource: `${l.macAddress6}/128`, createdTables: ['filter', 'nat', 'mangle'] } });

    agent = await startAgent(l);
    await agent.waitFor('reconcile finished');
    expect(outcomeOf(await client('down', {}))).toMatchObject({ ok: true });
    expect(await state(l)).toEqual(start);
    expect(await l.vmLinkExists(l.wgVm)).toBe(false);
  });
});
