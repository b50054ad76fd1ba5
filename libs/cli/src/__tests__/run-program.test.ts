import { Command, InvalidArgumentError } from 'commander';
import { runProgram, type CliOutput } from '@wgctl/cli';

function capture(): CliOutput & { out: string; err: string } {
  const o = { out: '', err: '', stdout: (t: string) => void (o.out += t), stderr: (t: string) => void (o.err += t) };
  return o;
}

function program(action: () => Promise<void> | void): Command {
  const p = new Command('demo').option('--port <n>', 'a port', (v) => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError('not a number');
    return Number(v);
  });
  p.command('go').action(action);
  return p;
}

afterEach(() => {
  process.exitCode = undefined;
});

describe('runProgram', () => {
  it('0 for a successful action and for --help', async () => {
    const o = capture();
    expect(await runProgram('demo', program(() => undefined), ['node', 'demo', 'go'], o)).toBe(0);
    const h = capture();
    expect(await runProgram('demo', program(() => undefined), ['node', 'demo', '--help'], h)).toBe(0);
    expect(h.out).toMatch(/Usage: demo/);
  });

  it('2 for a bad flag, the flag named, no help dump', async () => {
    const o = capture();
    expect(await runProgram('demo', program(() => undefined), ['node', 'demo', '--port', 'x', 'go'], o)).toBe(2);
    expect(o.err).toMatch(/--port/);
    expect(o.err).not.toMatch(/Usage:/);
  });

  it('1 for a failure at run time, with the program name and message, no stack', async () => {
    const o = capture();
    const code = await runProgram('demo', program(() => Promise.reject(new Error('wg-quick failed'))), ['node', 'demo', 'go'], o);
    expect(code).toBe(1);
    expect(process.exitCode).toBe(1);
    expect(o.err).toBe('demo: wg-quick failed\n');
  });
});
