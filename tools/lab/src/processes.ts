/**
 * Finding and ending the lab's own long-running processes through /proc and pid files.
 * Signals go to explicit pids only, and only after checking the process is the one we
 * started (its cmdline), since a pid file can outlive its process and the pid be reused.
 */
import { accessSync, constants, existsSync, readFileSync, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { ProcessSpec } from './plan';

export function readCmdline(pid: number): string[] | null {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw ? raw.replace(/\0$/, '').split('\0') : [];
  } catch {
    return null;
  }
}

/** Running (a zombie counts as gone: pid 1 here reaps orphans only now and then). */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

export function allPids(): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number);
}

/** Processes whose argv satisfies `match` (never this process or its parent). */
export function findProcesses(match: (argv: string[]) => boolean): number[] {
  const self = new Set([process.pid, process.ppid]);
  return allPids().filter((pid) => {
    if (self.has(pid)) return false;
    const argv = readCmdline(pid);
    return argv !== null && argv.length > 0 && match(argv);
  });
}

export function sameArgv(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function readPidFile(path: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 1 ? pid : null;
  } catch {
    return null;
  }
}

/** The pid of a recorded process if its pid file names a live process with the recorded cmdline. */
export function liveProcess(spec: ProcessSpec): number | null {
  const pid = readPidFile(spec.pidFile);
  if (pid === null || !isAlive(pid)) return null;
  const argv = readCmdline(pid);
  return argv && sameArgv(argv, spec.argv) ? pid : null;
}

export function processSpecPath(pidsDir: string, name: string): string {
  return join(pidsDir, `${name}.json`);
}

export function readProcessSpecs(pidsDir: string): ProcessSpec[] {
  if (!existsSync(pidsDir)) return [];
  return readdirSync(pidsDir)
    .filter((f) => f.endsWith('.json'))
    .flatMap((f) => {
      try {
        return [JSON.parse(readFileSync(join(pidsDir, f), 'utf8')) as ProcessSpec];
      } catch {
        return [];
      }
    });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, intervalMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** SIGTERM, wait up to `graceMs`, then SIGKILL what is left. Returns the pids that needed SIGKILL. */
export async function terminate(pids: number[], graceMs = 2000): Promise<number[]> {
  const signal = (pid: number, sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      /* already gone */
    }
  };
  pids.forEach((pid) => signal(pid, 'SIGTERM'));
  const deadline = Date.now() + graceMs;
  while (pids.some(isAlive) && Date.now() < deadline) await sleep(20);
  const stubborn = pids.filter(isAlive);
  stubborn.forEach((pid) => signal(pid, 'SIGKILL'));
  if (stubborn.length) await waitUntil(`pids ${stubborn.join(', ')} to die after SIGKILL`, () => !stubborn.some(isAlive), 2000);
  return stubborn;
}

/** Absolute path of a program (start-stop-daemon wants one), from PATH plus the sbin dirs. */
export function resolveBinary(name: string): string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      /* next */
    }
  }
  throw new Error(`${name}: not found in PATH or the sbin directories (install it: see tools/install-deps.sh)`);
}
