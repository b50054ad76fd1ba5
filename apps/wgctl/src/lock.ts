/**
 * One `wgctl up`/`down` at a time per config directory: a lock file created with O_EXCL,
 * holding the owner's pid. A second run is refused at once, naming the first; a lock left by a
 * process that is gone (killed, crashed, Ctrl-C twice) is taken over.
 *
 * This only orders runs on this machine. The agents serialize too (the vm-agent answers
 * ABORTED to a second Up/Down), which also covers a second controller elsewhere.
 */
import { closeSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { CliError, EXIT } from './errors';
import { processIsAlive } from '@wgctl/state';

export const LOCK_FILE = 'wgctl.lock';

export interface LockHolder {
  pid: number;
  command: string;
  startedAt: string;
  host: string;
}

export interface OperationLock {
  readonly path: string;
  /** Removes the lock if it is still ours. */
  release(): void;
}

export interface LockOptions {
  pid?: number;
  now?: () => Date;
  /** Whether a pid is a live process (default: kill(pid, 0)). */
  isAlive?: (pid: number) => boolean;
  /** A lock file still empty this long after it was made is a crash between create and write. */
  emptyGraceMs?: number;
}

export class LockBusyError extends CliError {
  constructor(
    readonly holder: LockHolder,
    readonly path: string,
  ) {
    super(
      `another wgctl ${holder.command} is in progress (pid ${holder.pid} on ${holder.host}, started ${holder.startedAt}); ` +
        `wait for it to finish (or stop it), then run \`wgctl status\` — lock: ${path}`,
      EXIT.failed,
    );
    this.name = 'LockBusyError';
  }
}

function readHolder(path: string): { holder?: LockHolder; ino: number; mtimeMs: number } | undefined {
  try {
    const stat = statSync(path);
    const text = readFileSync(path, 'utf8');
    try {
      const parsed = JSON.parse(text) as LockHolder;
      const valid = Number.isInteger(parsed.pid) && parsed.pid > 0 && typeof parsed.command === 'string';
      return { holder: valid ? parsed : undefined, ino: stat.ino, mtimeMs: stat.mtimeMs };
    } catch {
      return { ino: stat.ino, mtimeMs: stat.mtimeMs };
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Takes the lock in `dir` for `command` ('up', 'down'), or throws LockBusyError naming the
 * run that holds it.
 */
export function acquireOperationLock(dir: string, command: string, options: LockOptions = {}): OperationLock {
  const path = join(dir, LOCK_FILE);
  const pid = options.pid ?? process.pid;
  const now = options.now ?? (() => new Date());
  const isAlive = options.isAlive ?? processIsAlive;
  const holder: LockHolder = { pid, command, startedAt: now().toISOString(), host: hostname() };

  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const found = readHolder(path);
      if (!found) continue; // released meanwhile: try again
      if (found.holder && found.holder.host === holder.host && !isAlive(found.holder.pid)) {
        removeIfSame(path, found.ino); // its owner is gone: stale
        continue;
      }
      if (!found.holder) {
        // Unreadable or empty: a run between create and write, or one that crashed there.
        if (now().getTime() - found.mtimeMs < (options.emptyGraceMs ?? 5_000)) {
          throw new LockBusyError({ pid: 0, command: 'up/down', startedAt: new Date(found.mtimeMs).toISOString(), host: holder.host }, path);
        }
        removeIfSame(path, found.ino);
        continue;
      }
      throw new LockBusyError(found.holder, path);
    }
    try {
      writeSync(fd, `${JSON.stringify(holder)}\n`);
    } finally {
      closeSync(fd);
    }
    return {
      path,
      release() {
        const current = readHolder(path);
        if (current?.holder?.pid === pid && current.holder.startedAt === holder.startedAt) rmSync(path, { force: true });
      },
    };
  }
  throw new CliError(`cannot take the lock ${path}: it keeps changing (another wgctl starting at the same moment?); try again`, EXIT.failed);
}

/** Removes the stale lock only if it is still the file we judged (not a fresh one made since). */
function removeIfSame(path: string, ino: number): void {
  try {
    if (statSync(path).ino === ino) rmSync(path, { force: true });
  } catch {
    // gone already
  }
}

/**
 * The lock of a command run: in the config file's directory. A directory wgctl cannot write
 * (a read-only shared config) gets a warning, not a refusal: the agents still serialize.
 */
export function lockConfigDir(dir: string, command: string, warn: (line: string) => void, options: LockOptions = {}): OperationLock {
  try {
    return acquireOperationLock(dir, command, options);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EROFS' || code === 'EPERM' || code === 'ENOENT') {
      warn(`wgctl ${command}: cannot create ${join(dir, LOCK_FILE)} (${code}): not guarding against a concurrent run on this machine`);
      return { path: '', release: () => undefined };
    }
    throw error;
  }
}
