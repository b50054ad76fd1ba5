import { StepFailedError, StepRunner, type StepRecord } from '../steps';
import { ScriptedRunner } from '../fake';

describe('StepRunner.stepsTogether', () => {
  it('starts every step at once, lists their events in order, and throws the first failure only once all have ended', async () => {
    const events: StepRecord[] = [];
    const steps = new StepRunner(new ScriptedRunner([{ argv: ['slow'] }, { argv: ['quick'] }]), (e) => events.push(e));
    let releaseSlow!: () => void;
    const slowGate = new Promise<void>((resolve) => (releaseSlow = resolve));
    let lateEnded = false;
    const running = steps.stepsTogether([
      [
        'first',
        async (r) => {
          await r.run(['slow']);
          await slowGate;
          lateEnded = true;
          return 'slow done';
        },
      ],
      [
        'second',
        async (r) => {
          await r.run(['quick']);
          throw new Error('quick failed');
        },
      ],
      ['third', async () => ({ skipped: 'nothing to do' })],
    ]);
    await new Promise((resolve) => setImmediate(resolve));
    // Both bodies are running; only the 'started' events are out, in order.
    expect(events.map((e) => `${e.step}:${e.state}`)).toEqual(['first:started', 'second:started', 'third:started']);
    releaseSlow();
    const failure = await running.then(() => null, (e: unknown) => e);
    expect(lateEnded).toBe(true);
    expect(failure).toBeInstanceOf(StepFailedError);
    expect((failure as StepFailedError).step).toBe('second');
    expect(events.slice(3).map((e) => [e.step, e.state, e.message, e.commands.map((c) => c.argv.join(' '))])).toEqual([
      ['first', 'done', 'slow done', ['slow']],
      ['second', 'failed', 'quick failed', ['quick']],
      ['third', 'skipped', 'nothing to do', []],
    ]);
  });
});
