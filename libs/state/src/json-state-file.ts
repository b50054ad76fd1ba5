/**
 * One JSON document an agent keeps on disk (its journal), read and written whole: written with
 * writeFileAtomic (0600, never torn), checked by a decoder on the way in and out. A missing file
 * is `null`; a corrupt or foreign one is a StateFileError, never silently ignored or replaced.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { z } from 'zod';
import { removeFileDurably, writeFileAtomic, writeFileAtomicSync } from './atomic-file';

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

const ADVICE = 'inspect it, then remove it to start over';

const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export class JsonStateFile<T> {
  constructor(
    readonly path: string,
    private readonly decode: StateDecoder<T>,
  ) {}

  /** The document, or null when there is none. */
  async read(): Promise<T | null> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    return this.decodeText(text);
  }

  readSync(): T | null {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    return this.decodeText(text);
  }

  /** Writes what the decoder makes of `value` (a document it would refuse is never written). */
  async write(value: T): Promise<void> {
    await writeFileAtomic(this.path, this.encode(value));
  }

  writeSync(value: T): void {
    writeFileAtomicSync(this.path, this.encode(value));
  }

  async remove(): Promise<void> {
    await removeFileDurably(this.path);
  }

  private encode(value: T): string {
    let valid: T;
    try {
      valid = this.decode(value);
    } catch (e) {
      throw new StateFileError(`refusing to write ${this.path}: ${messageOf(e)}`);
    }
    return `${JSON.stringify(valid, null, 2)}\n`;
  }

  private decodeText(text: string): T {
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (e) {
      throw new StateFileError(`${this.path} is not valid JSON (${messageOf(e)}); ${ADVICE}`);
    }
    try {
      return this.decode(data);
    } catch (e) {
      throw new StateFileError(`${this.path}: ${messageOf(e)}; ${ADVICE}`);
    }
  }
}
