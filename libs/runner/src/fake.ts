/**
 * A scripted runner for tests: it replays recorded outputs (real macOS captures, say) and
 * asserts that the code under test issues exactly the expected argv sequence.
 */
import { CommandError, formatArgv, isAccepted, type RunOptions, type RunResult, type Runner } from './runner';

export interface ScriptedCall {
  argv: readonly string[];
  stdout?: string;
  stderr?: string;
  exitCode?: number;
  /** Expected stdin, when the command is fed one (checked only when given). */
  input?: string;
}

export class FakeRunnerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FakeRunnerError';
  }
}

/** The result a real run with this output would give, thrown as CommandError when the exit code is not accepted. */
function replay(argv: readonly string[], reply: Omit<ScriptedCall, 'argv'>, options: RunOptions): RunResult {
  const result: RunResult = {
    argv: [...argv],
    stdout: reply.stdout ?? '',
    stderr: reply.stderr ?? '',
    exitCode: reply.exitCode ?? 0,
    signal: null,
    timedOut: false,
    durationMs: 0,
    dryRun: false,
  };
  if (!isAccepted(result, options)) throw new CommandError(result);
  return result;
}

export class ScriptedRunner implements Runner {
  private index = 0;
  readonly calls: { argv: readonly string[]; input?: string }[] = [];

  constructor(private readonly script: ScriptedCall[]) {}

  async run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    this.calls.push({ argv: [...argv], input: options.input });
    const expected = this.script[this.index];
    if (!expected) {
      throw new FakeRunnerError(`unexpected command #${this.index + 1}: ${formatArgv(argv)} (script has ${this.script.length})`);
    }
    if (JSON.stringify(expected.argv) !== JSON.stringify(argv)) {
      throw new FakeRunnerError(
        `command #${this.index + 1} differs:\n  expected: ${formatArgv(expected.argv)}\n  actual:   ${formatArgv(argv)}`,
      );
    }
    if (expected.input !== undefined && expected.input !== options.input) {
      throw new FakeRunnerError(`command #${this.index + 1} (${formatArgv(argv)}) got unexpected stdin:\n${options.input ?? ''}`);
    }
    this.index++;
    return replay(argv, expected, options);
  }

  /** Throws unless every scripted call was consumed. */
  assertDone(): void {
    if (this.index !== this.script.length) {
      const rest = this.script.slice(this.index).map((c) => formatArgv(c.argv));
      throw new FakeRunnerError(`${rest.length} scripted command(s) never ran:\n  ${rest.join('\n  ')}`);
    }
  }
}

/**
 * A runner answering by rule rather than by sequence: for tests where only some commands
 * matter (e.g. status reads). Unmatched commands fail loudly.
 */
export class RuleRunner implements Runner {
  readonly calls: (readonly string[])[] = [];

  constructor(private readonly rules: { match: (argv: readonly string[]) => boolean; reply: Omit<ScriptedCall, 'argv'> }[]) {}

  async run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    this.calls.push([...argv]);
    const rule = this.rules.find((r) => r.match(argv));
    if (!rule) throw new FakeRunnerError(`no rule for: ${formatArgv(argv)}`);
    return replay(argv, rule.reply, options);
  }
}
