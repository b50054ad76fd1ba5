/**
 * The gRPC service on loopback (plaintext dev mode) with a scripted system underneath:
 * health and Status are answered from the background sample (no process per call), errors
 * map to the right codes, a concurrent Up is ABORTED, Capture is served.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { HealthSampler } from '@wgctl/agent-kit';
import { silentLogger } from '@wgctl/logging';
import { CaptureRequest, DescribeRequest, StatusRequest, VmAgentClient, VmAgentService, VmUpRequest, type VmStatus } from '@wgctl/proto';
import { RuleRunner, type RunOptions, type RunResult, type Runner } from '@wgctl/runner';
import { connectAgent, createAgentServer, healthCheck, readStream, unaryCall, type AgentServer } from '@wgctl/transport';
import { derivePublicKey } from '../host/config';
import { VmEngine, type VmSample } from '../service/engine/engine';
import { desiredRules, OWN_CHAINS, RULE_TAG } from '../host/firewall';
import { JournalStore, type JournalRecord } from '../service/journal';
import { vmAgentHandlers } from '../service/server';
import { ProcSysctl } from '../host/sysctl';

const key = (seed: number): string => Buffer.alloc(32, seed).toString('base64');
const PRIV = key(7);
const SERVER_PUB = derivePublicKey(key(9));

describe('vm-agent gRPC service', () => {
  let dir: string;
  let server: AgentServer;
  let sampler: HealthSampler<VmSample>;
  let target: string;
  let runner: RuleRunner;
  let rules: ConstructorParameters<typeof RuleRunner>[0];
  let dumpReply: { stdout: string };
  let gate: { block: boolean; release: () => void; blocked: Promise<void> };
  let client: VmAgentClient;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wtv-svc-'));
    const configPath = join(dir, 'wtv0.conf');
    writeFileSync(
      configPath,
      `[Interface]\nPrivateKey = ${PRIV}\nAddress = 192.0.2.2/24\n[Peer]\nPublicKey = ${SERVER_PUB}\nEndpoint = 203.0.113.1:51820\nAllowedIPs = 0.0.0.0/0\nPersistentKeepalive = 25\n`,
      { mode: 0o600 }, // the agent refuses a config others can read
    );
    mkdirSync(join(dir, 'sys/net/ipv4'), { recursive: true });
    writeFileSync(join(dir, 'sys/net/ipv4/ip_forward'), '1\n');
    const record: JournalRecord = {
      version: 1,
      phase: 'up',
      interface: 'wtv0',
      configPath,
      macSource: '198.51.100.2/32',
      lanInterface: 'wtvl0',
      tunnelAddress: '192.0.2.2',
      backend: { kind: 'nft', iptables: 'iptables-nft', save: 'iptables-nft-save', version: '1.8.9' },
      chains: ['filter', 'nat', 'mangle'],
      createdTables: [],
      ipForward: { previous: '0', applied: '1' },
      wgInterface: { method: 'wg-quick', srcValidMarkPrevious: '0' },
      updatedAtMs: 0,
    };
    const journal = new JournalStore(join(dir, 'state'));
    await journal.write(record);

    const desired = desiredRules({ macSource: '198.51.100.2/32', lanInterface: 'wtvl0', wgInterface: 'wtv0', tunnelAddress: '192.0.2.2' });
    const save = OWN_CHAINS.map(
      (own) =>
        `*${own.table}\n:${own.hook} ACCEPT [0:0]\n:${own.chain} - [0:0]\n-A ${own.hook} -m comment --comment ${RULE_TAG} -j ${own.chain}\n` +
        desired[own.table].map((r) => `-A ${own.chain} ${r.join(' ')}\n`).join('') +
        'COMMIT\n',
    ).join('');
    const handshake = Math.floor(Date.now() / 1000) - 10;
    dumpReply = { stdout: '' };
    rules = [
      {
        match: (a) => a.join(' ') === 'ip -j addr show dev wtv0',
        reply: { stdout: JSON.stringify([{ ifindex: 5, ifname: 'wtv0', flags: ['POINTOPOINT', 'NOARP', 'UP', 'LOWER_UP'], mtu: 1420, addr_info: [] }]) },
      },
      { match: (a) => a.join(' ') === 'wg show wtv0 dump', reply: dumpReply },
      { match: (a) => a[0] === 'iptables-nft-save', reply: { stdout: save } },
    ];
    dumpReply.stdout = `${PRIV}\t${derivePublicKey(PRIV)}\t40000\toff\n${SERVER_PUB}\t(none)\t203.0.113.1:51820\t0.0.0.0/0\t${handshake}\t1000\t2000\t25\n`;
    runner = new RuleRunner(rules);
    gate = { block: false, release: () => undefined, blocked: Promise.resolve() };
    // Up's first command can be held, to have an Up "in progress".
    const gated: Runner = {
      run: async (argv: readonly string[], options?: RunOptions): Promise<RunResult> => {
        if (gate.block) {
          await new Promise<void>((resolve) => {
            gate.release = resolve;
          });
        }
        return runner.run(argv, options);
      },
    };
    const engine = new VmEngine({
      configPath,
      runner: gated,
      sysctl: new ProcSysctl(join(dir, 'sys')),
      journal,
      interfaceMethod: 'wg-quick',
    });
    server = createAgentServer({ serviceName: 'wgctl.v1.VmAgent', insecure: 'loopback-dev', allowedRoles: ['controller'], logger: silentLogger(), initialHealth: false });
    sampler = new HealthSampler({ sample: () => engine.sample(), verdict: (sample) => sample, intervalMs: 600_000, onVerdict: (serving) => server.setHealth(serving) });
    server.addService(VmAgentService, vmAgentHandlers(engine, sampler));
    target = await server.listen('127.0.0.1:0');
    await sampler.refresh();
    client = connectAgent(VmAgentClient, target, { insecure: true });
  });

  afterAll(async () => {
    client?.close();
    sampler?.stop();
    await server?.shutdown(1000);
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers health and Status from the cached sample: no command per call', async () => {
    const before = runner.calls.length;
    expect(before).toBe(3); // the one sample: ip, wg, iptables-save
    for (let i = 0; i < 50; i++) {
      expect(await healthCheck(target, { insecure: true }, i % 2 ? '' : 'wgctl.v1.VmAgent')).toBe('SERVING');
    }
    const status: VmStatus = await unaryCall(client.status.bind(client), StatusRequest.fromPartial({}), { timeoutMs: 5000 });
    expect(status.health?.reasons).toEqual([]);
    expect(status.checks.map((c) => [c.name, c.ok])).toEqual([
      ['applied', true],
      ['interface-up', true],
      ['handshake', true],
      ['ip-forward', true],
      ['firewall-filter', true],
      ['firewall-nat', true],
      ['firewall-mangle', true],
    ]);
    expect(status.peers[0]).toMatchObject({ publicKey: SERVER_PUB, rxBytes: '1000', txBytes: '2000', persistentKeepalive: 25 });
    expect(JSON.stringify(status)).not.toContain(PRIV);
    expect(runner.calls.length).toBe(before);
    expect(await healthCheck(target, { insecure: true }, 'nope')).toBe('SERVICE_UNKNOWN');
  });

  it('goes NOT_SERVING with reasons when the sample finds the handshake stale', async () => {
    const stale = runner.calls.length;
    // A handshake 10 minutes old.
    const original = dumpReply.stdout;
    dumpReply.stdout = original.replace(/\t(\d{10})\t/, `\t${Math.floor(Date.now() / 1000) - 600}\t`);
    try {
      const sample = await sampler.refresh();
      expect(sample.serving).toBe(false);
      expect(sample.reasons).toEqual([expect.stringMatching(/^handshake: latest handshake 6\d\d s ago \(threshold 180 s\)$/)]);
      expect(await healthCheck(target, { insecure: true })).toBe('NOT_SERVING');
      expect(runner.calls.length).toBe(stale + 3);
    } finally {
      dumpReply.stdout = original;
      await sampler.refresh();
    }
    expect(await healthCheck(target, { insecure: true })).toBe('SERVING');
  });

  it('maps bad arguments to INVALID_ARGUMENT naming the field', async () => {
    const stream = client.up(VmUpRequest.fromPartial({ macSource: '198.51.100.2', lanInterface: 'bad name!' }));
    await expect(readStream(stream).next()).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/^lan_interface: /) });
  });

  it('refuses a second Up with ABORTED while one runs', async () => {
    gate.block = true;
    const held = runner.calls.length;
    const first = client.up(VmUpRequest.fromPartial({ macSource: '198.51.100.2', lanInterface: 'wtvl0' }));
    const firstEvents = readStream(first);
    // The first Up has started once its first step is streamed.
    const firstEvent = await firstEvents.next();
    expect(firstEvent.value).toMatchObject({ kind: { $case: 'step', value: { step: 'read-config' } } });
    const second = client.up(VmUpRequest.fromPartial({ macSource: '198.51.100.2' }));
    await expect(readStream(second).next()).rejects.toMatchObject({ code: grpc.status.ABORTED, details: expect.stringMatching(/another Up is in progress/) });
    expect(runner.calls.length).toBe(held); // the first Up is still held at its first command
    gate.block = false;
    first.cancel();
    gate.release();
  });

  it('a Describe that announces an Up starts its reads ahead once the call has ended (grpc-js: "cancelled"); one that does not, none', async () => {
    const routeGet = (): string[] => runner.calls.map((c) => c.join(' ')).filter((line) => line.startsWith('ip -j route get'));
    const before = routeGet().length;
    const plain = await unaryCall(client.describe.bind(client), DescribeRequest.fromPartial({}), { timeoutMs: 5000 });
    expect(plain.interface).toBe('wtv0');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(routeGet().length).toBe(before);
    await unaryCall(client.describe.bind(client), DescribeRequest.fromPartial({ upFollows: true }), { timeoutMs: 5000 });
    // The route to the caller (loopback here), read for the Up that would follow.
    for (let i = 0; i < 100 && routeGet().length === before; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(routeGet().slice(before)).toEqual(['ip -j route get 127.0.0.1']);
  });

  it('serves Capture, refusing a bad request before running anything (see capture.test.ts)', async () => {
    await expect(unaryCall(client.capture.bind(client), CaptureRequest.fromPartial({ probeTarget: 'example.com' }), { timeoutMs: 5000 })).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
    });
  });
});
