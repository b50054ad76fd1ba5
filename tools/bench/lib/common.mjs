/**
 * Shared helpers of the benchmark suite: statistics, machine facts, on-the-fly bundling of
 * TypeScript entry points, and child processes whose output we read as JSON.
 *
 * The suite is a measuring tool, not product code: it starts node processes itself (it must,
 * to time their start-up and to keep a load generator apart from the server it loads).
 */
import { build } from 'esbuild';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const BENCH_DIR = join(ROOT, 'tools/bench');
export const BUNDLE_DIR = join(ROOT, 'dist/bench');

// ---------------------------------------------------------------------------------------------
// Statistics

export function sorted(values) {
  return Float64Array.from(values).sort();
}

/** Nearest-rank percentile (p in 0..100) of already sorted values. */
export function percentileOfSorted(sortedValues, p) {
  if (sortedValues.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sortedValues.length);
  return sortedValues[Math.min(sortedValues.length - 1, Math.max(0, rank - 1))];
}

export function percentile(values, p) {
  return percentileOfSorted(sorted(values), p);
}

export function median(values) {
  const s = sorted(values);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export function mean(values) {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/** Rounds to a sensible number of significant digits for a table. */
export function round(value, digits = 3) {
  if (!Number.isFinite(value)) return value;
  if (value === 0) return 0;
  const magnitude = Math.floor(Math.log10(Math.abs(value)));
  const decimals = Math.max(0, digits - 1 - magnitude);
  return Number(value.toFixed(Math.min(decimals, 6)));
}

// ---------------------------------------------------------------------------------------------
// Machine

function firstLine(text) {
  return text.split('\n')[0].trim();
}

function tryRead(argv) {
  try {
    return execFileSync(argv[0], argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '(unavailable)';
  }
}

/** Facts about the machine the numbers come from. */
export function machineInfo() {
  let os = '(unknown)';
  try {
    const release = readFileSync('/etc/os-release', 'utf8');
    os = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(release)?.[1] ?? os;
  } catch {
    /* not Linux */
  }
  const cpu = cpus();
  return {
    date: new Date().toISOString(),
    nproc: tryRead(['nproc']),
    cpuModel: cpu[0]?.model ?? '(unknown)',
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    free: tryRead(['free', '-m']),
    node: process.version,
    kernel: tryRead(['uname', '-r']),
    os,
    loadavg: firstLine(readFileSync('/proc/loadavg', 'utf8')),
    gitCommit: tryRead(['git', '-C', ROOT, 'rev-parse', '--short', 'HEAD']),
    gitDirty: tryRead(['git', '-C', ROOT, 'status', '--porcelain', '--untracked-files=no']) !== '',
  };
}

// ---------------------------------------------------------------------------------------------
// Bundling TypeScript entry points (path aliases from tsconfig). npm packages stay external and
// load from node_modules: grpc-health-check and @grpc/reflection read .proto files beside
// themselves, and one copy of @grpc/grpc-js serves every module.

export async function bundleTs(entry, name) {
  const outfile = join(BUNDLE_DIR, `${name}.cjs`);
  mkdirSync(BUNDLE_DIR, { recursive: true });
  await build({
    entryPoints: [resolve(BENCH_DIR, entry)],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    packages: 'external',
    tsconfig: join(ROOT, 'tsconfig.json'),
    logLevel: 'warning',
  });
  return outfile;
}

// ---------------------------------------------------------------------------------------------
// Processes

/**
 * Runs `argv` to completion and returns { code, stdout, stderr, ms } (wall time from spawn to
 * exit). Rejects on a spawn error only.
 */
export function runProcess(argv, options = {}) {
  return new Promise((resolvePromise, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(argv[0], argv.slice(1), {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: options.env ?? process.env,
      cwd: options.cwd ?? ROOT,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = options.timeoutMs
      ? setTimeout(() => {
          child.kill('SIGKILL');
        }, options.timeoutMs)
      : undefined;
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      resolvePromise({ code: code ?? (signal ? 128 : -1), signal, stdout, stderr, ms });
    });
  });
}

/** Like runProcess but throws (with stderr) on a non-zero exit, and parses the last stdout line as JSON. */
export async function runJson(argv, options = {}) {
  const result = await runProcess(argv, options);
  if (result.code !== 0) {
    throw new Error(`${argv.join(' ')} exited ${result.code}${result.signal ? ` (${result.signal})` : ''}:\n${result.stderr.trim().slice(-2000)}`);
  }
  const lines = result.stdout.trim().split('\n');
  try {
    return JSON.parse(lines[lines.length - 1]);
  } catch {
    throw new Error(`${argv.join(' ')} printed no JSON result:\n${result.stdout.slice(-2000)}`);
  }
}

/**
 * With BENCH_PIN=1: a `taskset -c CPU` prefix (when there are two CPUs and taskset exists).
 * By default placement is left to the scheduler: on a machine where other work runs, a pinned
 * process waits for its one CPU while the other may be idle (measured: half the throughput).
 */
export function pinTo(cpu) {
  if (cpus().length < 2 || process.env.BENCH_PIN !== '1') return [];
  try {
    execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
    return ['taskset', '-c', String(cpu)];
  } catch {
    return [];
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A result row of the summary table. */
export function row({ id, figure, value, unit, baseline, baselineLabel, ratio, target, pass, note }) {
  return { id, figure, value, unit, baseline, baselineLabel, ratio, target, pass, note };
}
