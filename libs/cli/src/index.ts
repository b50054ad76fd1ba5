/**
 * How the agents run their commander programs: output through an injectable writer (tests),
 * exit codes 0 (ok), 1 (failed at run time), 2 (bad command line, the flag named), and never
 * process.exit — the caller's event loop drains (servers close, journals flush).
 */
import { isAbsolute } from 'node:path';
import { CommanderError, InvalidArgumentError, type Command } from 'commander';

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

export interface CliOutput {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

export const processOutput: CliOutput = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
};

/** Parses argv with `program` and runs its action; returns (and sets as process.exitCode) the exit code. */
export async function runProgram(name: string, program: Command, argv: string[], output: CliOutput = processOutput): Promise<number> {
  let reported = false;
  for (const command of [program, ...program.commands]) {
    command.exitOverride().configureOutput({
      writeOut: output.stdout,
      writeErr: output.stderr,
      outputError: (text, write) => {
        reported = true;
        write(text);
      },
    });
  }
  let code = EXIT_OK;
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      const done = e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help';
      // Errors commander found were printed already; ours (InvalidArgumentError in an action) were not.
      if (!done && !reported) output.stderr(`${name}: ${e.message}\n(run with --help for usage)\n`);
      code = done ? EXIT_OK : EXIT_USAGE;
    } else {
      output.stderr(`${name}: ${e instanceof Error ? e.message : String(e)}\n`);
      code = EXIT_FAILED;
    }
  }
  process.exitCode = code;
  return code;
}

/**
 * An option parser for paths the agents read or write as root: absolute, so a service
 * definition means the same from any working directory; no NUL byte.
 */
export function absolutePath(value: string): string {
  if (!isAbsolute(value) || value.includes('\0')) throw new InvalidArgumentError('expected an absolute path');
  return value;
}

/**
 * --tls-dir: absolute. Its files (ca.crt, the agent's certificate and 0600 key) are checked when
 * the agent starts, each problem naming the file.
 */
export function tlsDirectory(value: string): string {
  return absolutePath(value);
}
