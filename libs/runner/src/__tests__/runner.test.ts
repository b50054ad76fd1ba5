import { CommandError, DryRunRunner, ExecRunner, ScriptedRunner, StepRunner, formatArgv, type Runner, type StepRecord } from '@wgctl/runner';
import { FakeRunnerError } from '../fake';

const runner = new ExecRunner();

describe('ExecRunner', () => {
  it.each([
    ['spaces', 'a b  c'],
    ['semicolon', 'x; touch /tmp/wgctl-should-not-exist'],
    ['command substitution', '$(id -u) `id`'],
    ['newline', 'line1\nline2'],
    ['quotes and globs', `'"*?[a]\\`],
  ])('passes an argument with %s unchanged', async (_name, arg) => {
    const r = await runner.run(['node', '-e', 'process.stdout.write(JSON.stringify(process.argv.slice(1)))', arg]);
    expect(JSON.parse(r.stdout)).toEqual([arg]);
  });

  it('never goes through a shell', async () => {
    const r = await runner.run(['printf', '%s', '$HOME;echo hi']);
    expect(r.stdout).toBe('$HOME;echo hi');
  });

  it('sets LC_ALL=C', async () => {
    const r = await runner.run(['node', '-e', 'process.stdout.write(process.env.LC_ALL)'], { env: { LC_ALL: 'de_DE.UTF-8' } });
    expect(r.stdout).toBe('C');
  });

  it('captures stdout, stderr and the exit code, and throws a typed error', async () => {
    const argv = ['node', '-e', 'process.stdout.write("out"); process.stderr.write("it broke\\n"); process.exit(3)'];
    const err = await runner.run(argv).catch((e) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect(err.exitCode).toBe(3);
    expect(err.stderr).toBe('it broke\n');
    expect(err.stdout).toBe('out');
    expect(err.argv).toEqual(argv);
    expect(err.message).toContain('exit code 3');
    expect(err.message).toContain('it broke');
  });

  it('accepts listed exit codes or any with allowFailure', async () => {
    const argv = ['node', '-e', 'process.exit(1)'];
    await expect(runner.run(argv, { okExitCodes: [0, 1] })).resolves.toMatchObject({ exitCode: 1 });
    await expect(runner.run(argv, { allowFailure: true })).resolves.toMatchObject({ exitCode: 1 });
  });

  it('kills the child on timeout', async () => {
    const started = Date.now();
    const err = await runner.run(['sleep', '30'], { timeoutMs: 200 }).catch((e) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect(err.timedOut).toBe(true);
    expect(err.message).toContain('timed out');
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('kills a child that ignores SIGTERM', async () => {
    const started = Date.now();
    const err = await runner
      .run(['node', '-e', 'process.on("SIGTERM", () => {}); setInterval(() => {}, 1000)'], { timeoutMs: 300 })
      .catch((e) => e);
    expect(err.timedOut).toBe(true);
    expect(Date.now() - started).toBeLessThan(6000);
  });

  it('feeds stdin', async () => {
    const r = await runner.run(['cat'], { input: 'table inet x {}\n' });
    expect(r.stdout).toBe('table inet x {}\n');
  });

  it('reports a missing program as exit 127', async () => {
    const err = await runner.run(['/nonexistent/wgctl-prog']).catch((e) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect(err.exitCode).toBe(127);
  });
});

describe('DryRunRunner', () => {
  it('records mutating commands without running them and passes reads through', async () => {
    const dry = new DryRunRunner(runner);
    const w = await dry.run(['touch', '/tmp/wgctl-dry-run-must-not-exist']);
    expect(w.dryRun).toBe(true);
    const r = await dry.run(['echo', 'read'], { readOnly: true });
    expect(r.stdout).toBe('read\n');
    expect(dry.recorded.map((x) => x.argv)).toEqual([['touch', '/tmp/wgctl-dry-run-must-not-exist']]);
    const { existsSync } = await import('node:fs');
    expect(existsSync('/tmp/wgctl-dry-run-must-not-exist')).toBe(false);
  });
});

describe('ScriptedRunner', () => {
  it('replays outputs and asserts the argv sequence', async () => {
    const fake = new ScriptedRunner([
      { argv: ['netstat', '-rn'], stdout: 'table' },
      { argv: ['route', '-n', 'add', '1.2.3.4', '5.6.7.8'], stderr: 'boom', exitCode: 1 },
    ]);
    expect((await fake.run(['netstat', '-rn'])).stdout).toBe('table');
    await expect(fake.run(['route', '-n', 'add', '1.2.3.4', '5.6.7.8'])).rejects.toBeInstanceOf(CommandError);
    fake.assertDone();
  });

  it('fails on an unexpected or missing command', async () => {
    const fake = new ScriptedRunner([{ argv: ['a'] }, { argv: ['b'] }]);
    await expect(fake.run(['x'])).rejects.toBeInstanceOf(FakeRunnerError);
    const fake2 = new ScriptedRunner([{ argv: ['a'] }, { argv: ['b'] }]);
    await fake2.run(['a']);
    expect(() => fake2.assertDone()).toThrow(/never ran:\n {2}b/);
  });
});

describe('StepRunner', () => {
  it('records each step with the argv it ran, and names the failing step', async () => {
    const events: StepRecord[] = [];
    const fake = new ScriptedRunner([{ argv: ['ip', 'link'] }, { argv: ['wg-quick', 'up', 'wg0'], stderr: 'no such file', exitCode: 1 }]);
    const steps = new StepRunner(fake, (e) => events.push(e));
    await steps.step('read-links', async (run) => {
      await run.run(['ip', 'link']);
      return 'links read';
    });
    const err = await steps.step('wg-quick-up', (run) => run.run(['wg-quick', 'up', 'wg0']).then(() => 'up')).catch((e) => e);
    expect(err.step).toBe('wg-quick-up');
    expect(events.map((e) => `${e.step}:${e.state}`)).toEqual(['read-links:started', 'read-links:done', 'wg-quick-up:started', 'wg-quick-up:failed']);
    expect(events[3].commands[0]).toMatchObject({ argv: ['wg-quick', 'up', 'wg0'], exitCode: 1, stderr: 'no such file' });
  });

  it('lists commands run side by side in the order they started, not the order they finished', async () => {
    const events: StepRecord[] = [];
    // The first command started finishes last.
    const delays: Record<string, number> = { first: 40, second: 0, third: 15 };
    const slow: Runner = {
      run: async (argv) => {
        await new Promise((r) => setTimeout(r, delays[argv[0]]));
        return { argv: [...argv], stdout: '', stderr: '', exitCode: 0, signal: null, timedOut: false, durationMs: delays[argv[0]], dryRun: false };
      },
    };
    const finished: string[] = [];
    await new StepRunner(slow, (e) => events.push(e)).step('reads', async (run) => {
      await Promise.all(['first', 'second', 'third'].map((name) => run.run([name]).then(() => finished.push(name))));
      return 'read';
    });
    expect(finished).toEqual(['second', 'third', 'first']);
    expect(events[1].commands.map((c) => c.argv[0])).toEqual(['first', 'second', 'third']);
  });
});

test('formatArgv quotes only what needs quoting', () => {
  expect(formatArgv(['route', '-n', 'add', '0.0.0.0/1', "it's x"])).toBe(`route -n add 0.0.0.0/1 'it'\\''s x'`);
});
