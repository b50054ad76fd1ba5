import type { StreamExit, StreamingOptions, StreamingProcess } from '../stream';
import { SupervisedMonitor } from '../supervised';

/** A spawn whose processes the test ends by hand. */
function fakeSpawn() {
  const procs: { argv: readonly string[]; options: StreamingOptions; exit: (e: StreamExit) => void; stopped: boolean }[] = [];
  const spawn = (argv: readonly string[], options: StreamingOptions): StreamingProcess => {
    let resolve!: (e: StreamExit) => void;
    const exited = new Promise<StreamExit>((r) => (resolve = r));
    const entry = {
      argv,
      options,
      stopped: false,
      exit: (e: StreamExit) => {
        resolve(e);
        options.onExit?.(e);
      },
    };
    procs.push(entry);
    return {
      argv,
      pid: procs.length,
      exited,
      stderrTail: () => ['boom'],
      stop: async () => {
        entry.stopped = true;
        entry.exit({ code: null, signal: 'SIGTERM' });
        return exited;
      },
    };
  };
  return { spawn, procs };
}

describe('SupervisedMonitor', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('hands on lines, restarts after an exit (onStart each time), and stays stopped after stop()', async () => {
    const { spawn, procs } = fakeSpawn();
    const lines: string[] = [];
    const starts: number[] = [];
    const exits: string[][] = [];
    const m = new SupervisedMonitor({ spawn, argv: ['ip', 'monitor'], onLine: (l) => lines.push(l), onStart: (p) => starts.push(p.pid!), onExit: (_e, stderr) => void exits.push(stderr) });
    m.start();
    m.start(); // running: not twice
    expect(procs).toHaveLength(1);
    procs[0].options.onLine?.('Deleted 0.0.0.0/1');
    expect(lines).toEqual(['Deleted 0.0.0.0/1']);

    procs[0].exit({ code: 1, signal: null });
    expect(m.running).toBeUndefined();
    expect(exits).toEqual([['boom']]);
    jest.advanceTimersByTime(999);
    expect(procs).toHaveLength(1);
    jest.advanceTimersByTime(1);
    expect(procs).toHaveLength(2);
    expect(starts).toEqual([1, 2]);

    await m.stop();
    expect(procs[1].stopped).toBe(true);
    jest.advanceTimersByTime(5_000);
    expect(procs).toHaveLength(2);
    expect(exits).toHaveLength(1); // the stop's own exit is not reported
  });

  it('a stop while a restart is pending cancels it; onExit returning false stops restarting', async () => {
    const { spawn, procs } = fakeSpawn();
    const m = new SupervisedMonitor({ spawn, argv: ['nft', 'monitor'], onLine: () => undefined, onExit: (e) => e.code !== 127 });
    m.start();
    procs[0].exit({ code: 1, signal: null });
    await m.stop();
    jest.advanceTimersByTime(2_000);
    expect(procs).toHaveLength(1);

    m.start();
    procs[1].exit({ code: 127, signal: null });
    jest.advanceTimersByTime(2_000);
    expect(procs).toHaveLength(2);
  });
});
