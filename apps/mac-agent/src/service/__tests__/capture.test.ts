/**
 * The mac-agent's Capture wiring: the uplink as default interface and ping per driver, with a
 * stand-in tcpdump (the shared core's tests are in libs/capture; the real tcpdump runs in tools/e2e).
 */
import * as grpc from '@grpc/grpc-js';
import type { CaptureRequest, CaptureResult } from '@wgctl/proto';
import { ScriptedRunner, type StreamExit, type StreamingOptions, type StreamingProcess } from '@wgctl/runner';
import { invokeCapture, tcpdumpArgv } from '@wgctl/capture';
import { macCaptureHandler } from '../capture';

const request = (fields: Partial<CaptureRequest> = {}): CaptureRequest => ({ interface: '', durationMs: 200, maxPackets: 0, probeTarget: '', probeCount: 0, ...fields });

const UPLINK_LINES = [
  '10:00:00.000001 IP 192.0.2.100.41000 > 203.0.113.50.51820: UDP, length 128',
  '10:00:00.000002 IP 203.0.113.50.51820 > 192.0.2.100.41000: UDP, length 128',
  '10:00:00.000003 ARP, Request who-has 192.0.2.1 tell 192.0.2.100, length 28',
];

/** Says "listening", prints `lines`, runs until stopped; records its argv. */
function fakeSpawn(lines: string[] = UPLINK_LINES) {
  const spawned: (readonly string[])[] = [];
  const spawn = (argv: readonly string[], o: StreamingOptions): StreamingProcess => {
    spawned.push(argv);
    let finish: (exit: StreamExit) => void = () => undefined;
    const exited = new Promise<StreamExit>((resolve) => (finish = resolve));
    setTimeout(() => {
      o.onStderrLine?.(`listening on ${argv[argv.indexOf('-i') + 1]}, link-type EN10MB (Ethernet), snapshot length 524288 bytes`);
      lines.forEach((line) => o.onLine(line));
    }, 5);
    return { argv, pid: 1, exited, stderrTail: () => [], stop: async () => (finish({ code: 0, signal: null }), exited) };
  };
  return { spawn, spawned };
}

function engine(driverName: string, uplink: string | null) {
  let describes = 0;
  return {
    driverName,
    describe: async () => {
      describes++;
      return { uplink: uplink === null ? null : { interface: uplink } };
    },
    describes: () => describes,
  };
}

function invoke(handler: grpc.handleUnaryCall<CaptureRequest, CaptureResult>, fields: Partial<CaptureRequest>): Promise<CaptureResult> {
  return invokeCapture(handler, request(fields));
}

describe('macCaptureHandler', () => {
  it('captures on the uplink by default and reports every packet', async () => {
    const { spawn, spawned } = fakeSpawn();
    const ipAddr = JSON.stringify([{ ifindex: 10, ifname: 'wgl-en0', flags: ['UP'], address: '3e:95:27:df:e4:20', addr_info: [{ family: 'inet', local: '192.0.2.100', prefixlen: 25, scope: 'global' }] }]);
    const runner = new ScriptedRunner([{ argv: ['ip', '-j', 'addr', 'show', 'dev', 'wgl-en0'], stdout: ipAddr }]);
    const result = await invoke(macCaptureHandler(engine('linux', 'wgl-en0'), { runner, spawn }), {});
    runner.assertDone();
    expect(spawned).toEqual([tcpdumpArgv('wgl-en0', 1000)]);
    expect(result.interface).toBe('wgl-en0');
    // The uplink's own MAC, from the driver's tool: verify tells what the Mac sent by it.
    expect(result).toMatchObject({ linkAddress: '3e:95:27:df:e4:20', interfaceAddresses: ['192.0.2.100/25'] });
    expect(result.packets.map((p) => `${p.family}/${p.protocol} ${p.src}:${p.srcPort} > ${p.dst}:${p.dstPort}`)).toEqual([
      'ip/udp 192.0.2.100:41000 > 203.0.113.50:51820',
      'ip/udp 203.0.113.50:51820 > 192.0.2.100:41000',
      'arp/arp 192.0.2.100:0 > 192.0.2.1:0',
    ]);
  });

  it('probes with the driver\'s ping while capturing', async () => {
    const { spawn } = fakeSpawn();
    const ifconfig = 'en0: flags=8863<UP,BROADCAST,SMART,RUNNING,SIMPLEX,MULTICAST> mtu 1500\n\tether 74:8f:3c:be:6e:b6\n\tinet 192.0.2.100 netmask 0xffffff80 broadcast 192.0.2.127\n';
    const runner = new ScriptedRunner([
      { argv: ['ifconfig', 'en0'], stdout: ifconfig },
      { argv: ['ping', '-n', '-c', '2', '-i', '0.5', '-W', '1000', '203.0.113.82'], stdout: '2 packets transmitted, 2 packets received, 0.0% packet loss\n' },
    ]);
    const result = await invoke(macCaptureHandler(engine('darwin', 'en0'), { runner, spawn }), { durationMs: 2000, probeTarget: '203.0.113.82', probeCount: 2 });
    runner.assertDone();
    expect(result.probeOk).toBe(true);
    expect(result.probeDetail).toBe('2 packets transmitted, 2 packets received, 0.0% packet loss');
    expect(result.linkAddress).toBe('74:8f:3c:be:6e:b6');
  });

  it('does not ask the engine when the request names the interface', async () => {
    const e = engine('linux', 'wgl-en0');
    const { spawn, spawned } = fakeSpawn([]);
    await invoke(macCaptureHandler(e, { runner: new ScriptedRunner([]), spawn }), { interface: 'wgl-vnic' });
    expect(spawned[0]).toContain('wgl-vnic');
    expect(e.describes()).toBe(0);
  });

  it('without an uplink: FAILED_PRECONDITION asking for an interface', async () => {
    const { spawn, spawned } = fakeSpawn();
    await expect(invoke(macCaptureHandler(engine('linux', null), { runner: new ScriptedRunner([]), spawn }), {})).rejects.toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      details: expect.stringMatching(/no interface to capture on/),
    });
    expect(spawned).toEqual([]);
  });
});
