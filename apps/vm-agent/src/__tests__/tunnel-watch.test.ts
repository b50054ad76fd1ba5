/**
 * Link events of the tunnel interface resample health at once between operations; during an
 * Up, Down or Heal they are that operation's own (wg-quick makes several) and wait for the
 * sample every operation is followed by. A sample is four processes: during an Up they ran
 * beside `wg-quick up`, on its critical path (docs/BENCHMARKS.md #1).
 */
import { silentLogger } from '@wgctl/logging';
import type { StreamExit, StreamingOptions, StreamingProcess } from '@wgctl/runner';
import type { VmEngine } from '../service/engine/engine';
import { startTunnelWatch } from '../service/engine/tunnel-watch';

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
  it('resamples and wakes the liveness reading for each link event between operations, for none during one', async () => {
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

    running = { op: 'Up', sinceMs: 0 };
    monitor.emit(LINE('POINTOPOINT,NOARP'));
    monitor.emit(LINE('POINTOPOINT,NOARP,UP,LOWER_UP'));
    expect([samples, wakes.length]).toEqual([1, 1]);

    running = null;
    monitor.emit(`Deleted ${LINE('POINTOPOINT,NOARP,UP,LOWER_UP')}`);
    expect([samples, wakes.length]).toEqual([2, 2]);
    // Another interface's events are not the tunnel's.
    monitor.emit(LINE('UP').replace('wtw0', 'eth0'));
    expect(samples).toBe(2);
    await watch.stop();
  });
});
