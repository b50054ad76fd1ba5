/**
 * The real vm-agent program (esbuild bundle) in the lab's VM namespace, called over mTLS
 * gRPC by a client in the Mac namespace (as the controller would be): health, Describe,
 * Status, Up/Down, refusal of clients without a valid certificate, ABORTED for a concurrent
 * Up, and kill -9 in the middle of Up followed by a new process on the same state dir.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPki } from '@wgctl/transport';
import { AgentProcess, buildBundles, runClient, streamClient, type ClientLine } from '../testing/agent-process';
import { VmLab, canUseNetns } from '../testing/netns';

const describeNetns = canUseNetns() ? describe : describe.skip;

const GRPC = { INVALID_ARGUMENT: 3, PERMISSION_DENIED: 7, ABORTED: 10, UNAVAILABLE: 14 };

describeNetns('vm-agent program', () => {
  let work: string;
  let bundles: { agent: string; client: string };
  let pki: string;
  let roguePki: string;
  let lab: VmLab;
  let agent: AgentProcess | undefined;
  const port = 7443;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'wtv-e2e-'));
    bundles = await buildBundles(work);
    pki = join(work, 'pki');
    roguePki = join(work, 'rogue');
    await createPki(pki, { vmAddresses: ['198.51.100.1'] });
    await createPki(roguePki, { vmAddresses: ['198.51.100.1'] });
  }, 60_000);

  afterAll(() => {
    rmSync(work, { recursive: true, force: true });
  });

  afterEach(async () => {
    if (agent) await agent.stop();
    agent = undefined;
    await lab?.destroy();
  });

  const target = `198.51.100.1:${port}`;
  const controller = (): string => `${pki}:controller`;
  const startAgent = async (extra: string[] = []): Promise<AgentProcess> => {
    const proc = new AgentProcess(lab.nsVm, bundles.agent, [
      '--listen',
      target,
      '--tls-dir',
      pki,
      '--wg-config',
      lab.vmConfigPath,
      '--state-dir',
      lab.stateDir,
      '--health-interval',
      '300',
      '--wg-method',
      'wg-quick',
      '--log-level',
      'debug',
      ...extra,
    ]);
    await proc.waitFor('vm-agent ready');
    return proc;
  };
  const client = (creds: string, command: string, arg?: unknown): Promise<ClientLine[]> => runClient(lab.mac, bundles.client, target, creds, command, arg);
  const last = (lines: ClientLine[]): ClientLine => lines[lines.length - 1];
  const outcomeOf = (lines: ClientLine[]): Record<string, unknown> | undefined =>
    lines.map((l) => l.progress?.kind).find((k) => k?.$case === 'outcome')?.value;
  const waitHealth = async (want: string, service = ''): Promise<void> => {
    let got: unknown;
    for (let i = 0; i < 40; i++) {
      got = last(await client(controller(), 'health', service)).result;
      if (got === want) return;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`health(${service}) stayed ${String(got)}, wanted ${want}`);
  };

  it('serves health, Describe, Status, Up and Down over mTLS and refuses clients without a valid certificate', async () => {
    lab = await new VmLab().create();
    agent = await startAgent();

    expect(last(await client(controller(), 'health')).result).toBe('NOT_SERVING');

    const describe = last(await client(controller(), 'describe')).result as Record<string, unknown>;
    expect(describe).toMatchObject({
      interface: lab.wgVm,
      tunnelAddresses: ['192.0.2.2/24'],
      endpoints: [{ host: '203.0.113.1', ip: '203.0.113.1', port: 51820 }],
      publicKey: lab.vmKeys.publicKey,
      configPath: lab.vmConfigPath,
    });
    expect(JSON.stringify(describe)).not.toContain(lab.vmKeys.privateKey);

    // Without a certificate of the pairing CA: no connection at all.
    expect(last(await client(`${roguePki}:controller`, 'health')).error?.code).toBe(GRPC.UNAVAILABLE);
    expect(last(await client(`${roguePki}:controller`, 'describe')).error?.code).toBe(GRPC.UNAVAILABLE);
    // Monitor: health yes, the agent's service no.
    expect(last(await client(`${pki}:monitor`, 'health', 'wgctl.v1.VmAgent')).result).toBe('NOT_SERVING');
    expect(last(await client(`${pki}:monitor`, 'status')).error?.code).toBe(GRPC.PERMISSION_DENIED);
    // Bad argument: the field is named.
    const bad = last(await client(controller(), 'up', { macSource: 'not-an-ip' })).error;
    expect(bad?.code).toBe(GRPC.INVALID_ARGUMENT);
    expect(bad?.details).toMatch(/^mac_source: "not-an-ip" is not an IPv4 address or CIDR/);

    const upLines = await client(controller(), 'up', { macSource: lab.macAddress });
    expect(outcomeOf(upLines)).toMatchObject({ ok: true });
    const doneSteps = upLines
      .map((l) => l.progress?.kind)
      .filter((k) => k?.$case === 'step' && k.value.state === 2) // STEP_STATE_DONE
      .map((k) => k!.value.step);
    expect(doneSteps).toEqual(expect.arrayContaining(['firewall', 'ip-forward', 'wg-quick-up', 'await-handshake', 'verify']));
    await waitHealth('SERVING');
    await waitHealth('SERVING', 'wgctl.v1.VmAgent');
    expect(await lab.macPing(lab.serverTunnelAddress)).toBe(true);

    const status = last(await client(controller(), 'status')).result as Record<string, unknown>;
    expect(status).toMatchObject({ interface: lab.wgVm, interfaceUp: true, ipForward: true, iptablesBackend: 'nft', macSource: '198.51.100.2/32' });
    expect((status.health as { state: unknown }).state).toBe(1); // SERVING
    const peers = status.peers as { publicKey: string; handshakeAgeS: string }[];
    expect(peers.map((p) => p.publicKey)).toEqual([lab.serverKeys.publicKey]);
    expect(Number(peers[0].handshakeAgeS)).toBeGreaterThanOrEqual(0);
    expect((status.checks as { ok: boolean }[]).every((c) => c.ok)).toBe(true);
    expect(JSON.stringify(status)).not.toContain(lab.vmKeys.privateKey);
    // No key ever reaches the agent's log either.
    expect(agent.lines.join('\n')).not.toContain(lab.vmKeys.privateKey);

    const downLines = await client(controller(), 'down', {});
    expect(outcomeOf(downLines)).toMatchObject({ ok: true });
    await waitHealth('NOT_SERVING');
    expect(await lab.vmRuleset()).toBe('');

    const exit = await agent.stop();
    agent = undefined;
    expect(exit.code).toBe(0);
  });

  it('kill -9 in the middle of Up, then a new process on the same state dir: Down leaves no chain, rule or changed sysctl', async () => {
    lab = await new VmLab({ serverUp: false }).create(); // no handshake: Up waits
    const start = {
      ruleset: await lab.vmRuleset(),
      ipRules: await lab.vmIpRules(),
      nft: await lab.vmNftTables(),
      ipForward: await lab.vmSysctl('net.ipv4.ip_forward'),
      srcValidMark: await lab.vmSysctl('net.ipv4.conf.all.src_valid_mark'),
    };
    agent = await startAgent();
    const first = agent;

    const seen: ClientLine[] = [];
    let waiting!: () => void;
    const handshakeStarted = new Promise<void>((r) => (waiting = r));
    const upClient = streamClient(lab.nsMac, bundles.client, target, controller(), 'up', { macSource: lab.macAddress, handshakeTimeoutMs: 60_000 }, (line) => {
      seen.push(line);
      const k = line.progress?.kind;
      if (k?.$case === 'step' && k.value.step === 'await-handshake') waiting();
    });
    await handshakeStarted;

    // A second Up meanwhile is refused at once.
    const second = last(await client(controller(), 'up', { macSource: lab.macAddress }));
    expect(second.error?.code).toBe(GRPC.ABORTED);
    expect(second.error?.details).toMatch(/another Up is in progress/);

    first.kill9();
    expect((await first.exited).signal).toBe('SIGKILL');
    await upClient.exited;
    agent = undefined;

    // Mid-Up state: chains, forwarding and the interface are there; the journal says so.
    expect(await lab.vmRuleset()).toContain('WGCTL-FWD');
    expect(await lab.vmSysctl('net.ipv4.ip_forward')).toBe('1');
    expect(await lab.vmLinkExists(lab.wgVm)).toBe(true);
    expect(JSON.parse(readFileSync(join(lab.stateDir, 'journal.json'), 'utf8')).phase).toBe('up-in-progress');

    agent = await startAgent();
    await agent.waitFor('reconcile finished');
    const downLines = await client(controller(), 'down', {});
    expect(outcomeOf(downLines)).toMatchObject({ ok: true });

    expect({
      ruleset: await lab.vmRuleset(),
      ipRules: await lab.vmIpRules(),
      nft: await lab.vmNftTables(),
      ipForward: await lab.vmSysctl('net.ipv4.ip_forward'),
      srcValidMark: await lab.vmSysctl('net.ipv4.conf.all.src_valid_mark'),
    }).toEqual(start);
    expect(await lab.vmLinkExists(lab.wgVm)).toBe(false);
  });

  it('plaintext only behind --insecure-loopback-dev and only on loopback', async () => {
    lab = await new VmLab({ serverUp: false }).create();
    const refused = new AgentProcess(lab.nsVm, bundles.agent, ['--listen', target, '--insecure-loopback-dev', '--wg-config', lab.vmConfigPath, '--state-dir', lab.stateDir]);
    const exit = await refused.exited;
    expect(exit.code).toBe(2); // a bad command line: exit 2, the flag named
    expect(refused.stderr.join('\n')).toMatch(/--insecure-loopback-dev: refusing plaintext/);

    agent = new AgentProcess(lab.nsVm, bundles.agent, [
      '--listen',
      '127.0.0.1:7444',
      '--insecure-loopback-dev',
      '--wg-config',
      lab.vmConfigPath,
      '--state-dir',
      lab.stateDir,
    ]);
    await agent.waitFor('vm-agent ready');
    const lines = await runClient(lab.vm, bundles.client, '127.0.0.1:7444', 'insecure', 'describe');
    expect((last(lines).result as { interface: string }).interface).toBe(lab.wgVm);
    // Without --tls-dir and without the dev flag the agent does not start.
    const noTls = new AgentProcess(lab.nsVm, bundles.agent, ['--listen', target, '--wg-config', lab.vmConfigPath]);
    expect((await noTls.exited).code).toBe(2);
    expect(noTls.stderr.join('\n')).toMatch(/--tls-dir is required/);
  });
});
