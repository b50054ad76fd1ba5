/**
 * Liveness through the tunnel without a system: the decision (a pure function of rx readings
 * and the clock), where probes go, and the monitor's schedule against a simulated WireGuard
 * server on a virtual clock — including the worst case from the server's death to "dead",
 * swept over every phase of the reading interval. The real thing: tools/e2e/liveness.netns.test.ts.
 */
import { silentLogger } from '@wgctl/logging';
import type { RunOptions, RunResult, Runner } from '@wgctl/runner';
import { DEFAULT_LIVENESS_TIMINGS, livenessReport, livenessState, observeRx, probeArgv, probeTargetFor, type LivenessMemory, type LivenessTimings } from '../service/engine/liveness';
import { LivenessMonitor } from '../service/engine/liveness-monitor';
import { linkEventOf } from '../service/engine/link-watch';

const T = DEFAULT_LIVENESS_TIMINGS;
const IF = 'wg0';

/** Feeds readings (ms, rx) through observeRx; returns every step. */
function feed(readings: [number, number][], timings: LivenessTimings = T) {
  let memory: LivenessMemory | null = null;
  return readings.map(([atMs, rx]) => {
    const step = observeRx(memory, { interface: IF, atMs, rxBytes: String(rx) }, timings);
    memory = step.memory;
    return { ...step, state: livenessState(memory), report: livenessReport(memory, '192.0.2.1', atMs) };
  });
}

describe('the liveness decision', () => {
  it('starts unknown, without a probe, and is alive once rx moves', () => {
    const [first, second] = feed([
      [0, 500],
      [3_000, 592],
    ]);
    expect(first).toMatchObject({ state: 'unknown', probe: false, nextDeadlineMs: 10_000 });
    expect(second).toMatchObject({ state: 'alive', probe: false, nextDeadlineMs: 13_000 });
    expect(second.report.detail).toBe('alive: last reply 0 s ago');
  });

  it('never probes while real traffic keeps rx moving', () => {
    const readings: [number, number][] = Array.from({ length: 40 }, (_, i) => [i * 3_000, 1_000 + i * 1_500]);
    const steps = feed(readings);
    expect(steps.filter((s) => s.probe)).toEqual([]);
    expect(steps.at(-1)!.state).toBe('alive');
  });

  it('probes once after 10 s of silence; an answer within the window keeps it alive', () => {
    const steps = feed([
      [0, 500],
      [3_000, 600], // alive, rx moved
      [6_000, 600],
      [9_000, 600],
      [13_000, 600], // 10 s without rx: probe
      [16_000, 600], // waiting: no second probe
      [19_000, 692], // the answer (ICMP time exceeded or a keepalive)
    ]);
    expect(steps.map((s) => s.probe)).toEqual([false, false, false, false, true, false, false]);
    expect(steps[4]).toMatchObject({ state: 'probing', nextDeadlineMs: 13_000 + T.replyWindowMs });
    expect(steps[6]).toMatchObject({ state: 'alive', nextDeadlineMs: 19_000 + T.probeAfterIdleMs });
  });

  it('is dead when rx has not moved for the reply window after a probe, and says since when', () => {
    const steps = feed([
      [0, 500],
      [3_000, 600],
      [13_000, 600], // probe
      [24_999, 600], // 1 ms short of the window: still probing
      [25_000, 600], // window over: dead, and probe again
      [31_000, 600],
      [37_000, 600], // second window over: still dead, third probe
    ]);
    expect(steps.map((s) => s.state)).toEqual(['unknown', 'alive', 'probing', 'probing', 'dead', 'dead', 'dead']);
    expect(steps.map((s) => s.probe)).toEqual([false, false, true, false, true, false, true]);
    const dead = steps[6].report;
    expect(dead).toMatchObject({ state: 'dead', deadSinceMs: 25_000, lastRxAtMs: 3_000, lastProbeAtMs: 37_000 });
    expect(dead.detail).toBe(
      'no reply through the tunnel for 24 s since a probe at 1970-01-01T00:00:13.000Z (dead since 1970-01-01T00:00:25.000Z; last reply 34 s ago)',
    );
  });

  it('is alive again as soon as rx moves after being dead', () => {
    const steps = feed([
      [0, 500],
      [10_000, 500], // probe
      [22_000, 500], // dead
      [23_000, 740], // a handshake response: the server is back
    ]);
    expect(steps.map((s) => s.state)).toEqual(['unknown', 'probing', 'dead', 'alive']);
    expect(steps[3].memory).toMatchObject({ deadSinceMs: null, probeAtMs: null, firstUnansweredProbeAtMs: null });
  });

  it('starts over when the counters go down (the interface was re-created) or the interface changes', () => {
    const [, , reset] = feed([
      [0, 5_000],
      [10_000, 5_000], // probe
      [12_000, 40], // a new interface: counters from 0
    ]);
    expect(reset).toMatchObject({ state: 'unknown', probe: false });
    const other = observeRx(feed([[0, 1]])[0].memory, { interface: 'wg1', atMs: 20_000, rxBytes: '1' }, T);
    expect(other).toMatchObject({ probe: false, memory: { interface: 'wg1', rxChangedAtMs: 20_000 } });
  });

  it('compares uint64 counters exactly (beyond 2^53)', () => {
    let memory = observeRx(null, { interface: IF, atMs: 0, rxBytes: '18446744073709551000' }, T).memory;
    memory = observeRx(memory, { interface: IF, atMs: 3_000, rxBytes: '18446744073709551001' }, T).memory;
    expect(livenessState(memory)).toBe('alive');
  });
});

describe('where the probe goes', () => {
  it.each([
    [['0.0.0.0/0', '::/0'], '192.0.2.1', 4],
    [['::/0', '0.0.0.0/0'], '192.0.2.1', 4],
    [['::/0'], '2001:db8::1', 6],
    [['10.64.0.0/24'], '10.64.0.1', 4],
    [['10.64.0.1/32', '10.65.0.0/16'], '10.64.0.1', 4],
    [['198.51.100.128/25'], '198.51.100.129', 4],
    [['fd00:64::/64'], 'fd00:64::1', 6],
    [['2001:db8::5/128'], '2001:db8::5', 6],
  ])('AllowedIPs %j → %s', (allowed, address, family) => {
    expect(probeTargetFor(allowed)).toEqual({ address, family });
  });

  it('has none without AllowedIPs', () => {
    expect(probeTargetFor([])).toBeNull();
  });

  it('is one ICMP echo with TTL 1, bound to the tunnel interface, waiting 1 s at most', () => {
    expect(probeArgv('wg0', { address: '192.0.2.1', family: 4 })).toEqual(['ping', '-4', '-n', '-q', '-c', '1', '-w', '1', '-t', '1', '-I', 'wg0', '192.0.2.1']);
  });
});

describe('link events', () => {
  it('reads ip -o monitor link lines (iproute2 6.1)', () => {
    expect(linkEventOf('Deleted 7: wg0: <POINTOPOINT,MULTICAST,NOARP,UP,LOWER_UP> mtu 1420 qdisc fq_codel state UNKNOWN group default qlen 500\\    link/none ')).toEqual({
      ifname: 'wg0',
      deleted: true,
      flags: ['POINTOPOINT', 'MULTICAST', 'NOARP', 'UP', 'LOWER_UP'],
    });
    expect(linkEventOf('7: wg0: <POINTOPOINT,MULTICAST,NOARP> mtu 1420 qdisc fq_codel state DOWN group default qlen 500\\    link/none ')).toMatchObject({ deleted: false, flags: ['POINTOPOINT', 'MULTICAST', 'NOARP'] });
    expect(linkEventOf('garbage')).toBeNull();
  });
});

/**
 * A WireGuard server on the far side of the tunnel, as the VM's counters see it: rx moves by 92
 * bytes (an encrypted ICMP time-exceeded) `answerDelayMs` after each probe while alive, and with
 * the server's own traffic; nothing once dead.
 */
class SimulatedTunnel implements Runner {
  private readonly answersAt: number[] = [];
  deadAtMs = Infinity;
  probes: number[] = [];

  constructor(
    private readonly clock: () => number,
    private readonly answerDelayMs: number,
    /** Traffic the server sends by itself (ms): rx moves then. */
    private readonly spontaneous: number[] = [],
  ) {}

  rxAt(ms: number): number {
    const answered = this.answersAt.filter((t) => t <= ms).length;
    const own = this.spontaneous.filter((t) => t <= ms && t < this.deadAtMs).length;
    return 148 + 92 * (answered + own);
  }

  async run(argv: readonly string[], _options?: RunOptions): Promise<RunResult> {
    const now = this.clock();
    const result = (stdout: string, exitCode = 0): RunResult => ({ argv, stdout, stderr: '', exitCode, signal: null, timedOut: false, durationMs: 0, dryRun: false });
    if (argv[0] === 'wg') {
      const peer = ['UGxKOxF223C/8EIeGfLP/tjfq7dQwkHIgmIijtS3yQw=', '(none)', '203.0.113.5:51820', '0.0.0.0/0,::/0', String(Math.floor(now / 1000)), String(this.rxAt(now)), '2000', '25'].join('\t');
      return result(`(none)\tIh/UYseGLh1n6jMPX6MzEs90+eEIGSH5jpqQBr+2pBs=\t38927\toff\n${peer}\n`);
    }
    if (argv[0] === 'ping') {
      this.probes.push(now);
      if (now < this.deadAtMs) this.answersAt.push(now + this.answerDelayMs);
      return result('', 1);
    }
    throw new Error(`unexpected ${argv.join(' ')}`);
  }
}

describe('the liveness monitor on a virtual clock', () => {
  beforeEach(() => jest.useFakeTimers({ now: 0 }));
  afterEach(() => jest.useRealTimers());

  function monitorOver(tunnel: (clock: () => number) => SimulatedTunnel) {
    const clock = () => Date.now();
    const sim = tunnel(clock);
    const changes: { atMs: number; state: string }[] = [];
    const monitor = new LivenessMonitor({ runner: sim, now: clock, timings: T, target: async () => IF, logger: silentLogger() });
    monitor.start((report) => changes.push({ atMs: clock(), state: report.state }));
    return { sim, monitor, changes };
  }

  it('keeps an idle tunnel alive with one probe per ~10 s, answered by the server', async () => {
    const { sim, monitor, changes } = monitorOver((clock) => new SimulatedTunnel(clock, 40));
    await jest.advanceTimersByTimeAsync(60_000);
    monitor.stop();
    expect(changes.map((c) => c.state)).not.toContain('dead');
    expect(sim.probes.length).toBeGreaterThanOrEqual(4);
    expect(sim.probes.length).toBeLessThanOrEqual(6);
  });

  it('sends no probe while the server itself keeps rx moving', async () => {
    const every2s = Array.from({ length: 40 }, (_, i) => i * 2_000);
    const { sim, monitor, changes } = monitorOver((clock) => new SimulatedTunnel(clock, 40, every2s));
    await jest.advanceTimersByTimeAsync(60_000);
    monitor.stop();
    expect(sim.probes).toEqual([]);
    expect(changes.map((c) => c.state)).toEqual(['alive']);
  });

  it('keeps reading after a failed reading, and an unsent probe (ping exit 2) is never taken for a dead tunnel', async () => {
    const clock = () => Date.now();
    let calls = 0;
    const dump = `(none)\tIh/UYseGLh1n6jMPX6MzEs90+eEIGSH5jpqQBr+2pBs=\t38927\toff\nUGxKOxF223C/8EIeGfLP/tjfq7dQwkHIgmIijtS3yQw=\t(none)\t203.0.113.5:51820\t0.0.0.0/0\t1\t500\t600\t25\n`;
    const runner: Runner = {
      async run(argv) {
        calls++;
        if (calls === 1) throw new Error('wg: a hiccup');
        const exitCode = argv[0] === 'ping' ? 2 : 0;
        return { argv, stdout: argv[0] === 'wg' ? dump : '', stderr: exitCode ? 'ping: SO_BINDTODEVICE: Operation not permitted' : '', exitCode, signal: null, timedOut: false, durationMs: 0, dryRun: false };
      },
    };
    const monitor = new LivenessMonitor({ runner, now: clock, timings: T, target: async () => IF, logger: silentLogger() });
    const states: string[] = [];
    monitor.start((r) => states.push(r.state));
    await jest.advanceTimersByTimeAsync(60_000);
    monitor.stop();
    expect(calls).toBeGreaterThan(15);
    expect(states).not.toContain('dead');
    expect(monitor.report().detail).toMatch(/probe not sent: ping .* exit 2 ping: SO_BINDTODEVICE: Operation not permitted$/);
  });

  it('says dead within 25 s of the server dying, whatever the phase of its last packet against the readings', async () => {
    const worst: number[] = [];
    for (let phase = 0; phase < T.pollMs; phase += 250) {
      jest.setSystemTime(0);
      // The server talks by itself until it dies right after its last packet.
      const lastPacket = 30_000 + phase;
      const traffic = [...Array.from({ length: 60 }, (_, i) => i * 500).filter((t) => t < lastPacket), lastPacket];
      const { sim, monitor, changes } = monitorOver((clock) => new SimulatedTunnel(clock, 40, traffic));
      sim.deadAtMs = lastPacket + 1; // 1 ms after: counted from there
      await jest.advanceTimersByTimeAsync(lastPacket + 40_000);
      monitor.stop();
      const dead = changes.find((c) => c.state === 'dead');
      expect(dead).toBeDefined();
      worst.push(dead!.atMs - sim.deadAtMs);
      jest.clearAllTimers();
    }
    const bound = T.pollMs + T.probeAfterIdleMs + T.replyWindowMs;
    expect(bound).toBe(25_000);
    expect(Math.max(...worst)).toBeLessThanOrEqual(bound);
    expect(Math.min(...worst)).toBeGreaterThanOrEqual(T.probeAfterIdleMs + T.replyWindowMs - 1);
  });
});
