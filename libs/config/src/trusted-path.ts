/**
 * StrictModes for the files the programs trust (CA, certificates, keys, journals, configs), as
 * OpenSSH's safe_path() (misc.c) does for authorized_keys: the file AND every directory above it,
 * up to `/`, must be owned by root or by the user running the program, and must not be writable
 * by group or others — whoever can write a parent can rename the file away and put their own.
 *
 * One deliberate difference from OpenSSH (which refuses /tmp): a root-owned directory with the
 * sticky bit (/tmp, 1777) is accepted as a parent. There others can add names but not rename or
 * delete an entry they do not own (sticky semantics, unlink(2)/rename(2) EPERM), and the entry
 * below it is itself checked for owner and mode, so nothing under it can be swapped.
 *
 * Symlinks are followed one component at a time: each link must have a trusted owner, and the
 * directories it leads through are checked like any other.
 */
import { lstatSync, mkdirSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { userInfo } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';

/** Symlink hops before giving up (Linux's MAXSYMLINKS is 40). */
const MAX_SYMLINK_HOPS = 40;

export interface TrustOptions {
  /** What the path is, for the message: 'CA certificate', 'state directory', … */
  what: string;
  /** What the path itself must be; default 'file'. */
  kind?: 'file' | 'directory' | 'any';
  /** uids that may own the path and its parents; default root and the effective user. */
  owners?: number[];
}

/** A trusted path that others could change; the message is one line: the path, what is wrong, the fix. */
export class UntrustedPathError extends Error {
  constructor(
    what: string,
    readonly path: string,
    readonly offender: string,
    readonly problems: string[],
    readonly fix: string,
  ) {
    super(`${what} ${path}${offender === path ? '' : `: ${offender}`} ${problems.join(' and ')}; run: ${fix}`);
    this.name = 'UntrustedPathError';
  }
}

export function defaultTrustedOwners(): number[] {
  const euid = process.geteuid?.() ?? 0;
  return euid === 0 ? [0] : [euid, 0];
}

/** A path as one shell word (for the fix commands we print). */
export function shellQuote(path: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(path) ? path : `'${path.replace(/'/g, `'\\''`)}'`;
}

function ownerName(uid: number): string {
  if (uid === 0) return 'root';
  try {
    return userInfo().uid === uid ? userInfo().username : String(uid);
  } catch {
    return String(uid);
  }
}

/** Root-owned and sticky (/tmp): others cannot replace what is in it (see the file comment). */
function isRootStickyDirectory(stat: Stats): boolean {
  return stat.isDirectory() && stat.uid === 0 && (stat.mode & 0o1000) !== 0;
}

function writableBy(mode: number): string | undefined {
  const group = (mode & 0o020) !== 0;
  const others = (mode & 0o002) !== 0;
  if (group && others) return 'group and others';
  return group ? 'group' : others ? 'others' : undefined;
}

/** What is wrong with one component (owner, write bits), and the command that fixes it. */
function judge(path: string, stat: Stats, owners: number[], role: 'parent' | 'target'): { problems: string[]; fixes: string[] } {
  const problems: string[] = [];
  const fixes: string[] = [];
  if (!owners.includes(stat.uid)) {
    problems.push(`is owned by uid ${stat.uid}, not ${owners.map(ownerName).join(' or ')}`);
    fixes.push(`chown ${ownerName(owners[0]!)} ${shellQuote(path)}`);
  }
  const writers = stat.isSymbolicLink() ? undefined : writableBy(stat.mode);
  if (writers && !(role === 'parent' && isRootStickyDirectory(stat))) {
    problems.push(`is writable by ${writers} (mode ${(stat.mode & 0o7777).toString(8).padStart(4, '0')})`);
    fixes.push(`chmod go-w ${shellQuote(path)}`);
  }
  return { problems, fixes };
}

function lstatOrExplain(path: string, subject: string, what: string): Stats {
  try {
    return lstatSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`${what} ${subject}: ${code === 'ENOENT' ? `${path} does not exist` : (err as Error).message}`);
  }
}

/**
 * Throws UntrustedPathError unless `path` and every directory above it (symlinks followed, each
 * checked) are owned by `owners` and not group/world-writable; a missing path is an Error.
 */
export function checkTrustedPath(path: string, options: TrustOptions): void {
  const owners = options.owners ?? defaultTrustedOwners();
  const subject = resolve(path);
  const check = (component: string, role: 'parent' | 'target') => {
    const stat = lstatOrExplain(component, subject, options.what);
    const verdict = judge(component, stat, owners, role);
    if (verdict.problems.length > 0) throw new UntrustedPathError(options.what, subject, component, verdict.problems, verdict.fixes.join(' && '));
    return stat;
  };
  let current = '/';
  check(current, 'parent');
  const pending = components(subject);
  let hops = 0;
  while (pending.length > 0) {
    const name = pending.shift()!;
    if (name === '..') {
      current = resolve(current, '..'); // checked on the way down
      continue;
    }
    const next = join(current, name);
    if (!check(next, 'parent').isSymbolicLink()) {
      current = next;
      continue;
    }
    if (++hops > MAX_SYMLINK_HOPS) throw new Error(`${options.what} ${subject}: too many symbolic links`);
    const target = readlinkSync(next);
    if (isAbsolute(target)) current = '/';
    pending.unshift(...components(target));
  }
  // The path itself: no sticky-directory allowance, and it must be what the caller reads.
  checkKind(current, check(current, 'target'), subject, options);
}

function components(path: string): string[] {
  return path.split('/').filter((part) => part !== '' && part !== '.');
}

function checkKind(path: string, stat: Stats, subject: string, options: TrustOptions): void {
  const kind = options.kind ?? 'file';
  if (kind === 'any' || (kind === 'file' ? stat.isFile() : stat.isDirectory())) return;
  throw new Error(`${options.what} ${subject}: ${path} is not a ${kind === 'file' ? 'regular file' : 'directory'}`);
}

/**
 * A directory the program writes what it later trusts (journals, saved DNS, pf rules): created
 * 0700 if missing (so by us), then it, its parents and every entry in it must pass
 * checkTrustedPath.
 */
export function ensureTrustedDirectory(path: string, what: string, owners?: number[]): void {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  checkTrustedPath(path, { what, kind: 'directory', owners });
  for (const name of readdirSync(path)) checkTrustedPath(join(path, name), { what: `file in the ${what}`, kind: 'any', owners });
}

/**
 * What is wrong with code a root service runs (interpreter, script, library), or undefined: it
 * and every directory above it must be root's alone, whoever checks — whoever can write any of
 * them can swap what root runs. No fix in the text: chown-ing a package manager's tree (Homebrew
 * owns /usr/local/lib on Intel Macs) is none, so the caller names one.
 */
export function rootOwnedProblem(path: string, what: string, kind: 'file' | 'directory' = 'file'): string | undefined {
  try {
    checkTrustedPath(path, { what, kind, owners: [0] });
    return undefined;
  } catch (err) {
    if (!(err instanceof UntrustedPathError)) throw err;
    return `${what} ${err.path}${err.offender === err.path ? '' : `: ${err.offender}`} ${err.problems.join(' and ')}`;
  }
}
