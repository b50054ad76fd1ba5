import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { CaptureRequest } from '@wgctl/proto';
import { ScriptedRunner } from '@wgctl/runner';
import { CAPTURE_LIMITS, captureHandler, planCapture, runCapture, tcpdumpArgv, type CaptureDeps } from '../capture';
import { interfaceLinkArgv, parseInterfaceLink, readInterfaceLink } from '../link';
import { darwinPingArgv, iputilsPingArgv, pingArgvFor } from '../ping';
import { fakeTcpdump, type FakeTcpdump } from '../testing/fakes';

const request = (fields: Partial<CaptureRequest> = {}): CaptureRequest => ({
  interface: '',
  durationMs: 300,
  maxPackets: 0,
  probeTarget: '',
  probeCount: 0,
  ...fields,
});

const LINES = [
  '07:13:19.207730 IP 198.51.100.66 > 203.0.113.82: ICMP echo request, id 7, seq 1, length 64',
  '07:13:19.208100 IP 203.0.113.82 > 198.51.100.66: ICMP echo reply, id 7, seq 1, length 64',
  '07:13:19.300000 IP 198.51.100.66.40000 > 198.51.100.65.53: 1234+ A? web.lab.test. (30)',
];

function deps(fake: FakeTcpdump, runner = new ScriptedRunner([]), defaultInterface = 'wgl-wg0'): CaptureDeps {
  return { runner, spawn: fake.spawn, defaultInterface: async () => defaultInterface };
}

async function grpcCode(promise: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await promise;
  } catch (e) {
    const err = e as { code: number; details?: string; message: string };
    return { code: err.code, details: err.details ?? err.message };
  }
  throw new Error('expected a gRPC error');
}

describe('planCapture', () => {
  it('fills in defaults', () => {
    expect(planCapture(request({ durationMs: 0 }))).toEqual({ interface: '', durationMs: CAPTURE_LIMITS.defaultDurationMs, maxPackets: CAPTURE_LIMITS.defaultMaxPackets });
  });

  it('spreads the probes over the duration, at most one a second', () => {
    expect(planCapture(request({ durationMs: 5000, probeTarget: '203.0.113.82' })).probe).toEqual({ target: '203.0.113.82', count: 3, intervalS: 1 });
    expect(planCapture(request({ durationMs: 3000, probeTarget: '2001:db8::2', probeCount: 5 })).probe).toEqual({ target: '2001:db8::2', count: 5, intervalS: 0.4 });
  });

  it.each([
    [{ interface: 'eth0; rm -rf /' }, /interface/],
    [{ interface: 'a-very-long-interface-name' }, /interface/],
    [{ durationMs: 30_001 }, /duration_ms.*30000/],
    [{ maxPackets: 10_001 }, /max_packets/],
    [{ probeTarget: 'example.com' }, /probe_target.*IPv4 or IPv6/],
    [{ probeTarget: '-f' }, /probe_target/],
    [{ probeTarget: '203.0.113.82', probeCount: 101 }, /probe_count.*100/],
    [{ probeTarget: '203.0.113.82', probeCount: 50, durationMs: 5000 }, /do not fit.*11000/],
    [{ probeCount: 3 }, /probe_count needs probe_target/],
  ])('refuses %j with INVALID_ARGUMENT', (fields, message) => {
    let thrown: { code?: number; details?: string } | undefined;
    try {
      planCapture(request(fields));
    } catch (e) {
      thrown = e as { code: number; details: string };
    }
    expect(thrown?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(thrown?.details).toMatch(message);
  });
});

describe('argv', () => {
  it('captures without promiscuous mode, line-buffered, numeric, bounded', () => {
    expect(tcpdumpArgv('wgl-wg0', 100)).toEqual(['tcpdump', '-nn', '-e', '-l', '-p', '--immediate-mode', '-i', 'wgl-wg0', '-c', '100']);
  });
  it('iputils: pings IPv4 and IPv6 literals, -W in seconds', () => {
    expect(iputilsPingArgv({ target: '203.0.113.82', count: 3, intervalS: 1 })).toEqual(['ping', '-n', '-4', '-c', '3', '-i', '1', '-W', '1', '203.0.113.82']);
    expect(iputilsPingArgv({ target: '2001:db8::2', count: 2, intervalS: 0.5 })).toEqual(['ping', '-n', '-6', '-c', '2', '-i', '0.5', '-W', '1', '2001:db8::2']);
  });
  it('darwin: -W in milliseconds, ping6 for IPv6', () => {
    const probe = { count: 3, intervalS: 1 };
    expect(darwinPingArgv({ ...probe, target: '203.0.113.82' })).toEqual(['ping', '-n', '-c', '3', '-i', '1', '-W', '1000', '203.0.113.82']);
    expect(darwinPingArgv({ ...probe, target: '2001:db8::2' })).toEqual(['ping6', '-n', '-c', '3', '-i', '1', '2001:db8::2']);
  });
  it('picks the builder by the driver\'s system, iputils for anything but darwin', () => {
    expect(pingArgvFor('darwin')).toBe(darwinPingArgv);
    expect(pingArgvFor('linux')).toBe(iputilsPingArgv);
  });
});

describe('runCapture', () => {
  it('captures on the default interface and parses every packet', async () => {
    const fake = fakeTcpdump({ lines: LINES });
    const started = Date.now();
    const result = await runCapture(request({ durationMs: 200 }), deps(fake));
    expect(Date.now() - started).toBeGreaterThanOrEqual(195);
    expect(fake.argv()).toEqual(tcpdumpArgv('wgl-wg0', CAPTURE_LIMITS.defaultMaxPackets));
    expect(fake.stopped()).toBe(true);
    expect(result.interface).toBe('wgl-wg0');
    expect(result.packets.map((p) => [p.protocol, p.src, p.dst, p.dstPort])).toEqual([
      ['icmp', '198.51.100.66', '203.0.113.82', 0],
      ['icmp', '203.0.113.82', '198.51.100.66', 0],
      ['udp', '198.51.100.66', '198.51.100.65', 53],
    ]);
    expect(result.packets[0]).toMatchObject({ interface: 'wgl-wg0', family: 'ip', line: LINES[0] });
    expect(result.command?.argv).toEqual(fake.argv());
    expect(result.probeOk).toBe(false);
  });

  it('reports each packet\'s MACs and the interface\'s own MAC and addresses, read once before tcpdump starts', async () => {
    const ipAddr = readFileSync(join(__dirname, '../../../parsers/src/linux/__fixtures__/ip-addr.json'), 'utf8');
    const runner = new ScriptedRunner([{ argv: ['ip', '-j', 'addr', 'show', 'dev', 'wtmx0'], stdout: ipAddr }]);
    const fake = fakeTcpdump({
      lines: ['07:13:19.124921 3e:95:27:df:e4:20 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 192.0.2.1 tell 192.0.2.2, length 28'],
    });
    const result = await runCapture(request({ durationMs: 50 }), {
      ...deps(fake, runner, 'wtmx0'),
      interfaceLink: (iface) => readInterfaceLink(runner, 'linux', iface),
    });
    expect(result.packets[0]).toMatchObject({ srcMac: '3e:95:27:df:e4:20', dstMac: 'ff:ff:ff:ff:ff:ff' });
    expect(result).toMatchObject({ linkAddress: '3e:95:27:df:e4:20', interfaceAddresses: ['192.0.2.2/26', '2001:db8:a::2/64', 'fe80::3c95:27ff:fedf:e420/64'] });
    runner.assertDone();
  });

  it('reads a darwin interface\'s ether line and addresses (real ifconfig en0)', () => {
    const text = readFileSync(join(__dirname, '../../../parsers/src/darwin/__fixtures__/ifconfig-en0-ventura-tp.txt'), 'utf8');
    expect(interfaceLinkArgv('darwin', 'en0')).toEqual(['ifconfig', 'en0']);
    expect(parseInterfaceLink('darwin', 'en0', text)).toEqual({
      linkAddress: '74:8f:3c:be:6e:b6',
      addresses: ['10.33.16.202/22', 'fe80::42e:fb9c:7a0c:781a/64'],
    });
    expect(parseInterfaceLink('darwin', 'en1', text)).toBeUndefined();
  });

  it('uses the interface the request names', async () => {
    const fake = fakeTcpdump();
    const result = await runCapture(request({ interface: 'wgl-eth0', durationMs: 50 }), deps(fake));
    expect(result.interface).toBe('wgl-eth0');
    expect(fake.argv()).toContain('wgl-eth0');
  });

  it('pings once tcpdump listens and reports the reply', async () => {
    const runner = new ScriptedRunner([
      { argv: iputilsPingArgv({ target: '203.0.113.82', count: 2, intervalS: 0.25 }), stdout: 'PING …\n\n--- 203.0.113.82 ping statistics ---\n2 packets transmitted, 2 received, 0% packet loss, time 201ms\n' },
    ]);
    const result = await runCapture(request({ durationMs: 1500, probeTarget: '203.0.113.82', probeCount: 2 }), deps(fakeTcpdump({ lines: LINES }), runner));
    runner.assertDone();
    expect(result.probeOk).toBe(true);
    expect(result.probeDetail).toBe('2 packets transmitted, 2 received, 0% packet loss, time 201ms');
  });

  it('reports a probe without reply as not ok, with ping\'s summary', async () => {
    const runner = new ScriptedRunner([
      { argv: iputilsPingArgv({ target: '203.0.113.82', count: 1, intervalS: 0.5 }), exitCode: 1, stdout: '1 packets transmitted, 0 received, 100% packet loss, time 0ms\n' },
    ]);
    const result = await runCapture(request({ durationMs: 1500, probeTarget: '203.0.113.82', probeCount: 1 }), deps(fakeTcpdump(), runner));
    expect(result.probeOk).toBe(false);
    expect(result.probeDetail).toMatch(/100% packet loss/);
  });

  it('stops at max_packets without waiting for the duration', async () => {
    const fake = fakeTcpdump({ lines: LINES, exitAfterMs: 30, exitCode: 0 });
    const started = Date.now();
    const result = await runCapture(request({ durationMs: 5000, maxPackets: 2 }), deps(fake));
    expect(Date.now() - started).toBeLessThan(1000);
    expect(result.packets).toHaveLength(2);
  });

  it('fails with FAILED_PRECONDITION and tcpdump\'s words when it cannot start', async () => {
    const fake = fakeTcpdump({ listen: false, exitAfterMs: 20, stderr: ['tcpdump: wgl-nope: No such device exists'] });
    const error = await grpcCode(runCapture(request({ interface: 'wgl-nope' }), deps(fake)));
    expect(error.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(error.details).toMatch(/capture on wgl-nope failed: tcpdump exited.*No such device exists/);
  });

  it('fails when tcpdump never says it listens', async () => {
    const fake = fakeTcpdump({ listen: false });
    const error = await grpcCode(runCapture(request(), { ...deps(fake), startTimeoutMs: 50 }));
    expect(error.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(error.details).toMatch(/did not start listening within 50 ms/);
    expect(fake.stopped()).toBe(true);
  });

  it('fails when tcpdump stops early: a truncated capture proves nothing', async () => {
    const fake = fakeTcpdump({ lines: LINES.slice(0, 1), exitAfterMs: 40, exitCode: 1, stderr: ['tcpdump: pcap_loop: The interface disappeared'] });
    const error = await grpcCode(runCapture(request({ durationMs: 2000 }), deps(fake)));
    expect(error.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(error.details).toMatch(/stopped after \d+ ms of 2000.*interface disappeared/);
  });

  it('needs an interface when the agent has no default', async () => {
    const error = await grpcCode(runCapture(request(), deps(fakeTcpdump(), new ScriptedRunner([]), '')));
    expect(error.code).toBe(grpc.status.FAILED_PRECONDITION);
  });

  it('validates before starting anything', async () => {
    const fake = fakeTcpdump();
    const error = await grpcCode(runCapture(request({ probeTarget: '$(reboot)' }), deps(fake)));
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(fake.argv()).toBeUndefined();
  });

  it.each([
    [{ interface: '../../etc' }, /interface/],
    [{ durationMs: 60_000 }, /duration_ms/],
    [{ probeTarget: 'web.lab.test' }, /probe_target/],
  ])('refuses %j with INVALID_ARGUMENT before running anything', async (fields, message) => {
    const fake = fakeTcpdump();
    await expect(runCapture(request(fields), deps(fake))).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringMatching(message),
    });
    expect(fake.argv()).toBeUndefined();
  });

  it('ends early when the caller goes away', async () => {
    const controller = new AbortController();
    const fake = fakeTcpdump();
    setTimeout(() => controller.abort(), 50);
    const started = Date.now();
    const error = await grpcCode(runCapture(request({ durationMs: 10_000 }), deps(fake), controller.signal));
    expect(Date.now() - started).toBeLessThan(2000);
    expect(error.code).toBe(grpc.status.CANCELLED);
    expect(fake.stopped()).toBe(true);
  });
});

describe('captureHandler', () => {
  function call(fields: Partial<CaptureRequest>) {
    const listeners: (() => void)[] = [];
    return {
      request: request(fields),
      on: (_: string, fn: () => void) => listeners.push(fn),
      off: () => undefined,
    } as unknown as grpc.ServerUnaryCall<CaptureRequest, never>;
  }

  it(`runs at most ${CAPTURE_LIMITS.maxConcurrent} captures at once`, async () => {
    const handler = captureHandler(deps(fakeTcpdump()));
    const results: unknown[] = [];
    const callback = (err: unknown, value: unknown) => results.push(err ?? value);
    const running = Array.from({ length: CAPTURE_LIMITS.maxConcurrent }, () => handler(call({ durationMs: 200 }), callback));
    const refused = await grpcCode(Promise.resolve(handler(call({ durationMs: 200 }), callback)));
    expect(refused.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    await Promise.all(running);
    expect(results).toHaveLength(CAPTURE_LIMITS.maxConcurrent);
    await handler(call({ durationMs: 10 }), callback); // a slot is free again
    expect(results).toHaveLength(CAPTURE_LIMITS.maxConcurrent + 1);
  });
});
