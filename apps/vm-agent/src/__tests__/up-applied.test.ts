/**
 * Up's Outcome says what the Up applied (vm_applied): the server endpoints, resolved, and the
 * tunnel addresses — what the controller hands the Mac, so it need not Describe the VM again.
 * Through the gRPC service (the field crosses the wire) over a scripted system, in dry-run:
 * a dry-run Up reports what it would apply.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HealthSampler } from '@wgctl/agent-kit';
import { silentLogger } from '@wgctl/logging';
import { DescribeRequest, VmAgentClient, VmAgentService, VmDownRequest, VmUpRequest, type Outcome, type Progress } from '@wgctl/proto';
import { RuleRunner } from '@wgctl/runner';
import { connectAgent, createAgentServer, readStream, unaryCall, type AgentServer } from '@wgctl/transport';
import { derivePublicKey } from '../host/config';
import { VmEngine, type VmSample } from '../service/engine/engine';
import { JournalStore } from '../service/journal';
import { vmAgentHandlers } from '../service/server';
import { ProcSysctl } from '../host/sysctl';

const key = (seed: number): string => Buffer.alloc(32, seed).toString('base64');

describe('vm-agent Up: the Outcome carries what it applied', () => {
  let dir: string;
  let server: AgentServer;
  let sampler: HealthSampler<VmSample>;
  let client: VmAgentClient;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wtv-applied-'));
    const configPath = join(dir, 'wtv0.conf');
    writeFileSync(
      configPath,
      [
        '[Interface]',
        `PrivateKey = ${key(1)}`,
        'Address = 192.0.2.2/24, 2001:db8:6:64::2/64',
        '[Peer]',
        `PublicKey = ${derivePublicKey(key(2))}`,
        'Endpoint = vpn.example.net:51820',
        'AllowedIPs = 0.0.0.0/0',
        '[Peer]',
        `PublicKey = ${derivePublicKey(key(3))}`,
        'Endpoint = 203.0.113.7:51821',
        'AllowedIPs = 198.51.100.64/26',
        '[Peer]', // no Endpoint: nothing to pin
        `PublicKey = ${derivePublicKey(key(4))}`,
        'AllowedIPs = 198.51.100.128/26',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    mkdirSync(join(dir, 'sys/net/ipv4'), { recursive: true });
    writeFileSync(join(dir, 'sys/net/ipv4/ip_forward'), '0\n');
    const runner = new RuleRunner([
      { match: (a) => a.join(' ') === 'iptables --version', reply: { stdout: 'iptables v1.8.9 (nf_tables)\n' } },
      { match: (a) => a[0] === 'iptables-nft-save', reply: { stdout: '' } },
      { match: (a) => a.join(' ') === 'ip -j addr show dev wtv0', reply: { exitCode: 1, stderr: 'Device "wtv0" does not exist.' } },
      { match: (a) => a.join(' ') === 'ip -j route get 198.51.100.2', reply: { stdout: '[{"dst":"198.51.100.2","dev":"wtvl0","flags":[]}]' } },
      { match: (a) => a.join(' ') === 'ip -j route get 198.51.100.9', reply: { exitCode: 2, stderr: 'RTNETLINK answers: Network is unreachable' } },
      { match: (a) => a.includes('-j'), reply: { stdout: '[]' } },
      { match: () => true, reply: {} },
    ]);
    const engine = new VmEngine({
      configPath,
      runner,
      sysctl: new ProcSysctl(join(dir, 'sys')),
      journal: new JournalStore(join(dir, 'state')),
      interfaceMethod: 'wg-quick',
      resolver: async (host) => {
        if (host === 'vpn.example.net') return '203.0.113.1';
        throw new Error(`unexpected lookup of ${host}`);
      },
    });
    server = createAgentServer({ serviceName: 'wgctl.v1.VmAgent', insecure: 'loopback-dev', allowedRoles: ['controller'], logger: silentLogger(), initialHealth: false });
    sampler = new HealthSampler({ sample: () => engine.sample(), verdict: (sample) => sample, intervalMs: 600_000, onVerdict: (serving) => server.setHealth(serving) });
    server.addService(VmAgentService, vmAgentHandlers(engine, sampler));
    client = connectAgent(VmAgentClient, await server.listen('127.0.0.1:0'), { insecure: true });
  });

  afterAll(async () => {
    client?.close();
    sampler?.stop();
    await server?.shutdown(1000);
    rmSync(dir, { recursive: true, force: true });
  });

  async function outcomeOf(call: ReturnType<VmAgentClient['up']> | ReturnType<VmAgentClient['down']>): Promise<Outcome> {
    let last: Progress | undefined;
    for await (const p of readStream(call)) last = p;
    if (last?.kind?.$case !== 'outcome') throw new Error('the stream did not end with an Outcome');
    return last.kind.value;
  }

  it('a dry-run Up reports what it would apply: every peer endpoint resolved, both tunnel addresses — what Describe says', async () => {
    const outcome = await outcomeOf(client.up(VmUpRequest.fromPartial({ macSource: '198.51.100.2', dryRun: true })));
    expect(outcome.ok).toBe(true);
    expect(outcome.vmApplied).toEqual({
      endpoints: [
        { host: 'vpn.example.net', ip: '203.0.113.1', port: 51820 },
        { host: '203.0.113.7', ip: '203.0.113.7', port: 51821 },
      ],
      tunnelAddresses: ['192.0.2.2/24', '2001:db8:6:64::2/64'],
    });
    const described = await unaryCall(client.describe.bind(client), DescribeRequest.fromPartial({}), { timeoutMs: 5000 });
    expect(described).toMatchObject({ endpoints: outcome.vmApplied!.endpoints, tunnelAddresses: outcome.vmApplied!.tunnelAddresses });
  });

  it('only a successful Up reports it: not a failed Up, not a Down', async () => {
    const failed = await outcomeOf(client.up(VmUpRequest.fromPartial({ macSource: '198.51.100.9', dryRun: true })));
    expect(failed).toMatchObject({ ok: false, failedStep: 'resolve-lan' });
    expect(failed.vmApplied).toBeUndefined();
    const down = await outcomeOf(client.down(VmDownRequest.fromPartial({ dryRun: true })));
    expect(down.ok).toBe(true);
    expect(down.vmApplied).toBeUndefined();
  });
});
