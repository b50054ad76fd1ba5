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

  it('writes `input` to stdin and keeps it open: an interactive tool reads its commands and keeps running', async () => {
    const lines: string[] = [];
    // Echoes each stdin line as it comes, and says so when stdin ends (the way scutil exits).
    const script = "require('readline').createInterface({ input: process.stdin }).on('line', (l) => console.log('got ' + l)).on('close', () => { console.log('eof'); process.exit(0); })";
    const proc = spawnStreaming([process.execPath, '-e', script], { input: 'n.add State:/Network/Global/DNS\nn.watch\n', onLine: (l) => lines.push(l) });
    const deadline = Date.now() + 5_000;
    while (lines.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 100)); // an end of stdin would show by now
    expect(lines.join('|')).toBe('got n.add State:/Network/Global/DNS|got n.watch');
    const exit = await proc.stop();
    expect(exit.signal).toBe('SIGTERM'); // still running until stopped: stdin never ended
    expect(lines).not.toContain('eof');
  });
});
