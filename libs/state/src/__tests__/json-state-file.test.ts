import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { JsonStateFile, StateFileError, schemaDecoder, writeFileAtomic, writeFileAtomicSync } from '..';

const docSchema = z.object({ version: z.literal(1), phase: z.enum(['up', 'down']), routes: z.array(z.string()) });
type Doc = z.infer<typeof docSchema>;
const doc: Doc = { version: 1, phase: 'up', routes: ['203.0.113.10/32'] };

/** The async and sync variants must behave alike. */
const variants = [
  {
    name: 'async',
    write: (path: string, data: string) => writeFileAtomic(path, data),
    read: <T>(file: JsonStateFile<T>) => file.read(),
    save: <T>(file: JsonStateFile<T>, value: T) => file.write(value),
  },
  {
    name: 'sync',
    write: async (path: string, data: string) => writeFileAtomicSync(path, data),
    read: async <T>(file: JsonStateFile<T>) => file.readSync(),
    save: async <T>(file: JsonStateFile<T>, value: T) => file.writeSync(value),
  },
];

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'wgs-state-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe.each(variants)('writeFileAtomic ($name)', (v) => {
  it('creates the directory 0700 and the file 0600 (even under a permissive umask), leaving no temporary file', async () => {
    const path = join(dir, 'state', 'doc.json');
    const old = process.umask(0o000);
    try {
      await v.write(path, 'one\n');
    } finally {
      process.umask(old);
    }
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'state')).mode & 0o777).toBe(0o700);
    expect(readdirSync(join(dir, 'state'))).toEqual(['doc.json']);
    await v.write(path, 'two\n');
    expect(readFileSync(path, 'utf8')).toBe('two\n');
  });

  it('gives a stale temporary file of a crashed write mode 0600 before writing into it', async () => {
    const path = join(dir, 'doc.json');
    writeFileSync(`${path}.tmp-${process.pid}`, 'stale', { mode: 0o644 });
    await v.write(path, 'fresh\n');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path, 'utf8')).toBe('fresh\n');
  });

  it('leaves the old file and no temporary file when the rename fails', async () => {
    const path = join(dir, 'doc.json');
    mkdirSync(join(path, 'occupied'), { recursive: true }); // a non-empty directory cannot be renamed over
    await expect(v.write(path, 'new\n')).rejects.toThrow();
    expect(readdirSync(dir)).toEqual(['doc.json']);
    expect(readdirSync(path)).toEqual(['occupied']);
  });
});

describe.each(variants)('JsonStateFile ($name)', (v) => {
  it('is null until written; reads back what it wrote', async () => {
    const file = new JsonStateFile(join(dir, 'state', 'doc.json'), schemaDecoder(docSchema));
    expect(await v.read(file)).toBeNull();
    await v.save(file, doc);
    expect(await v.read(file)).toEqual(doc);
    expect(readFileSync(file.path, 'utf8')).toBe(`${JSON.stringify(doc, null, 2)}\n`);
  });

  it('refuses a corrupt or foreign file with the path and what to do', async () => {
    const file = new JsonStateFile(join(dir, 'doc.json'), schemaDecoder(docSchema));
    writeFileSync(file.path, '{"version":1,"phase":"up"');
    await expect(v.read(file)).rejects.toThrow(StateFileError);
    await expect(v.read(file)).rejects.toThrow(`${file.path} is not valid JSON`);
    writeFileSync(file.path, JSON.stringify({ ...doc, routes: [7] }));
    await expect(v.read(file)).rejects.toThrow(new RegExp(`^${file.path}: routes\\.0: .*; inspect it, then remove it to start over$`));
    writeFileSync(file.path, '[]');
    await expect(v.read(file)).rejects.toThrow(/: \(root\): /);
  });

  it('never writes a document its decoder refuses', async () => {
    const file = new JsonStateFile(join(dir, 'doc.json'), schemaDecoder(docSchema));
    await v.save(file, doc);
    await expect(v.save(file, { ...doc, phase: 'sideways' } as unknown as Doc)).rejects.toThrow(/refusing to write .*phase/);
    expect(await v.read(file)).toEqual(doc);
  });

  it('takes any decoder, e.g. a version check', async () => {
    const decode = (data: unknown) => {
      const version = (data as { version?: unknown }).version;
      if (version !== 1) throw new Error(`has version ${String(version)}, this reads version 1`);
      return data as Doc;
    };
    const file = new JsonStateFile(join(dir, 'doc.json'), decode);
    writeFileSync(file.path, JSON.stringify({ ...doc, version: 7 }));
    await expect(v.read(file)).rejects.toThrow(/doc\.json: has version 7, this reads version 1/);
  });
});

describe('JsonStateFile.remove', () => {
  it('removes the file, and is idempotent', async () => {
    const file = new JsonStateFile(join(dir, 'doc.json'), schemaDecoder(docSchema));
    await file.write(doc);
    await file.remove();
    expect(await file.read()).toBeNull();
    await file.remove();
    expect(readdirSync(dir)).toEqual([]);
  });
});
