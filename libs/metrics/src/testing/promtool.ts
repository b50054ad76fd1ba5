/**
 * The real `promtool check metrics` (Debian's prometheus package, tools/install-deps.sh) on an
 * exposition, from stdin: its lint findings (names, types, help, units) fail the tests.
 */
import { spawnSync } from 'node:child_process';

export interface PromtoolVerdict {
  status: number | null;
  /** What promtool printed (stdout and stderr): empty when the exposition is clean. */
  output: string;
}

export function promtoolCheckMetrics(exposition: string): PromtoolVerdict {
  const result = spawnSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8', timeout: 20_000 });
  if (result.error) throw new Error(`promtool: ${result.error.message} (install Debian's prometheus package: tools/install-deps.sh)`);
  return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() };
}
