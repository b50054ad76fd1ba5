import { spawnStreaming, type StreamExit } from '../stream';

describe('spawnStreaming', () => {
  it('delivers complete lines as they come, with LC_ALL=C and no shell', async () => {
    const lines: string[] = [];
    const proc = spawnStreaming(
      [process.execPath, '-e', "process.stdout.write('a\\nb'); setTimeout(() => { process.stdout.write('c\\n' + process.env.LC_ALL + '\\n$(echo no)\\n'); }, 50)"],
      { onLine: (l) => lines.push(l) },
    );
    const exit = await proc.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(lines).toEqual(['a', 'bc', 'C', '$(echo no)']);
  });

  it('stops a long-running process with SIGTERM and reports it', async () => {
    const lines: string[] = [];
    let exitSeen: StreamExit | undefined;
    const proc = spawnStreaming([process.execPath, '-e', "console.log('ready'); setInterval(() => {}, 1000)"], {
      onLine: (l) => lines.push(l),
      onExit: (e) => (exitSeen = e),
    });
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (lines.includes('ready')) {
          clearInterval(poll);
          resolve();
        }
      }, 10);
    });
    const exit = await proc.stop();
    expect(exit.signal).toBe('SIGTERM');
    expect(exitSeen).toEqual(exit);
  });

  it('reports a missing program instead of throwing, and keeps stderr', async () => {
    const missing = await spawnStreaming(['/nonexistent/wgctl-nothing'], { onLine: () => undefined }).exited;
    expect(missing.code).toBe(127);
    expect(missing.error).toMatch(/ENOENT/);
    const proc = spawnStreaming([process.execPath, '-e', "console.error('bad thing'); process.exit(3)"], { onLine: () => undefined });
    expect((await proc.exited).code).toBe(3);
    expect(proc.stderrTail()).toEqual(['bad thing']);
  });

  it('survives a consumer that throws', async () => {
    const seen: string[] = [];
    const proc = spawnStreaming([process.execPath, '-e', "console.log('1'); console.log('2')"], {
      onLine: (l) => {
        seen.push(l);
        throw new Error('consumer bug');
      },
    });
    await proc.exited;
    expect(seen).toEqual(['1', '2']);
  });
});
