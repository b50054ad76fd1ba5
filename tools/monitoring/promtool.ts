/**
 * The real promtool (Debian's prometheus package, tools/install-deps.sh) on rule files, through
 * the Runner. `promtool check metrics` for expositions is @wgctl/metrics/testing's.
 */
import { ExecRunner, type Runner } from '@wgctl/runner';

export interface PromtoolResult {
  ok: boolean;
  /** stdout and stderr together: promtool reports failures on either. */
  output: string;
}

async function promtool(args: string[], runner: Runner): Promise<PromtoolResult> {
  const r = await runner.run(['promtool', ...args], { allowFailure: true, readOnly: true, timeoutMs: 30_000 });
  const hint = r.exitCode === 127 ? " (install Debian's prometheus package: tools/install-deps.sh)" : '';
  return { ok: r.exitCode === 0, output: `${r.stdout}${r.stderr}`.trim() + hint };
}

/** `promtool check rules FILE…`: syntax, PromQL and templates of every rule. */
export function checkRules(files: string[], runner: Runner = new ExecRunner()): Promise<PromtoolResult> {
  return promtool(['check', 'rules', ...files], runner);
}

/** `promtool test rules FILE…`: the rule unit tests (alerts expected and not expected). */
export function testRules(files: string[], runner: Runner = new ExecRunner()): Promise<PromtoolResult> {
  return promtool(['test', 'rules', ...files], runner);
}

/** The number promtool prints as "SUCCESS: N rules found" for one file. */
export function rulesFound(output: string): number | null {
  const match = /SUCCESS: (\d+) rules found/.exec(output);
  return match ? Number(match[1]) : null;
}
