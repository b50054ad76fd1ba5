/**
 * One JSON document an agent keeps on disk (its journal), read and written whole: written with
 * writeFileAtomic (0600, never torn), checked by a decoder on the way in and out. A missing file
 * is `null`; a corrupt or foreign one is a StateFileError, never silently ignored or replaced.
 *
 * Corruption (a disk error, a hand edit, a truncated copy) is caught three ways: the text is
 * not JSON, the decoder refuses it, or its `checksum` (SHA-256 of the document without that
 * field, as written) does not match. Each write first keeps the current document, when it is
 * sound, as `<path>.prev` (a corrupt one goes aside as `<path>.corrupt`, for inspection); a
 * read that finds the current one corrupt (or gone while the copy is there: removed by hand)
 * falls back to that copy and says so.
 *
 * A write re-reads and re-checks the file it replaces only when it is not the one this
 * instance wrote last, unchanged since (same inode, size, mtime and ctime): the writes of one
 * Up follow each other within milliseconds, and the check only decides the name the replaced
 * file is kept under (`.prev` or `.corrupt`). Every read checks the checksum all the same.
 */
import { createHash } from 'node:crypto';
import { type BigIntStats, readFileSync, statSync } from 'node:fs';
import { readFile, rename } from 'node:fs/promises';
import type { z } from 'zod';
import { removeFileDurably, removeStaleTempFiles, writeFileAtomic, writeFileAtomicSync, type KeepPrevious } from './atomic-file';

export class StateFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StateFileError';
  }
}

/** Turns parsed JSON into a T, or throws an Error saying what is wrong with it. */
export type StateDecoder<T> = (data: unknown) => T;

/** A decoder from a zod schema: the first issue, as "field.path: message". */
export function schemaDecoder<T>(schema: z.ZodType<T>): StateDecoder<T> {
  return (data) => {
    const parsed = schema.safeParse(data);
    if (parsed.success) return parsed.data;
    const first = parsed.error.issues[0];
    throw new Error(`${first.path.map(String).join('.') || '(root)'}: ${first.message}`);
  };
}

/** What a read found: the document (null: none), and why the previous copy stood in for the current one. */
export interface StateRead<T> {
  value: T | null;
  /** Set when `value` comes from `<path>.prev`: what was wrong with the current file. */
  fellBackBecause?: string;
}

export interface StateFileOptions {
  /** Told when a read falls back to the previous copy (the agents log it as a warning). */
  onFallback?: (message: string) => void;
}

/** The part of a logger an agent's state file reports to. */
export interface StateLogger {
  warn(message: string, fields?: Record<string, unknown>): void;
}

/**
 * Opens an agent's state file at start: a fallback to the previous copy is logged from now on,
 * and the temporary files of a writer that died mid-write are removed now (and logged).
 */
export function openAtStart<F extends JsonStateFile<unknown>>(create: (options: StateFileOptions) => F, logger: StateLogger): F {
  const file = create({ onFallback: (detail) => logger.warn('state file corrupt: falling back to its previous copy', { detail }) });
  const removed = file.removeStaleTempFiles();
  if (removed.length > 0) logger.warn('removed temporary files of a write whose process died', { files: removed });
  return file;
}

export const CHECKSUM_FIELD = 'checksum';
const CHECKSUM_PREFIX = 'sha256:';

const ADVICE = 'inspect it; `wgctl down` removes what is ours by its marks without it';

const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

const serialize = (value: unknown): string => JSON.stringify(value, null, 2);
const sha256 = (text: string): string => CHECKSUM_PREFIX + createHash('sha256').update(text).digest('hex');

/** A text read, or why there is none: missing (null) or unreadable (the error, rethrown later). */
type Text = string | null;

export class JsonStateFile<T> {
  /** The last good document, kept by each write (see the module comment). */
  readonly previousPath: string;
  /** A corrupt document a write or remove() replaced, kept for inspection (the latest only). */
  readonly corruptPath: string;
  /** The file as this instance last wrote it: while it is still so, it is known sound. */
  private lastWritten: BigIntStats | undefined;

  constructor(
    readonly path: string,
    private readonly decode: StateDecoder<T>,
    private readonly options: StateFileOptions = {},
  ) {
    this.previousPath = `${path}.prev`;
    this.corruptPath = `${path}.corrupt`;
  }

  /** The document, or null when there is none. */
  async read(): Promise<T | null> {
    return (await this.readDetailed()).value;
  }

  readSync(): T | null {
    return this.readDetailedSync().value;
  }

  async readDetailed(): Promise<StateRead<T>> {
    return this.pick(await readText(this.path), () => readText(this.previousPath));
  }

  readDetailedSync(): StateRead<T> {
    return this.pickSync(readTextSync(this.path), () => readTextSync(this.previousPath));
  }

  /** Writes what the decoder makes of `value` (a document it would refuse is never written). */
  async write(value: T): Promise<void> {
    const text = this.encode(value);
    const keep = this.keepOnWrite();
    this.lastWritten = undefined; // until this write is done: a failed one leaves the file unknown
    this.lastWritten = await writeFileAtomic(this.path, text, keep);
  }

  writeSync(value: T): void {
    const text = this.encode(value);
    const keep = this.keepOnWrite();
    this.lastWritten = undefined;
    this.lastWritten = writeFileAtomicSync(this.path, text, keep);
  }

  /**
   * Removes the document and its previous copy (the copy first: a crash in between leaves the
   * current one). A corrupt document is set aside as `<path>.corrupt` instead, for inspection.
   */
  async remove(): Promise<void> {
    this.lastWritten = undefined;
    await removeFileDurably(this.previousPath);
    const current = await readText(this.path).catch(() => null);
    if (current !== null && !this.isSound(current)) await rename(this.path, this.corruptPath); // byte for byte
    await removeFileDurably(this.path);
  }

  /** Removes temporary files of writes whose process died (see removeStaleTempFiles). Call at start. */
  removeStaleTempFiles(): string[] {
    return removeStaleTempFiles(this.path);
  }

  private encode(value: T): string {
    let valid: T;
    try {
      valid = this.decode(value);
    } catch (e) {
      throw new StateFileError(`refusing to write ${this.path}: ${messageOf(e)}`);
    }
    if (typeof valid !== 'object' || valid === null || Array.isArray(valid)) throw new StateFileError(`refusing to write ${this.path}: not a JSON object`);
    return `${serialize({ ...valid, [CHECKSUM_FIELD]: sha256(serialize(valid)) })}\n`;
  }

  /** What a write keeps of the file it replaces: read and checked unless this instance wrote it last and it is unchanged since. */
  private keepOnWrite(): KeepPrevious | undefined {
    const now = statSync(this.path, { bigint: true, throwIfNoEntry: false });
    if (now === undefined) return undefined; // nothing to keep
    if (this.lastWritten !== undefined && sameFile(now, this.lastWritten)) return { previous: this.previousPath };
    let current: Text;
    try {
      current = readTextSync(this.path);
    } catch {
      current = null; // unreadable: not kept
    }
    return this.keepCurrent(current);
  }

  /** What the write keeps of the file it replaces: a sound one as the previous copy, a corrupt one aside (`.corrupt`) for inspection. */
  private keepCurrent(current: Text): KeepPrevious | undefined {
    if (current === null) return undefined;
    return { previous: this.isSound(current) ? this.previousPath : this.corruptPath };
  }

  private isSound(text: Text): boolean {
    if (text === null) return false;
    try {
      this.decodeText(text, this.path);
      return true;
    } catch {
      return false;
    }
  }

  private async pick(current: Text, previous: () => Promise<Text>): Promise<StateRead<T>> {
    const first = this.tryDecode(current, this.path);
    if (first.ok && current !== null) return { value: first.value };
    return this.fallBack(first, await previous());
  }

  private pickSync(current: Text, previous: () => Text): StateRead<T> {
    const first = this.tryDecode(current, this.path);
    if (first.ok && current !== null) return { value: first.value };
    return this.fallBack(first, previous());
  }

  /** The current file is corrupt or missing: the previous copy, when there is a sound one. */
  private fallBack(first: Decoded<T>, previous: Text): StateRead<T> {
    const why = first.ok ? `${this.path} is missing` : first.error.message;
    if (previous === null) {
      if (first.ok) return { value: null };
      throw first.error;
    }
    const second = this.tryDecode(previous, this.previousPath);
    if (!second.ok) {
      if (first.ok) throw second.error; // only the copy is left, and it is corrupt
      throw new StateFileError(`${first.error.message}; the previous copy is unusable too (${second.error.message})`);
    }
    this.options.onFallback?.(`${why}: using the previous copy ${this.previousPath}`);
    return { value: second.value, fellBackBecause: why };
  }

  private tryDecode(text: Text, path: string): Decoded<T> {
    if (text === null) return { ok: true, value: null };
    try {
      return { ok: true, value: this.decodeText(text, path) };
    } catch (e) {
      return { ok: false, error: e as StateFileError };
    }
  }

  private decodeText(text: string, path: string): T {
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (e) {
      // JSON.parse quotes the text: garbage bytes must not reach the logs as they are.
      throw new StateFileError(`${path} is not valid JSON (${messageOf(e).replace(/[^\x20-\x7e]/g, '?')}); ${ADVICE}`);
    }
    const body = withoutChecksum(data, path);
    try {
      return this.decode(body);
    } catch (e) {
      throw new StateFileError(`${path}: ${messageOf(e)}; ${ADVICE}`);
    }
  }
}

/** The same file, untouched: any write to it changes its size or its times, a replacement its inode. */
function sameFile(a: BigIntStats, b: BigIntStats): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

type Decoded<T> = { ok: true; value: T | null } | { ok: false; error: StateFileError };

/**
 * The document without its checksum, once the checksum matches. A document with no checksum
 * field is taken as it is: journals written before checksums existed must still load after an
 * upgrade (the decoder still checks them).
 */
function withoutChecksum(data: unknown, path: string): unknown {
  if (typeof data !== 'object' || data === null || Array.isArray(data) || !(CHECKSUM_FIELD in data)) return data;
  const { [CHECKSUM_FIELD]: recorded, ...body } = data as Record<string, unknown>;
  const actual = sha256(serialize(body));
  if (recorded !== actual) throw new StateFileError(`${path}: checksum mismatch (recorded ${String(recorded).slice(0, 80)}, content has ${actual}); ${ADVICE}`);
  return body;
}

async function readText(path: string): Promise<Text> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

function readTextSync(path: string): Text {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}
