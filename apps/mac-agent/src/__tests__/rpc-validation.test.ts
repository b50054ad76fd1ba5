/**
 * Every field of every mac-agent request, walked with bad values over gRPC (the real server
 * on a unix socket, an in-memory host): INVALID_ARGUMENT, details naming the proto field, and
 * the host untouched (no driver call). A good value of each field, the control, is accepted.
 *
 * MacDownRequest (dry_run) and Status carry only a boolean or nothing: proto3 decoding is
 * their validation. Describe's one input is the `wgctl-vm-address` metadata.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { silentLogger } from '@wgctl/logging';
import { CaptureRequest, DescribeRequest, MacAgentClient, MacUpRequest } from '@wgctl/proto';
import { connectAgent, readStream, unaryCall } from '@wgctl/transport';
import { startAgent, type RunningAgent } from '../run';
import { MAX_DNS_SERVERS, MAX_ENDPOINTS } from '../service/validation';
import { FakeDriver, fakeHost } from '../testing/fake-host';

const GOOD: Partial<MacUpRequest> = {
  vmAddress: '192.0.2.130',
  endpoints: [{ host: 'vpn.example.net', ip: '203.0.113.10', port: 51820 }],
  dnsServers: ['198.51.100.53'],
  dryRun: true,
};
const endpoint = (patch: Record<string, unknown>) => ({ endpoints: [{ host: '', ip: '203.0.113.10', port: 51820, ...patch }] });

/** [field, request patch, details pattern]. */
const UP_CASES: [string, Partial<MacUpRequest>, RegExp][] = [
  ['vm_address', { vmAddress: '' }, /^vm_address: "" is not an IPv4 address/],
  ['vm_address', { vmAddress: 'vm.local' }, /^vm_address: "vm\.local" is not an IPv4 address/],
  ['vm_address', { vmAddress: '192.0.2.1300' }, /^vm_address: /],
  ['vm_address', { vmAddress: '2001:db8::130' }, /^vm_address: .*not an IPv4 address/],
  ['vm_address', { vmAddress: '127.1' }, /^vm_address: /],
  ['vm_address6', { vmAddress6: '192.0.2.130' }, /^vm_address6: .*not an IPv6 address/],
  ['vm_address6', { vmAddress6: '2001:db8::/64' }, /^vm_address6: /],
  ['endpoints', { endpoints: [] }, /^endpoints: no WireGuard server endpoints/],
  ['endpoints', { endpoints: Array.from({ length: MAX_ENDPOINTS + 1 }, (_, i) => ({ host: '', ip: `203.0.113.${i + 1}`, port: 51820 })) }, new RegExp(`^endpoints: ${MAX_ENDPOINTS + 1} given, at most ${MAX_ENDPOINTS}`)],
  ['endpoints[].ip', endpoint({ ip: 'vpn.example.net' }), /^endpoints\[0\]\.ip: "vpn\.example\.net" is not an IP address \(resolve names before Up\)/],
  ['endpoints[].ip', endpoint({ ip: '' }), /^endpoints\[0\]\.ip: /],
  ['endpoints[].ip', { endpoints: [{ host: '', ip: '203.0.113.10', port: 51820 }, { host: '', ip: '-x', port: 51820 }] }, /^endpoints\[1\]\.ip: "-x"/],
  ['endpoints[].port', endpoint({ port: 0 }), /^endpoints\[0\]\.port: 0 is not in 1\.\.65535/],
  ['endpoints[].port', endpoint({ port: 65536 }), /^endpoints\[0\]\.port: 65536/],
  ['endpoints[].host', endpoint({ host: 'bad host' }), /^endpoints\[0\]\.host: "bad host" is not a host name or an IP address/],
  ['endpoints[].host', endpoint({ host: 'x'.repeat(300) }), /^endpoints\[0\]\.host: "x{64}…" \(300 bytes, cut\) is not a host name/],
  // 1 MB: the client still gets INVALID_ARGUMENT, the value cut with its length (the whole message, $-anchored, is short).
  ['vm_address', { vmAddress: 'A'.repeat(1024 * 1024) }, /^vm_address: "A{64}…" \(1048576 bytes, cut\) is not an IPv4 address$/],
  ['dns_servers', { dnsServers: ['D'.repeat(1024 * 1024)] }, /^dns_servers\[0\]: "D{64}…" \(1048576 bytes, cut\) is not an IP address$/],
  ['dns_servers', { dnsServers: ['dns.example'] }, /^dns_servers\[0\]: "dns\.example" is not an IP address/],
  ['dns_servers', { dnsServers: ['198.51.100.53', '198.51.100.54;x'] }, /^dns_servers\[1\]: "198\.51\.100\.54;x"/],
  ['dns_servers', { dnsServers: Array.from({ length: MAX_DNS_SERVERS + 1 }, (_, i) => `198.51.100.${i + 1}`) }, new RegExp(`^dns_servers: ${MAX_DNS_SERVERS + 1} given, at most ${MAX_DNS_SERVERS}`)],
  ['ipv6', { ipv6: 7 as never }, /^ipv6: unknown mode 7/],
  ['ipv6', { ipv6: 1 }, /^ipv6: route mode needs vm_address6/],
  ['exclude', { exclude: ['0.0.0.0/0'] }, /^exclude\[0\]: 0\.0\.0\.0\/0 is too wide to exclude/],
  ['exclude', { exclude: ['203.0.113.0/24', '192.0.2.128/25'] }, /^exclude\[1\]: 192\.0\.2\.128\/25 covers the VM's address 192\.0\.2\.130/],
  ['exclude', { exclude: ['198.51.100.0/24;x'] }, /^exclude\[0\]: "198\.51\.100\.0\/24;x" is not a CIDR/],
  ['exclude', { exclude: Array.from({ length: 65 }, (_, i) => `10.${i}.0.0/16`) }, /^exclude: 65 given, at most 64/],
];

const CAPTURE_CASES: [string, Partial<CaptureRequest>, RegExp][] = [
  ['interface', { interface: 'en0;ls' }, /^interface: /],
  ['interface', { interface: '-i' }, /^interface: /],
  ['duration_ms', { durationMs: 3_600_000 }, /^duration_ms: /],
  ['max_packets', { maxPackets: 1_000_000 }, /^max_packets: /],
  ['probe_target', { probeTarget: 'example.com' }, /^probe_target: /],
  ['probe_count', { probeCount: 2 }, /^probe_count needs probe_target/],
  ['probe_count', { probeTarget: '203.0.113.1', probeCount: 1_000 }, /^probe_count: /],
];

describe('mac-agent: every request field is validated before the host is touched', () => {
  let dir: string;
  let driver: FakeDriver;
  let agent: RunningAgent;
  let client: MacAgentClient;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wth-rpcm-'));
    driver = new FakeDriver(fakeHost());
    const socket = `unix:${join(dir, 'a.sock')}`;
    agent = await startAgent(
      { driver: 'linux', listen: socket, stateDir: join(dir, 'state'), logLevel: 'error', dnsResolvConf: join(dir, 'resolv.conf'), dnsMode: 'resolv-conf' },
      { driver, logger: silentLogger(), sampleIntervalMs: 600_000 },
    );
    await agent.sampler.refresh();
    client = connectAgent(MacAgentClient, socket, { insecure: true });
  });

  afterAll(async () => {
    client?.close();
    await agent?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function upError(patch: Partial<MacUpRequest>): Promise<grpc.ServiceError | undefined> {
    try {
      for await (const _ of readStream(client.up(MacUpRequest.fromPartial({ ...GOOD, ...patch })))) {
        // streamed steps: accepted
      }
      return undefined;
    } catch (e) {
      return e as grpc.ServiceError;
    }
  }

  /** Driver calls made by a request (the sampler does not run: its interval is 10 minutes). */
  async function hostCalls<T>(fn: () => Promise<T>): Promise<{ result: T; calls: string[] }> {
    const before = driver.calls.length;
    const result = await fn();
    return { result, calls: driver.calls.slice(before) };
  }

  it.each(UP_CASES.map(([field, patch, details]) => [field, JSON.stringify(patch).slice(0, 80), patch, details] as const))(
    'Up %s = %s → INVALID_ARGUMENT naming the field, host untouched',
    async (_field, _shown, patch, details) => {
      const { result: error, calls } = await hostCalls(() => upError(patch));
      expect({ code: error?.code, details: error?.details }).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(details) });
      expect(calls).toEqual([]);
    },
  );

  it.each(CAPTURE_CASES.map(([field, request, details]) => [field, JSON.stringify(request), request, details] as const))(
    'Capture %s = %s → INVALID_ARGUMENT naming the field, host untouched',
    async (_field, _shown, request, details) => {
      const { result: error, calls } = await hostCalls(async () => {
        try {
          await unaryCall(client.capture.bind(client), CaptureRequest.fromPartial({ interface: 'en0', durationMs: 1000, ...request }), { timeoutMs: 10_000 });
          return undefined;
        } catch (e) {
          return e as grpc.ServiceError;
        }
      });
      expect({ code: error?.code, details: error?.details }).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(details) });
      expect(calls).toEqual([]);
    },
  );

  it.each(['vm.local', '-V', '192.0.2.130 ', '127.1', 'x'.repeat(200)])('Describe with metadata wgctl-vm-address = %j → INVALID_ARGUMENT, no route lookup', async (value) => {
    const metadata = new grpc.Metadata();
    metadata.set('wgctl-vm-address', value);
    const { result: error, calls } = await hostCalls(
      () =>
        new Promise<grpc.ServiceError | null>((resolve) => {
          client.describe(DescribeRequest.fromPartial({}), metadata, { deadline: new Date(Date.now() + 5000) }, (e) => resolve(e));
        }),
    );
    const expected = value.trim() === '192.0.2.130' ? null : grpc.status.INVALID_ARGUMENT; // metadata values are trimmed
    if (expected === null) return expect(error).toBeNull();
    expect({ code: error?.code, details: error?.details }).toEqual({ code: expected, details: expect.stringMatching(/^metadata wgctl-vm-address: .* is not an IP address/) });
    expect(calls).toEqual([]);
  });

  it('the controls: good values of the same fields are accepted', async () => {
    for (const patch of [{}, { vmAddress6: '2001:db8::130', ipv6: 1 }, { ipv6: 2 }, { dnsServers: [] }, endpoint({ host: '203.0.113.10' }), endpoint({ port: 65535 })]) {
      expect(await upError(patch)).toBeUndefined();
    }
    const metadata = new grpc.Metadata();
    metadata.set('wgctl-vm-address', '192.0.2.130');
    await new Promise<void>((resolve, reject) =>
      client.describe(DescribeRequest.fromPartial({}), metadata, (e, d) => (e ? reject(e) : (expect(d.vnicInterface).not.toBe(''), resolve()))),
    );
  });
});
