/**
 * The vm-agent's Capture with the real tcpdump and ping, in two private namespaces joined by
 * a veth pair (192.0.2.0/29): what the parser sees is what tcpdump prints on this system.
 */
import * as grpc from '@grpc/grpc-js';
import { runCapture, type CaptureDeps } from '@wgctl/capture';
import type { CaptureRequest } from '@wgctl/proto';
import { ExecRunner, spawnStreaming, type RunOptions, type Runner } from '@wgctl/runner';
import { canUseNetns } from '../testing/netns';

const run = canUseNetns() ? describe : describe.skip;

const NS_A = 'wgecap-a';
const NS_B = 'wgecap-b';
const IF_A = 'wgecap-a0';
const IF_B = 'wgecap-b0';
const ADDR_A = '192.0.2.1';
const ADDR_B = '192.0.2.2';

const host = new ExecRunner();
const inNs = (ns: string, argv: readonly string[]) => ['ip', 'netns', 'exec', ns, ...argv];

/** Everything the capture runs goes into namespace A. */
function depsIn(ns: string, defaultInterface = IF_A): CaptureDeps {
  const runner: Runner = { run: (argv: readonly string[], options?: RunOptions) => host.run(inNs(ns, argv), options) };
  return { runner, spawn: (argv, options) => spawnStreaming(inNs(ns, argv), options), defaultInterface: async () => defaultInterface };
}

const request = (fields: Partial<CaptureRequest>): CaptureRequest => ({ interface: '', durationMs: 1500, maxPackets: 0, probeTarget: '', probeCount: 0, ...fields });

async function cleanup(): Promise<void> {
  for (const ns of [NS_A, NS_B]) await host.run(['ip', 'netns', 'del', ns], { allowFailure: true });
}

run('Capture with the real tcpdump (netns)', () => {
  beforeAll(async () => {
    await cleanup();
    await host.run(['ip', 'netns', 'add', NS_A]);
    await host.run(['ip', 'netns', 'add', NS_B]);
    await host.run(['ip', '-n', NS_A, 'link', 'add', IF_A, 'type', 'veth', 'peer', 'name', IF_B, 'netns', NS_B]);
    await host.run(['ip', '-n', NS_A, 'addr', 'add', `${ADDR_A}/29`, 'dev', IF_A]);
    await host.run(['ip', '-n', NS_B, 'addr', 'add', `${ADDR_B}/29`, 'dev', IF_B]);
    for (const [ns, dev] of [[NS_A, IF_A], [NS_B, IF_B]]) {
      await host.run(['ip', '-n', ns, 'link', 'set', dev, 'up']);
      await host.run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    }
  });
  afterAll(cleanup);

  it('sees the probe and its replies on the default interface', async () => {
    const result = await runCapture(request({ probeTarget: ADDR_B, probeCount: 2 }), depsIn(NS_A));
    expect(result.interface).toBe(IF_A);
    expect(result.probeOk).toBe(true);
    expect(result.probeDetail).toMatch(/2 packets transmitted, 2 received/);
    const icmp = result.packets.filter((p) => p.protocol === 'icmp');
    expect(icmp.filter((p) => p.src === ADDR_A && p.dst === ADDR_B && /echo request/.test(p.line))).toHaveLength(2);
    expect(icmp.filter((p) => p.src === ADDR_B && p.dst === ADDR_A && /echo reply/.test(p.line))).toHaveLength(2);
    expect(result.command?.argv).toEqual(['tcpdump', '-nn', '-e', '-l', '-p', '--immediate-mode', '-i', IF_A, '-c', '1000']);
    // -e: the veth's link-layer addresses on every packet, requests from A's MAC and replies to it.
    const requests = icmp.filter((p) => /echo request/.test(p.line));
    expect(requests.every((p) => /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(p.srcMac) && p.srcMac !== p.dstMac)).toBe(true);
    expect(icmp.filter((p) => /echo reply/.test(p.line)).map((p) => p.dstMac)).toEqual(requests.map((p) => p.srcMac));
    expect(Number(result.command?.durationMs)).toBeGreaterThanOrEqual(1500);
  });

  it('reports a probe nobody answers', async () => {
    const result = await runCapture(request({ probeTarget: '192.0.2.3', probeCount: 1, durationMs: 1200 }), depsIn(NS_A));
    expect(result.probeOk).toBe(false);
    expect(result.probeDetail).toMatch(/1 packets transmitted, 0 received/);
  });

  it('sees UDP with its ports', async () => {
    const capture = runCapture(request({ interface: IF_B, durationMs: 1000 }), depsIn(NS_B));
    await new Promise((r) => setTimeout(r, 400));
    // One datagram from A to B:51820, sent by node inside namespace A.
    const send = `require('dgram').createSocket('udp4').send('x', 51820, '${ADDR_B}', (e, _n) => process.exit(e ? 1 : 0))`;
    await host.run(inNs(NS_A, [process.execPath, '-e', send]));
    const result = await capture;
    expect(result.packets).toContainEqual(expect.objectContaining({ interface: IF_B, family: 'ip', protocol: 'udp', src: ADDR_A, dst: ADDR_B, dstPort: 51820 }));
  });

  it('answers FAILED_PRECONDITION with tcpdump\'s message for a missing interface', async () => {
    let error: { code?: number; details?: string } = {};
    await runCapture(request({ interface: 'wgecap-none' }), depsIn(NS_A)).catch((e) => (error = e));
    expect(error.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(error.details).toMatch(/wgecap-none/);
    expect(error.details).toMatch(/tcpdump exited/);
  });
});
