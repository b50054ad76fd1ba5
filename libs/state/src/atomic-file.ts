/**
 * Durable, atomic replacement of a small file (the agents' journals): temporary file (0600) →
 * fsync → rename → fsync of the directory (0700, created when missing). A reader sees the old
 * or the new content, never a torn one, and the rename survives a power cut too.
 *
 * The sync and async variants take the same steps: the mac-agent's engine keeps its journal
 * synchronously, the vm-agent asynchronously.
 */
import { closeSync, constants, fchmodSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
const CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC;

/** How filesystems that cannot fsync a directory say so; the rename is atomic all the same. */
const DIR_SYNC_UNSUPPORTED = new Set(['EINVAL', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EBADF']);

const tmpPathOf = (path: string): string => `${path}.tmp-${process.pid}`;

function dirSyncUnsupported(e: unknown): boolean {
  return DIR_SYNC_UNSUPPORTED.has((e as NodeJS.ErrnoException).code ?? '');
}

export async function writeFileAtomic(path: string, data: string): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: DIR_MODE });
  const tmp = tmpPathOf(path);
  try {
    const file = await open(tmp, CREATE, FILE_MODE);
    try {
      // O_CREAT's mode is masked by the umask, and a stale temporary file keeps its old mode.
      await file.chmod(FILE_MODE);
      await file.writeFile(data);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await syncDir(dir);
}

export function writeFileAtomicSync(path: string, data: string): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  const tmp = tmpPathOf(path);
  try {
    const fd = openSync(tmp, CREATE, FILE_MODE);
    try {
      fchmodSync(fd, FILE_MODE); // see writeFileAtomic
      writeFileSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  syncDirSync(dir);
}

/** Removes a file (none is fine) durably: the directory is synced after the unlink. */
export async function removeFileDurably(path: string): Promise<void> {
  await rm(path, { force: true });
  await syncDir(dirname(path));
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
