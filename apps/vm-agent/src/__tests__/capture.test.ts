/**
 * The vm-agent's Capture wiring: the tunnel as default interface and iputils ping, with a
 * stand-in tcpdump (the shared core's tests are in libs/capture; the real tcpdump runs in
 * capture.netns.test.ts).
 */
import * as grpc from '@grpc/grpc-js';
import { fakeTcpdump, invokeCapture, tcpdumpArgv } from '@wgctl/capture';
import type { CaptureRequest, CaptureResult } from '@wgctl/proto';
import { ScriptedRunner } from '@wgctl/runner';
import { vmCaptureHandler } from '../service/capture';

const request = (fields: Partial<CaptureRequest> = {}): CaptureRequest => ({ interface: '', durationMs: 200, maxPackets: 0, probeTarget: '', probeCount: 0, ...fields });

function engine(tunnelInterface: string) {
  let describes = 0;
  return {
    describe: async () => {
      describes++;
      return { interface: tunnelInterface };
    },
    describes: () => describes,
  };
}

function invoke(handler: grpc.handleUnaryCall<CaptureRequest, CaptureResult>, fields: Partial<CaptureRequest>): Promise<CaptureResult> {
  return invokeCapture(handler, request(fields));
}

describe('vmCaptureHandler', () => {
  it('captures on the tunnel interface by default', async () => {
    const fake = fakeTcpdump({ lines: ['07:13:19.207730 IP 198.51.100.66 > 203.0.113.82: ICMP echo request, id 7, seq 1, length 64'] });
    const result = await invoke(vmCaptureHandler(engine('wgl-wg0'), { runner: new ScriptedRunner([]), spawn: fake.spawn }), {});
    expect(fake.argv()).toEqual(tcpdumpArgv('wgl-wg0', 1000));
    expect(result.interface).toBe('wgl-wg0');
    expect(result.packets.map((p) => `${p.protocol} ${p.src} > ${p.dst}`)).toEqual(['icmp 198.51.100.66 > 203.0.113.82']);
  });

  it('probes with iputils ping while capturing', async () => {
    const fake = fakeTcpdump();
    const runner = new ScriptedRunner([
      { argv: ['ping', '-n', '-6', '-c', '2', '-i', '0.5', '-W', '1', '2001:db8::2'], stdout: '2 packets transmitted, 2 received, 0% packet loss, time 501ms\n' },
    ]);
    const result = await invoke(vmCaptureHandler(engine('wgl-wg0'), { runner, spawn: fake.spawn }), { durationMs: 2000, probeTarget: '2001:db8::2', probeCount: 2 });
    runner.assertDone();
    expect(result.probeOk).toBe(true);
    expect(result.probeDetail).toBe('2 packets transmitted, 2 received, 0% packet loss, time 501ms');
  });

  it('does not ask the engine when the request names the interface', async () => {
    const e = engine('wgl-wg0');
    const fake = fakeTcpdump();
    await invoke(vmCaptureHandler(e, { runner: new ScriptedRunner([]), spawn: fake.spawn }), { interface: 'wgl-eth0', durationMs: 50 });
    expect(fake.argv()).toContain('wgl-eth0');
    expect(e.describes()).toBe(0);
  });

  it('without a tunnel configured: FAILED_PRECONDITION asking for an interface', async () => {
    const fake = fakeTcpdump();
    await expect(invoke(vmCaptureHandler(engine(''), { runner: new ScriptedRunner([]), spawn: fake.spawn }), {})).rejects.toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      details: expect.stringMatching(/no interface to capture on/),
    });
    expect(fake.argv()).toBeUndefined();
  });
});
