/**
 * Alternating timed runs of short commands through lib/timed-runs.py (fork → exit, with the
 * kernel's per-run run-queue delay and CPU times). Falls back to plain wall times from
 * spawnSync when python3 is missing.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { BENCH_DIR, ROOT, median, percentile } from './common.mjs';

function python() {
  for (const candidate of ['/usr/bin/python3', 'python3']) {
    const probe = spawnSync(candidate, ['-c', 'import os; os.waitid'], { stdio: 'ignore' });
    if (probe.status === 0) return candidate;
  }
  return null;
}

function fallback(commands, runs, warmup) {
  const once = (argv) => {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', cwd: ROOT });
    const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
    return { wallMs, runDelayMs: 0, onCpuMs: NaN, userMs: NaN, sysMs: NaN, status: r.status, stdout: r.stdout + r.stderr };
  };
  const firstStdout = commands.map((argv) => {
    const r = once(argv);
    if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stdout.slice(-2000)}`);
    return r.stdout;
  });
  for (let i = 1; i < warmup; i++) commands.forEach(once);
  const results = commands.map(() => []);
  for (let i = 0; i < runs; i++) {
    const order = commands.map((_, k) => k);
    if (i % 2) order.reverse();
    for (const k of order) results[k].push(once(commands[k]));
  }
  return { runs: results, firstStdout, kernelStats: false };
}

/**
 * Runs each command `runs` times, alternating (order reversed every other round), after
 * `warmup` untimed rounds (the first checks exit status 0 and captures the output).
 * Returns per command: { runs, firstStdout, summary: { wallMs, ownMs, cpuMs } } with
 * ownMs = wall − run-queue delay (median, p10, p90, min).
 */
export function timedRuns(commands, { runs, warmup = 2 }) {
  const py = python();
  let raw;
  if (py) {
    const result = spawnSync(py, [join(BENCH_DIR, 'lib/timed-runs.py')], {
      input: JSON.stringify({ commands, runs, warmup, cwd: ROOT }),
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    if (result.status !== 0) throw new Error(`timed-runs.py failed: ${result.stderr}`);
    raw = JSON.parse(result.stdout);
    if (raw.error) throw new Error(`${raw.error}:\n${raw.output}`);
    raw.kernelStats = true;
  } else {
    raw = fallback(commands, runs, warmup);
  }
  const describe = (values) => ({
    median: median(values),
    p10: percentile(values, 10),
    p90: percentile(values, 90),
    min: Math.min(...values),
  });
  return commands.map((argv, k) => {
    const list = raw.runs[k];
    return {
      argv,
      runs: list,
      firstStdout: raw.firstStdout[k],
      kernelStats: raw.kernelStats,
      wallMs: describe(list.map((r) => r.wallMs)),
      ownMs: describe(list.map((r) => r.wallMs - r.runDelayMs)),
      cpuMs: describe(list.map((r) => r.userMs + r.sysMs)),
    };
  });
}
