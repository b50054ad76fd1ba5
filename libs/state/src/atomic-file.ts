/**
 * Durable, atomic replacement of a small file (the agents' journals): temporary file (0600) →
 * fsync → rename → fsync of the directory (0700, created when missing). A reader sees the old
 * or the new content, never a torn one, and the rename survives a power cut too.
 *
 * The sync and async variants take the same steps. Only the two fsyncs wait on the disk: the
 * async variant (the vm-agent's) awaits those two on libuv's thread pool and makes the other
 * steps (open, write, link, rename: microseconds each) directly — each awaited step costs a
 * round trip through a busy event loop (milliseconds under load), not the step itself. The
 * mac-agent's engine uses the sync variant. Optionally the file being replaced is kept as a
 * previous copy (KeepPrevious). A process killed mid-write leaves `<path>.tmp-<pid>`:
 * removeStaleTempFiles clears those of dead pids at start.
 */
import { type BigIntStats, closeSync, constants, fchmodSync, fstatSync, fsync, fsyncSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';

const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
const CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC;

/** How filesystems that cannot fsync a directory say so; the rename is atomic all the same. */
const DIR_SYNC_UNSUPPORTED = new Set(['EINVAL', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EBADF']);

const TMP_INFIX = '.tmp-';
const tmpPathOf = (path: string): string => `${path}${TMP_INFIX}${process.pid}`;

const fsyncOnPool = promisify(fsync);

/**
 * Keep the file being replaced as `previous` (a hard link to its inode: it was fsynced when
 * written, so no second data sync; the directory sync after the rename makes both names durable).
 */
export interface KeepPrevious {
  previous: string;
}

/** Filesystems without hard links: the current content is copied instead. */
const LINK_UNSUPPORTED = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EXDEV', 'ENOSYS']);

const codeOf = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? '';

function dirSyncUnsupported(e: unknown): boolean {
  return DIR_SYNC_UNSUPPORTED.has(codeOf(e));
}

/** Writes `data` to `path` durably and atomically; resolves to the file as written (see JsonStateFile's use). */
export async function writeFileAtomic(path: string, data: string, keep?: KeepPrevious): Promise<BigIntStats> {
  const tmp = tmpPathOf(path);
  let written: BigIntStats;
  try {
    const fd = openTemp(tmp, data);
    try {
      await fsyncOnPool(fd);
      written = replaceWith(fd, tmp, path, keep);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  await syncDir(dirname(path));
  return written;
}

export function writeFileAtomicSync(path: string, data: string, keep?: KeepPrevious): BigIntStats {
  const tmp = tmpPathOf(path);
  let written: BigIntStats;
  try {
    const fd = openTemp(tmp, data);
    try {
      fsyncSync(fd);
      written = replaceWith(fd, tmp, path, keep);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  syncDirSync(dirname(path));
  return written;
}

/**
 * The temporary file, 0600, holding `data` (not yet synced); its directory is made (0700) when
 * missing — known to exist otherwise, so no mkdir on every write.
 */
function openTemp(tmp: string, data: string | Buffer): number {
  let fd: number;
  try {
    fd = openSync(tmp, CREATE, FILE_MODE);
  } catch (e) {
    if (codeOf(e) !== 'ENOENT') throw e;
    mkdirSync(dirname(tmp), { recursive: true, mode: DIR_MODE });
    fd = openSync(tmp, CREATE, FILE_MODE);
  }
  try {
    // O_CREAT's mode is masked by the umask, and a stale temporary file keeps its old mode.
    fchmodSync(fd, FILE_MODE);
    writeFileSync(fd, data);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

/** The synced temporary file (open as `fd`) takes the place of `path`; the file as it now is there. */
function replaceWith(fd: number, tmp: string, path: string, keep: KeepPrevious | undefined): BigIntStats {
  if (keep) keepCurrentAs(path, keep.previous);
  renameSync(tmp, path);
  // Through the descriptor: this inode, whoever renames what after us (the rename changed its ctime).
  return fstatSync(fd, { bigint: true });
}

/** `previous` becomes the current file (atomically: link to a temporary name, then rename over). */
function keepCurrentAs(path: string, previous: string): void {
  const tmp = tmpPathOf(previous);
  try {
    linkTo(path, tmp);
  } catch (e) {
    const code = codeOf(e);
    if (code === 'ENOENT') return; // nothing to keep
    if (!LINK_UNSUPPORTED.has(code)) throw e;
    const fd = openTemp(tmp, readFileSync(path));
    try {
      fsyncSync(fd); // rare (no hard links): the copy must be on disk before it stands in
    } finally {
      closeSync(fd);
    }
  }
  renameSync(tmp, previous);
}

/** link(2), over a stale temporary name of a write whose process died (only then a second call). */
function linkTo(path: string, tmp: string): void {
  try {
    linkSync(path, tmp);
  } catch (e) {
    if (codeOf(e) !== 'EEXIST') throw e;
    rmSync(tmp, { force: true });
    linkSync(path, tmp);
  }
}

/**
 * Removes the temporary files that writes to `path` (and to names beginning with it, such as
 * its previous copy) left behind when their process died mid-write (kill -9, power cut):
 * `<name>.tmp-<pid>` whose pid is no live process. A live pid's file may be a write in
 * progress (another process, or this one). Returns the paths removed.
 */
export function removeStaleTempFiles(path: string): string[] {
  const dir = dirname(path);
  const prefix = basename(path);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const removed: string[] = [];
  for (const name of names) {
    const pid = staleTempPid(name, prefix);
    if (pid === null || processIsAlive(pid)) continue;
    rmSync(join(dir, name), { force: true });
    removed.push(join(dir, name));
  }
  if (removed.length > 0) syncDirSync(dir);
  return removed;
}

/** The pid of `<prefix>[…].tmp-<pid>`, or null for any other name. */
function staleTempPid(name: string, prefix: string): number | null {
  if (!name.startsWith(prefix)) return null;
  const at = name.lastIndexOf(TMP_INFIX);
  if (at < prefix.length) return null;
  const digits = name.slice(at + TMP_INFIX.length);
  return /^[1-9][0-9]{0,9}$/.test(digits) ? Number(digits) : null;
}

/** Whether a process with this pid exists (signal 0): a stale lock's or temp file's owner. */
export function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists, owned by someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes a file (none is fine, nor is no directory) durably: the directory is synced after the unlink. */
export async function removeFileDurably(path: string): Promise<void> {
  rmSync(path, { force: true });
  try {
    await syncDir(dirname(path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

async function syncDir(dir: string): Promise<void> {
  try {
    const fd = openSync(dir, constants.O_RDONLY);
    try {
      await fsyncOnPool(fd);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    if (!dirSyncUnsupported(e)) throw e;
  }
}

function syncDirSync(dir: string): void {
  try {
    const fd = openSync(dir, constants.O_RDONLY);
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    if (!dirSyncUnsupported(e)) throw e;
  }
}
