/**
 * `vm-agent install` / `uninstall`: puts the program (this single-file bundle) and the
 * systemd unit in place and enables it; uninstall stops and disables it, takes down what
 * the agent applied (Down, from its journal) and removes both files.
 *
 * `root` (default /) lets tests install into a scratch directory; systemctl is only run
 * when installing into the real root.
 *
 * ExecStart runs as root, so node and the directory the program goes to must be root's with
 * root-owned parents (StrictModes, libs/config trusted-path.ts): whoever can write them can swap
 * what root runs. Refused before anything is written, unless allowUntrustedProgram.
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync, mkdirSync, chmodSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { rootOwnedProblem } from '@wgctl/config';
import type { Runner } from '@wgctl/runner';
import { UNIT_NAME, UNIT_PATH, renderUnit } from './unit';

const DEFAULT_PREFIX = '/usr/local';

export interface InstallPlan {
  /** Absolute path of the program on the target system. */
  programPath: string;
  unitPath: string;
  unitText: string;
}

export interface InstallOptions {
  /** The agent's own flags (--listen, --tls-dir, …) for ExecStart. */
  agentArgs: string[];
  /** The running bundle, copied into place. */
  bundlePath: string;
  nodePath: string;
  prefix?: string;
  root?: string;
  /** Enable and start it. Default true. */
  enable?: boolean;
  /** Run systemctl (daemon-reload, enable --now); default: only when root is /. */
  systemctl?: boolean;
  runner: Runner;
  log?: (line: string) => void;
  /** Install even when node or the program's directory could be changed by a non-root user (warned). */
  allowUntrustedProgram?: boolean;
}

export const ALLOW_UNTRUSTED_FLAG = '--allow-untrusted-program';

function nearestExisting(path: string): string {
  let current = path;
  while (!existsSync(current) && dirname(current) !== current) current = dirname(current);
  return current;
}

/** What keeps node or the program's (future) directory from being root's alone, each with its fix. */
export function untrustedInstall(nodePath: string, programDir: string): string[] {
  const problems: string[] = [];
  const node = rootOwnedProblem(nodePath, 'node');
  if (node) problems.push(`${node}: run install with a node only root can change (your distribution's /usr/bin/node)`);
  // Not made yet: whoever can write its nearest existing parent could make it first.
  const existing = nearestExisting(programDir);
  const dir = rootOwnedProblem(existing, 'directory', 'directory');
  if (dir) problems.push(`program directory ${programDir}: ${dir}: give --prefix a root-owned directory (default /usr/local)`);
  return problems;
}

/** Refuses what untrustedInstall found, or with `allow` logs it as a warning (the agent repeats it at every start). */
function enforceTrustedInstall(problems: string[], allow: boolean, log: (line: string) => void): void {
  if (problems.length === 0) return;
  const why = 'the service runs it as root, and whoever can change it can run their code as root';
  if (!allow) throw new Error(`refusing to install (${why}):\n  ${problems.join('\n  ')}\n  (${ALLOW_UNTRUSTED_FLAG} installs anyway, with a warning in the log at every start)`);
  for (const problem of problems) log(`WARNING: installed with ${ALLOW_UNTRUSTED_FLAG}; ${why}: ${problem}`);
}

function programPathFor(prefix = DEFAULT_PREFIX): string {
  return join(prefix, 'lib/wgctl/vm-agent.js');
}

export function planInstall(options: Pick<InstallOptions, 'agentArgs' | 'nodePath' | 'prefix'>): InstallPlan {
  const programPath = programPathFor(options.prefix);
  return { programPath, unitPath: UNIT_PATH, unitText: renderUnit([options.nodePath, programPath, ...options.agentArgs]) };
}

function writeAtomically(path: string, content: string | Buffer, mode: number): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, content, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

export async function install(options: InstallOptions): Promise<InstallPlan> {
  const log = options.log ?? (() => undefined);
  const root = options.root ?? '/';
  const plan = planInstall(options);
  if (!existsSync(options.bundlePath)) throw new Error(`cannot install: the program ${options.bundlePath} does not exist (run the built bundle)`);
  enforceTrustedInstall(untrustedInstall(options.nodePath, dirname(join(root, plan.programPath))), options.allowUntrustedProgram === true, log);
  writeAtomically(join(root, plan.programPath), readFileSync(options.bundlePath), 0o755);
  log(`installed ${plan.programPath}`);
  writeAtomically(join(root, plan.unitPath), plan.unitText, 0o644);
  log(`installed ${plan.unitPath}`);
  if (options.systemctl ?? root === '/') {
    await options.runner.run(['systemctl', 'daemon-reload']);
    if (options.enable !== false) {
      await options.runner.run(['systemctl', 'enable', '--now', UNIT_NAME]);
      log(`enabled and started ${UNIT_NAME}`);
    }
  }
  return plan;
}

export interface UninstallOptions {
  prefix?: string;
  root?: string;
  /** Run systemctl (disable --now, daemon-reload); default: only when root is /. */
  systemctl?: boolean;
  runner: Runner;
  /** Takes down what the agent applied (its journal); run after the service has stopped. */
  down?: () => Promise<void>;
  log?: (line: string) => void;
}

export async function uninstall(options: UninstallOptions): Promise<void> {
  const log = options.log ?? (() => undefined);
  const root = options.root ?? '/';
  const systemctl = options.systemctl ?? root === '/';
  if (systemctl) {
    // Exit code 1/5 when the unit is not loaded: nothing to stop.
    await options.runner.run(['systemctl', 'disable', '--now', UNIT_NAME], { okExitCodes: [0, 1, 5] });
    log(`stopped and disabled ${UNIT_NAME}`);
  }
  if (options.down) await options.down();
  for (const path of [UNIT_PATH, programPathFor(options.prefix)]) {
    const target = join(root, path);
    if (existsSync(target)) {
      rmSync(target, { force: true });
      log(`removed ${path}`);
    }
  }
  if (systemctl) await options.runner.run(['systemctl', 'daemon-reload']);
}
