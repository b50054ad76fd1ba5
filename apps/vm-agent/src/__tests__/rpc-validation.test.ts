/**
 * Every field of every vm-agent request, walked with bad values over gRPC: the answer is
 * INVALID_ARGUMENT, its details start with the proto field name, and nothing ran on the system
 * (no command, no journal). A good value of each field, the control, is not refused.
 *
 * VmDownRequest (dry_run, force_interface_down) and Describe/Status requests carry only
 * booleans or nothing: proto3 decoding is their validation.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { HealthSampler } from '@wgctl/agent-kit';
import { silentLogger } from '@wgctl/logging';
import { CaptureRequest, VmAgentClient, VmAgentService, VmUpRequest } from '@wgctl/proto';
import { RuleRunner, type RunOptions, type Runner } from '@wgctl/runner';
import { connectAgent, createAgentServer, readStream, unaryCall, type AgentServer } from '@wgctl/transport';
import { derivePublicKey } from '../host/config';
import { VmEngine, type VmSample } from '../service/engine/engine';
import { JournalStore } from '../service/journal';
import { vmAgentHandlers } from '../service/server';
import { ProcSysctl } from '../host/sysctl';

const key = (seed: number): string => Buffer.alloc(32, seed).toString('base64');

/** [field, request, details pattern]. Requests are otherwise valid. */
const UP_CASES: [string, Partial<VmUpRequest>, RegExp][] = [
  ['mac_source', { macSource: '' }, /^mac_source: required/],
  ['mac_source', { macSource: 'mac.local' }, /^mac_source: "mac\.local" is not an IPv4 address or CIDR/],
  ['mac_source', { macSource: '198.51.100.256' }, /^mac_source: /],
  ['mac_source', { macSource: '198.51.100.2/33' }, /^mac_source: /],
  ['mac_source', { macSource: '0.0.0.0/0' }, /^mac_source: .*would match every source/],
  ['mac_source', { macSource: '2001:db8::2' }, /^mac_source: "2001:db8::2" is not an IPv4 address/],
  ['mac_source', { macSource: '2001:db8::/64' }, /^mac_source: .*IPv6/],
  ['mac_source', { macSource: '-j ACCEPT' }, /^mac_source: /],
  ['mac_source', { macSource: '198.51.100.2; reboot' }, /^mac_source: /],
  ['lan_interface', { lanInterface: 'eth0 ' }, /^lan_interface: /],
  ['lan_interface', { lanInterface: 'a-name-longer-than-15' }, /^lan_interface: /],
  ['lan_interface', { lanInterface: '..' }, /^lan_interface: /],
  ['lan_interface', { lanInterface: 'eth0/1' }, /^lan_interface: /],
  ['lan_interface', { lanInterface: '-dev' }, /^lan_interface: /],
  ['lan_interface', { lanInterface: 'eth0\nx' }, /^lan_interface: /],
  ['handshake_timeout_ms', { handshakeTimeoutMs: 300_001 }, /^handshake_timeout_ms: 300001 is above the maximum/],
  ['handshake_timeout_ms', { handshakeTimeoutMs: 4_294_967_295 }, /^handshake_timeout_ms: /],
];

const CAPTURE_CASES: [string, Partial<CaptureRequest>, RegExp][] = [
  ['interface', { interface: 'eth0;ls' }, /^interface: /],
  ['interface', { interface: 'x'.repeat(16) }, /^interface: /],
  ['interface', { interface: '-i' }, /^interface: /],
  ['duration_ms', { durationMs: 30_001 }, /^duration_ms: /],
  ['duration_ms', { durationMs: 4_294_967_295 }, /^duration_ms: /],
  ['max_packets', { maxPackets: 10_001 }, /^max_packets: /],
  ['probe_target', { probeTarget: 'example.com' }, /^probe_target: /],
  ['probe_target', { probeTarget: '-f' }, /^probe_target: /],
  ['probe_target', { probeTarget: '203.0.113.1 -f' }, /^probe_target: /],
  ['probe_count', { probeCount: 3 }, /^probe_count needs probe_target/],
  ['probe_count', { probeTarget: '203.0.113.1', probeCount: 101 }, /^probe_count: /],
  ['probe_count', { probeTarget: '203.0.113.1', durationMs: 1000, probeCount: 10 }, /^probe_count: .*do not fit/],
];

describe('vm-agent: every request field is validated before anything runs', () => {
  let dir: string;
  let server: AgentServer;
  let sampler: HealthSampler<VmSample>;
  let client: VmAgentClient;
  /** Commands that could change something (the background sample's reads are not counted). */
  const changes: string[] = [];
  let journalPath: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wth-rpcv-'));
    const configPath = join(dir, 'wtv0.conf');
    writeFileSync(
      configPath,
      `[Interface]\nPrivateKey = ${key(1)}\nAddress = 192.0.2.2/24\n[Peer]\nPublicKey = ${derivePublicKey(key(2))}\nEndpoint = 203.0.113.1:51820\nAllowedIPs = 0.0.0.0/0\n`,
      { mode: 0o600 },
    );
    mkdirSync(join(dir, 'sys/net/ipv4'), { recursive: true });
    writeFileSync(join(dir, 'sys/net/ipv4/ip_forward'), '0\n');
    const system = new RuleRunner([{ match: () => true, reply: { exitCode: 1, stderr: 'not in this test' } }]);
    const runner: Runner = {
      run: (argv: readonly string[], options?: RunOptions) => {
        if (!options?.readOnly) changes.push(argv.join(' '));
        return system.run(argv, options);
      },
    };
    const journal = new JournalStore(join(dir, 'state'));
    journalPath = journal.path;
    const engine = new VmEngine({ configPath, runner, sysctl: new ProcSysctl(join(dir, 'sys')), journal, interfaceMethod: 'wg-quick' });
    server = createAgentServer({ serviceName: 'wgctl.v1.VmAgent', insecure: 'loopback-dev', allowedRoles: ['controller'], logger: silentLogger() });
    // A sampler that never samples: the calls counted below are the requests' own.
    sampler = new HealthSampler({ sample: () => engine.sample(), verdict: (sample) => sample, intervalMs: 600_000 });
    server.addService(VmAgentService, vmAgentHandlers(engine, sampler));
    client = connectAgent(VmAgentClient, await server.listen('127.0.0.1:0'), { insecure: true });
  });

  afterAll(async () => {
    client?.close();
    await server?.shutdown(500);
    rmSync(dir, { recursive: true, force: true });
  });

  async function upError(request: Partial<VmUpRequest>): Promise<grpc.ServiceError | undefined> {
    try {
      for await (const _ of readStream(client.up(VmUpRequest.fromPartial({ macSource: '198.51.100.2', dryRun: true, ...request })))) {
        // a valid request streams steps: not a refusal
      }
      return undefined;
    } catch (e) {
      return e as grpc.ServiceError;
    }
  }

  async function captureError(request: Partial<CaptureRequest>): Promise<grpc.ServiceError | undefined> {
    try {
      await unaryCall(client.capture.bind(client), CaptureRequest.fromPartial({ interface: 'wtv0', durationMs: 1000, ...request }), { timeoutMs: 10_000 });
      return undefined;
    } catch (e) {
      return e as grpc.ServiceError;
    }
  }

  it.each(UP_CASES.map(([field, request, details]) => [field, JSON.stringify(request), request, details] as const))(
    'Up %s = %s → INVALID_ARGUMENT naming the field, nothing run',
    async (_field, _shown, request, details) => {
      const error = await upError(request);
      expect({ code: error?.code, details: error?.details }).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(details) });
      expect(changes).toEqual([]);
      expect(existsSync(journalPath)).toBe(false);
    },
  );

  it.each(CAPTURE_CASES.map(([field, request, details]) => [field, JSON.stringify(request), request, details] as const))(
    'Capture %s = %s → INVALID_ARGUMENT naming the field, nothing run',
    async (_field, _shown, request, details) => {
      const error = await captureError(request);
      expect({ code: error?.code, details: error?.details }).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(details) });
      expect(changes).toEqual([]);
    },
  );

  it('the controls: good values of the same fields are not refused as arguments', async () => {
    for (const request of [{}, { macSource: '198.51.100.0/24' }, { lanInterface: 'wtvl0' }, { handshakeTimeoutMs: 300_000 }]) {
      expect(await upError(request)).toBeUndefined(); // a dry run (it may fail a step, but it runs)
    }
    // Capture runs tcpdump, which this runner refuses: FAILED_PRECONDITION/INTERNAL, not INVALID_ARGUMENT.
    const ran = await captureError({ probeTarget: '203.0.113.1', probeCount: 1, durationMs: 2000 });
    expect(ran?.code).not.toBe(grpc.status.INVALID_ARGUMENT);
  });
});
