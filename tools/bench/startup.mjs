/** #5 `wgctl --help` cold start vs `node -e 0`. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, round, row } from './lib/common.mjs';
import { timedRuns } from './lib/timed.mjs';

export const id = 'startup';
export const title = '`wgctl --help` cold start (#5)';

const RUNS = Number(process.env.BENCH_STARTUP_RUNS ?? 30);
const WARMUP = 3;
const TARGET_RATIO = 1.3;
export const WGCTL_BUNDLE = join(ROOT, 'dist/apps/wgctl/wgctl.js');

export async function run(log = console.error) {
  if (!existsSync(WGCTL_BUNDLE)) throw new Error(`${WGCTL_BUNDLE} is missing: run \`npm run build\` (or node tools/build/build.mjs wgctl)`);
  const [help, bare] = timedRuns(
    [
      [process.execPath, WGCTL_BUNDLE, '--help'],
      [process.execPath, '-e', '0'],
    ],
    { runs: RUNS, warmup: WARMUP },
  );
  if (!/usage/i.test(help.firstStdout)) throw new Error(`wgctl --help printed no usage:\n${help.firstStdout.slice(0, 500)}`);
  const h = help.ownMs.median;
  const b = bare.ownMs.median;
  log(`  wgctl --help ${round(h)} ms (wall ${round(help.wallMs.median)}), node -e 0 ${round(b)} ms (wall ${round(bare.wallMs.median)})`);
  const rows = [
    row({
      id: 'startup.help',
      figure: '`wgctl --help` cold start',
      value: round(h),
      unit: 'ms',
      baseline: round(b),
      baselineLabel: '`node -e 0`',
      ratio: round(h / b),
      target: `≤ ${TARGET_RATIO}× node -e 0`,
      pass: h / b <= TARGET_RATIO,
    }),
  ];
  const method = [
    '`node dist/apps/wgctl/wgctl.js --help` (the single-file bundle users run) against `node -e 0`, same node binary, run',
    `by \`tools/bench/lib/timed-runs.py\`: ${WARMUP} untimed rounds (the first checks exit status 0 and that the help has a`,
    `usage text), then ${RUNS} rounds of both, alternating, order flipped every round. Each run is timed from fork to exit;`,
    'while the child is a zombie its main thread\'s run-queue delay (`/proc/<pid>/schedstat`, time spent runnable but',
    'waiting for a CPU) is read and subtracted, so other work on the machine does not inflate the figure: it is what the',
    'start takes when the command never waits for a CPU. Raw wall times and CPU times (user+sys, all threads) are in the',
    'details. Figures are medians. The page cache is warm: "cold" means a new process, as when a user types the command.',
  ].join('\n');
  const line = (name, r) =>
    `| ${name} | ${round(r.ownMs.median)} | ${round(r.ownMs.p10)} / ${round(r.ownMs.p90)} | ${round(r.wallMs.median)} | ${round(r.cpuMs.median)} |`;
  const details = [
    '| command | median ms (wall − run-queue delay) | p10 / p90 ms | median wall ms | median CPU ms |',
    '|---|---|---|---|---|',
    line('wgctl --help', help),
    line('node -e 0', bare),
    '',
    `Difference of medians: ${round(h - b)} ms; of raw wall medians: ${round(help.wallMs.median - bare.wallMs.median)} ms.`,
    help.kernelStats ? '' : '(python3 was missing: plain wall times, no run-queue correction.)',
  ].join('\n');
  return { id, title, method, rows, details, raw: { help: help.runs, bare: bare.runs } };
}
