/**
 * Link events of the tunnel interface resample health at once between operations; during an
 * Up, Down or Heal they are that operation's own (wg-quick makes several) and wait until they
 * have settled: sampled then if the operation still runs (an Up waiting for its handshake),
 * else by the sample every operation is followed by. A sample is four processes: during an Up they ran
 * beside `wg-quick up`, on its critical path (docs/BENCHMARKS.md #1). The liveness monitor's
 * moves resample only into or out of dead; Status and metrics take the others from the monitor
 * as it is (withLivenessNow): on an idle tunnel a probe and its reply every ~13 s had made two
 * samples each time, most of the agent's idle CPU (docs/BENCHMARKS.md #7).
 */
import { silentLogger } from '@wgctl/logging';
import type { StreamExit, StreamingOptions, StreamingProcess } from '@wgctl/runner';
import { withLivenessNow, type VmEngine, type VmSample } from '../service/engine/engine';
import type { LivenessReport, LivenessState } from '../service/engine/liveness';
import { vmAgentHandlers } from '../service/server';
import type { HealthSampler } from '@wgctl/agent-kit';
import type { VmStatus } from '@wgctl/proto';
import { LINK_SETTLE_MS, startTunnelWatch } from '../service/engine/tunnel-watch';

const LINE = (flags: string): string => `7: wtw0: <${flags}> mtu 1420 qdisc noqueue state UNKNOWN group default qlen 1000\\    link/none `;

/** `ip -o monitor link` whose lines the test writes. */
function fakeMonitor(): { spawn: (argv: readonly string[], options: StreamingOptions) => StreamingProcess; emit: (line: string) => void } {
  let onLine: (line: string) => void = () => undefined;
  let exit!: (e: StreamExit) => void;
  const exited = new Promise<StreamExit>((resolve) => (exit = resolve));
  return {
    spawn: (argv, options) => {
      onLine = options.onLine;
      return { argv, pid: 1, exited, stderrTail: () => [], stop: async () => (exit({ code: null, signal: 'SIGTERM' }), exited) };
    },
    emit: (line) => onLine(line),
  };
}

describe('tunnel watch: link events and operations', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('samples at once for a link event between operations; during one, once its events have settled and only if it still runs', async () => {
    let running: { op: string; sinceMs: number } | null = null;
    const wakes: number[] = [];
    const engine = {
      get running() {
        return running;
      },
      liveness: { start: () => undefined, stop: () => undefined, wake: () => wakes.push(1) },
    } as unknown as VmEngine;
    const monitor = fakeMonitor();
    let samples = 0;
    const watch = startTunnelWatch(engine, 'wtw0', () => samples++, silentLogger(), monitor.spawn);

    monitor.emit(LINE('POINTOPOINT,NOARP'));
    expect([samples, wakes.length]).toEqual([1, 1]);

    // An Up whose wg-quick makes its link events, then ends: its own sample follows it, none here.
    running = { op: 'Up', sinceMs: 0 };
    monitor.emit(LINE('POINTOPOINT,NOARP'));
    await jest.advanceTimersByTimeAsync(LINK_SETTLE_MS / 2);
    monitor.emit(LINE('POINTOPOINT,NOARP,UP,LOWER_UP'));
    await jest.advanceTimersByTimeAsync(LINK_SETTLE_MS - 1);
    expect(samples).toBe(1);
    running = null;
    await jest.advanceTimersByTimeAsync(LINK_SETTLE_MS);
    expect([samples, wakes.length]).toEqual([1, 1]);

    // An Up still waiting for its handshake once its events have settled: sampled then, once.
    running = { op: 'Up', sinceMs: 0 };
    monitor.emit(LINE('POINTOPOINT,NOARP'));
    monitor.emit(LINE('POINTOPOINT,NOARP,UP,LOWER_UP'));
    await jest.advanceTimersByTimeAsync(LINK_SETTLE_MS);
    expect([samples, wakes.length]).toEqual([2, 2]);
    await jest.advanceTimersByTimeAsync(5 * LINK_SETTLE_MS);
    expect(samples).toBe(2);

    running = null;
    monitor.emit(`Deleted ${LINE('POINTOPOINT,NOARP,UP,LOWER_UP')}`);
    expect([samples, wakes.length]).toEqual([3, 3]);
    // Another interface's events are not the tunnel's.
    monitor.emit(LINE('UP').replace('wtw0', 'eth0'));
    expect(samples).toBe(3);
    await watch.stop();
  });
});

const report = (state: LivenessState, detail = `${state} detail`, ifname = 'wtw0'): LivenessReport =>
  ({ state, interface: ifname, detail, lastRxAtMs: 1, lastProbeAtMs: null, deadSinceMs: state === 'dead' ? 1 : null, probeTarget: '192.0.2.1' }) as LivenessReport;

describe('tunnel watch: the liveness monitor', () => {
  it('resamples when the tunnel is found dead or alive again, not for a probe and its reply', async () => {
    let onChange: (r: LivenessReport) => void = () => undefined;
    const engine = { running: null, liveness: { start: (cb: (r: LivenessReport) => void) => (onChange = cb), stop: () => undefined, wake: () => undefined } } as unknown as VmEngine;
    let samples = 0;
    const watch = startTunnelWatch(engine, 'wtw0', () => samples++, silentLogger(), fakeMonitor().spawn);
    for (const state of ['alive', 'probing', 'alive', 'probing', 'alive'] as const) onChange(report(state));
    expect(samples).toBe(0);
    onChange(report('probing'));
    onChange(report('dead'));
    expect(samples).toBe(1);
    onChange(report('dead'));
    onChange(report('alive'));
    expect(samples).toBe(2);
    await watch.stop();
  });
});

describe('withLivenessNow: Status and metrics between samples', () => {
  const sampled = (liveness: LivenessReport | undefined, checks = [{ name: 'handshake', ok: true, detail: 'h', evidence: [] }, ...(liveness ? [{ name: 'liveness', ok: liveness.state !== 'dead', detail: liveness.detail, evidence: [] }] : []), { name: 'ip-forward', ok: true, detail: 'f', evidence: [] }]): VmSample =>
    ({ status: { interface: 'wtw0', checks, liveness }, serving: true, reasons: [], sampledAtMs: 5 }) as unknown as VmSample;

  it('shows the monitor as it is while its verdict is the sample\'s', () => {
    const now = withLivenessNow(sampled(report('alive')), report('probing', 'a probe sent 1 s ago'));
    expect(now.status.liveness?.state).toBe('probing');
    expect(now.status.checks.map((c) => [c.name, c.ok, c.detail])).toEqual([['handshake', true, 'h'], ['liveness', true, 'a probe sent 1 s ago'], ['ip-forward', true, 'f']]);
    expect([now.serving, now.sampledAtMs]).toEqual([true, 5]);
    // Sampled before the monitor knew the interface: its check is added where sample() puts it.
    expect(withLivenessNow(sampled(undefined), report('alive')).status.checks.map((c) => c.name)).toEqual(['handshake', 'liveness', 'ip-forward']);
  });

  it('keeps the sample when the verdict moved (its resample is on the way), for another interface, or with no monitor', () => {
    const s = sampled(report('alive'));
    expect(withLivenessNow(s, report('dead'))).toBe(s);
    const dead = sampled(report('dead'));
    expect(withLivenessNow(dead, report('alive'))).toBe(dead);
    expect(withLivenessNow(s, report('probing', 'x', 'wtw1'))).toBe(s);
    expect(withLivenessNow(s, undefined)).toBe(s);
  });
});

describe('Status between samples', () => {
  it('answers with the liveness monitor as it is now, on the cached sample', async () => {
    const cached = {
      status: { interface: 'wtw0', checks: [{ name: 'liveness', ok: true, detail: 'alive: a reply 2 s ago', evidence: [] }], liveness: report('alive'), peers: [] },
      serving: true,
      reasons: [],
      sampledAtMs: 5,
    } as unknown as VmSample;
    const engine = { driverName: 'iptables-nft', heals: undefined, livenessNow: () => report('probing', 'a probe sent 0.5 s ago') } as unknown as VmEngine;
    const sampler = { current: async () => cached } as unknown as HealthSampler<VmSample>;
    const handlers = vmAgentHandlers(engine, sampler) as unknown as { status: (call: unknown, cb: (e: unknown, v: VmStatus) => void) => Promise<void> };
    const answer = await new Promise<VmStatus>((resolve) => void handlers.status({}, (_e, v) => resolve(v)));
    expect(answer.liveness).toMatchObject({ state: 'probing', detail: 'a probe sent 0.5 s ago' });
    expect(answer.checks.find((c) => c.name === 'liveness')?.detail).toBe('a probe sent 0.5 s ago');
    expect(answer.health?.sampledAtMs).toBe('5');
  });
});
