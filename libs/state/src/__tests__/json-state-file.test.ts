import { createHook } from 'node:async_hooks';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
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
    const onDisk = JSON.parse(readFileSync(file.path, 'utf8'));
    expect(onDisk).toEqual({ ...doc, checksum: `sha256:${createHash('sha256').update(JSON.stringify(doc, null, 2)).digest('hex')}` });
  });

  it('refuses a corrupt or foreign file with the path and what to do', async () => {
    const file = new JsonStateFile(join(dir, 'doc.json'), schemaDecoder(docSchema));
    writeFileSync(file.path, '{"version":1,"phase":"up"');
    await expect(v.read(file)).rejects.toThrow(StateFileError);
    await expect(v.read(file)).rejects.toThrow(`${file.path} is not valid JSON`);
    writeFileSync(file.path, JSON.stringify({ ...doc, routes: [7] }));
    await expect(v.read(file)).rejects.toThrow(new RegExp(`^${file.path}: routes\\.0: .*; inspect it; \`wgctl down\` removes what is ours by its marks without it$`));
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

/** The three ways a journal arrives corrupt: garbage, cut short, or valid JSON whose content no longer matches its checksum. */
const corruptions: [string, (path: string) => void][] = [
  ['garbage bytes', (path) => writeFileSync(path, Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0x7b]))],
  ['truncated', (path) => truncateSync(path, Math.floor(statSync(path).size / 2))],
  [
    'a wrong checksum',
    (path) => writeFileSync(path, readFileSync(path, 'utf8').replace('"phase": "down"', '"phase": "up"')),
  ],
];

describe.each(variants)('JsonStateFile corruption and the previous copy ($name)', (v) => {
  const first: Doc = { version: 1, phase: 'up', routes: ['203.0.113.10/32'] };
  const second: Doc = { version: 1, phase: 'down', routes: [] };

  it.each(corruptions)('falls back to the previous copy when the current one is %s, and says so', async (_name, corrupt) => {
    const notices: string[] = [];
    const file = new JsonStateFile(join(dir, 'doc.json'), schemaDecoder(docSchema), { onFallback: (m) => notices.push(m) });
    await v.save(file, first);
    await v.save(file, second);
    expect(await v.read(file)).toEqual(second);
    corrupt(file.path);
    expect(await v.read(file)).toEqual(first);
    expect(notices).toHaveLength(1);
    expect(notices[0]).toContain(`using the previous copy ${file.path}.prev`);
    const detailed = v.name === 'sync' ? file.readDetailedSync() : await file.readDetailed();
    expect(detailed).toEqual({ value: first, fellBackBecause: expect.stringContaining(file.path) });
  });

  it.each(corruptions)('refuses the current file when it is %s and there is no previous copy', async (_name, corrupt) => {
    const file = new JsonStateFile(join(dir, 'doc.json'), schemaDecoder(docSchema));
    await v.save(file, second);
    corrupt(file.path);
    await expect(v.read(file)).rejects.toThrow(StateFileError);
  });

  it('names the checksum mismatch', async () => {
    const file = new JsonStateFile(join(dir, 'doc.json'), schemaDecoder(docSchema));
    await v.save(file, second);
    corruptions[2][1](file.path);
    await expect(v.read(file)).rejects.toThrow(/checksum mismatch/);
  });

  it('reads a document written before checksums existed (upgrade)', async () => {
    const file = new JsonStateFile(join(dir, 'doc.json'), schemaDecoder(docSchema));
    writeFileSync(file.path, JSON.stringify(first));
    expect(await v.read(file)).toEqual(first);
  });

  it('falls back to the previous copy when the current one was removed by hand', async () => {
    const file = new JsonStateFile(join(dir, 'doc.json'), schemaDecoder(docSchema));
    await v.save(file, first);
    await v.save(file, second);
    rmSync(file.path);
    expect(await v.read(file)).toEqual(first);
  });

  it('never keeps a corrupt file as the previous copy, but sets it aside for inspection', async () => {
    const file = new JsonStateFile(join(dir, 'doc.json'), schemaDecoder(docSchema));
    await v.save(file, first);
    await v.save(file, second);
    writeFileSync(file.path, 'garbage');
    await v.save(file, second); // replaces the garbage, keeps `first` as the previous copy
    expect(readFileSync(file.corruptPath, 'utf8')).toBe('garbage');
    writeFileSync(file.path, 'garbage');
    expect(await v.read(file)).toEqual(first);
  });

  it('remove() sets a corrupt file aside rather than deleting the evidence', async () => {
    const file = new JsonStateFile(join(dir, 'doc.json'), schemaDecoder(docSchema));
    await v.save(file, first);
    writeFileSync(file.path, '{"version": 1, "pha');
    await file.remove();
    expect(readdirSync(dir)).toEqual(['doc.json.corrupt']);
    expect(readFileSync(file.corruptPath, 'utf8')).toBe('{"version": 1, "pha');
  });

  it('refuses when both the current file and the previous copy are corrupt, naming both', async () => {
    const file = new JsonStateFile(join(dir, 'doc.json'), schemaDecoder(docSchema));
    await v.save(file, first);
    await v.save(file, second);
    writeFileSync(file.path, 'garbage');
    writeFileSync(file.previousPath, 'more garbage');
    await expect(v.read(file)).rejects.toThrow(/doc\.json is not valid JSON.*previous copy is unusable too.*doc\.json\.prev is not valid JSON/);
  });
});

describe.each(variants)('JsonStateFile: the file it replaces, checked only when not its own ($name)', (v) => {
  const first: Doc = { version: 1, phase: 'up', routes: ['203.0.113.10/32'] };
  const second: Doc = { version: 1, phase: 'down', routes: [] };
  /** A file whose decoder counts its calls: the new document's check, and each check of a file read back. */
  const counted = (path: string) => {
    const calls = { n: 0 };
    const decode = schemaDecoder(docSchema);
    return { calls, file: new JsonStateFile(path, (data) => (calls.n++, decode(data))) };
  };

  it('a write over the file this instance wrote, unchanged since, checks only the new document (no re-read)', async () => {
    const { calls, file } = counted(join(dir, 'doc.json'));
    await v.save(file, first);
    await v.save(file, second);
    calls.n = 0;
    await v.save(file, first);
    await v.save(file, second);
    expect(calls.n).toBe(2);
    // Still kept as the previous copy, and sound.
    expect(await v.read(new JsonStateFile(file.previousPath, schemaDecoder(docSchema)))).toEqual(first);
  });

  it('a file another writer replaced or changed is read and checked again before it is kept', async () => {
    const { calls, file } = counted(join(dir, 'doc.json'));
    await v.save(file, first);
    await v.save(new JsonStateFile(file.path, schemaDecoder(docSchema)), second); // another writer: a new inode
    calls.n = 0;
    await v.save(file, first);
    expect(calls.n).toBe(2); // the new document, and the replaced one (sound: kept as the previous copy)
    expect(readFileSync(file.previousPath, 'utf8')).toContain('"phase": "down"');
    writeFileSync(file.path, 'garbage'); // changed in place
    calls.n = 0;
    await v.save(file, second);
    expect(calls.n).toBe(1); // garbage is no JSON: the decoder never sees it
    expect(readFileSync(file.corruptPath, 'utf8')).toBe('garbage');
    expect(await v.read(file)).toEqual(second);
  });

  it('after remove(), a write starts afresh (nothing to keep)', async () => {
    const { file } = counted(join(dir, 'doc.json'));
    await v.save(file, first);
    await file.remove();
    await v.save(file, second);
    expect(readdirSync(dir)).toEqual(['doc.json']);
  });
});

describe('writeFileAtomic (async): the event loop is awaited only for the two fsyncs', () => {
  it('makes two thread-pool requests per write (file and directory fsync), not one per step', async () => {
    const path = join(dir, 'doc.json');
    const file = new JsonStateFile(path, schemaDecoder(docSchema));
    await file.write(doc); // the directory exists from here on
    const requests: string[] = [];
    const hook = createHook({ init: (_id, type) => void (type.startsWith('FSREQ') && requests.push(type)) });
    hook.enable();
    try {
      await file.write(doc);
      await writeFileAtomic(path, 'two\n', { previous: `${path}.prev` });
    } finally {
      hook.disable();
    }
    expect(requests).toHaveLength(4);
    expect(readFileSync(path, 'utf8')).toBe('two\n');
  });
});

describe('JsonStateFile.removeStaleTempFiles', () => {
  it("removes the temporary files of writes whose process is gone, and only those", async () => {
    const file = new JsonStateFile(join(dir, 'doc.json'), schemaDecoder(docSchema));
    const deadPid = spawnSync('true').pid; // exited: no such process any more
    const stale = [`doc.json.tmp-${deadPid}`, `doc.json.prev.tmp-${deadPid}`];
    const kept = [`doc.json.tmp-${process.pid}`, `other.json.tmp-${deadPid}`, 'doc.json', 'doc.json.tmp-notapid'];
    for (const name of [...stale, ...kept]) writeFileSync(join(dir, name), 'x');
    expect(file.removeStaleTempFiles().sort()).toEqual(stale.map((n) => join(dir, n)).sort());
    expect(readdirSync(dir).sort()).toEqual([...kept].sort());
    expect(new JsonStateFile(join(dir, 'none', 'doc.json'), schemaDecoder(docSchema)).removeStaleTempFiles()).toEqual([]);
  });
});

describe('JsonStateFile.remove', () => {
  it('removes the file and its previous copy, and is idempotent', async () => {
    const file = new JsonStateFile(join(dir, 'doc.json'), schemaDecoder(docSchema));
    await file.write(doc);
    await file.write(doc);
    expect(existsSync(file.previousPath)).toBe(true);
    await file.remove();
    await new JsonStateFile(join(dir, 'never-created', 'doc.json'), schemaDecoder(docSchema)).remove(); // no directory: nothing to remove
    expect(await file.read()).toBeNull();
    await file.remove();
    expect(readdirSync(dir)).toEqual([]);
  });
});
