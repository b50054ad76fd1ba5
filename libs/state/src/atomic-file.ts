/**
 * Durable, atomic replacement of a small file (the agents' journals): temporary file (0600) →
 * fsync → rename → fsync of the directory (0700, created when missing). A reader sees the old
 * or the new content, never a torn one, and the rename survives a power cut too.
 *
 * The sync and async variants take the same steps: the mac-agent's engine keeps its journal
 * synchronously, the vm-agent asynchronously. Optionally the file being replaced is kept as a
 * previous copy (KeepPrevious). A process killed mid-write leaves `<path>.tmp-<pid>`:
 * removeStaleTempFiles clears those of dead pids at start.
 */
import { closeSync, constants, fchmodSync, fsyncSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { link, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
const CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC;

/** How filesystems that cannot fsync a directory say so; the rename is atomic all the same. */
const DIR_SYNC_UNSUPPORTED = new Set(['EINVAL', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EBADF']);

const TMP_INFIX = '.tmp-';
const tmpPathOf = (path: string): string => `${path}${TMP_INFIX}${process.pid}`;

/**
 * Keep the file being replaced as `previous` (a hard link to its inode: it was fsynced when
 * written, so no second data sync; the directory sync after the rename makes both names durable).
 */
export interface KeepPrevious {
  previous: string;
}

/** Filesystems without hard links: the current content is copied instead. */
const LINK_UNSUPPORTED = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EXDEV', 'ENOSYS']);

function dirSyncUnsupported(e: unknown): boolean {
  return DIR_SYNC_UNSUPPORTED.has((e as NodeJS.ErrnoException).code ?? '');
}

export async function writeFileAtomic(path: string, data: string, keep?: KeepPrevious): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: DIR_MODE });
  const tmp = tmpPathOf(path);
  try {
    await writeSynced(tmp, data);
    if (keep) await keepCurrentAs(path, keep.previous);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await syncDir(dir);
}

export function writeFileAtomicSync(path: string, data: string, keep?: KeepPrevious): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  const tmp = tmpPathOf(path);
  try {
    writeSyncedSync(tmp, data);
    if (keep) keepCurrentAsSync(path, keep.previous);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  syncDirSync(dir);
}

async function writeSynced(path: string, data: string | Buffer): Promise<void> {
  const file = await open(path, CREATE, FILE_MODE);
  try {
    // O_CREAT's mode is masked by the umask, and a stale temporary file keeps its old mode.
    await file.chmod(FILE_MODE);
    await file.writeFile(data);
    await file.sync();
  } finally {
    await file.close();
  }
}

function writeSyncedSync(path: string, data: string | Buffer): void {
  const fd = openSync(path, CREATE, FILE_MODE);
  try {
    fchmodSync(fd, FILE_MODE); // see writeSynced
    writeFileSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** `previous` becomes the current file (atomically: link to a temporary name, then rename over). */
async function keepCurrentAs(path: string, previous: string): Promise<void> {
  const tmp = tmpPathOf(previous);
  await rm(tmp, { force: true });
  try {
    await link(path, tmp);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    if (code === 'ENOENT') return; // nothing to keep
    if (!LINK_UNSUPPORTED.has(code)) throw e;
    await writeSynced(tmp, await readFile(path));
  }
  await rename(tmp, previous);
}

function keepCurrentAsSync(path: string, previous: string): void {
  const tmp = tmpPathOf(previous);
  rmSync(tmp, { force: true });
  try {
    linkSync(path, tmp);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    if (code === 'ENOENT') return;
    if (!LINK_UNSUPPORTED.has(code)) throw e;
    writeSyncedSync(tmp, readFileSync(path));
  }
  renameSync(tmp, previous);
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
  await rm(path, { force: true });
  try {
    await syncDir(dirname(path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await open(dir, constants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
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
