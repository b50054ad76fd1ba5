import { ScriptedRunner } from '../fake';
import { SharedReadRunner } from '../shared-reads';

describe('SharedReadRunner', () => {
  it('runs a read once and hands every identical read the same result', async () => {
    const script = new ScriptedRunner([{ argv: ['netstat', '-rn'], stdout: 'table' }]);
    const run = new SharedReadRunner(script);
    const [a, b] = await Promise.all([run.run(['netstat', '-rn'], { readOnly: true }), run.run(['netstat', '-rn'], { readOnly: true })]);
    expect(await run.run(['netstat', '-rn'], { readOnly: true })).toBe(a);
    expect(b).toBe(a);
    expect(a.stdout).toBe('table');
    script.assertDone();
  });

  it('tells reads apart by argv and by the options that decide whether they throw', async () => {
    const script = new ScriptedRunner([
      { argv: ['pfctl', '-s', 'info'], exitCode: 1 },
      { argv: ['pfctl', '-s', 'info'], exitCode: 1 },
      { argv: ['pfctl', '-s', 'rules'] },
    ]);
    const run = new SharedReadRunner(script);
    await expect(run.run(['pfctl', '-s', 'info'], { readOnly: true, allowFailure: true })).resolves.toMatchObject({ exitCode: 1 });
    await expect(run.run(['pfctl', '-s', 'info'], { readOnly: true })).rejects.toThrow();
    await run.run(['pfctl', '-s', 'rules'], { readOnly: true });
    script.assertDone();
  });

  it('runs every command that changes something', async () => {
    const script = new ScriptedRunner([{ argv: ['route', '-q', '-n', 'add', '-inet', '0.0.0.0/1', '198.51.100.5'] }, { argv: ['route', '-q', '-n', 'add', '-inet', '0.0.0.0/1', '198.51.100.5'] }]);
    const run = new SharedReadRunner(script);
    await run.run(['route', '-q', '-n', 'add', '-inet', '0.0.0.0/1', '198.51.100.5']);
    await run.run(['route', '-q', '-n', 'add', '-inet', '0.0.0.0/1', '198.51.100.5']);
    script.assertDone();
  });

  it('runs a read that is fed stdin every time', async () => {
    const script = new ScriptedRunner([{ argv: ['pfctl', '-n', '-f', '-'] }, { argv: ['pfctl', '-n', '-f', '-'] }]);
    const run = new SharedReadRunner(script);
    await run.run(['pfctl', '-n', '-f', '-'], { readOnly: true, input: 'pass all\n' });
    await run.run(['pfctl', '-n', '-f', '-'], { readOnly: true, input: 'pass all\n' });
    script.assertDone();
  });
});
