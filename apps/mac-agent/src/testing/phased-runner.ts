/**
 * The rig of the engine tests that drive a scripted host phase by phase: the engine keeps one
 * runner, each phase of a test hands it a fresh script, and a phase is done when every scripted
 * command ran, in order, and nothing else did.
 */
import { ScriptedRunner, formatArgv, type RunOptions, type RunResult, type Runner, type ScriptedCall } from '@wgctl/runner';

export class PhasedRunner implements Runner {
  script = new ScriptedRunner([]);
  /** Called before each command runs (e.g. to look at the journal or the host at that moment). */
  beforeRun?: (argv: readonly string[]) => void;

  run(argv: readonly string[], options?: RunOptions): Promise<RunResult> {
    this.beforeRun?.(argv);
    return this.script.run(argv, options);
  }
}

/** Lets the engine finish what it is doing when all it awaits are microtasks and immediates. */
export async function settleEngine(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Runs `fn` with `script` as the runner's: every scripted command must run, in order, and nothing else. */
export async function runPhase<T>(runner: PhasedRunner, script: ScriptedCall[], fn: () => Promise<T> | T): Promise<{ result: T; run: ScriptedRunner }> {
  const run = new ScriptedRunner(script);
  runner.script = run;
  const result = await fn();
  await settleEngine();
  expect(run.calls.map((c) => formatArgv(c.argv))).toEqual(script.map((c) => formatArgv(c.argv)));
  run.assertDone();
  return { result, run };
}
