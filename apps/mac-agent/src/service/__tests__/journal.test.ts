import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openAtStart, StateFileError } from '@wgctl/state';
import { JOURNAL_FILE, JournalStore, emptyJournal } from '../journal';

describe('JournalStore', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'wtm-journal-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('has no journal until one is saved; saves atomically with mode 0600 and leaves no temp file', () => {
    const store = new JournalStore(join(dir, 'state'));
    expect(store.load()).toBeNull();
    const journal = emptyJournal('linux', 1234);
    journal.phase = 'up-in-progress';
    journal.routes.push({ role: 'pin', destination: '203.0.113.10/32', gateway: '192.0.2.1', interface: 'eth0' });
    store.save(journal);
    expect(store.load()).toEqual(journal);
    expect(statSync(store.path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'state')).mode & 0o777).toBe(0o700);
    expect(readdirSync(join(dir, 'state'))).toEqual([JOURNAL_FILE]);
  });

  it('refuses a journal it cannot read rather than guessing', () => {
    const store = new JournalStore(dir);
    writeFileSync(store.path, '{"version": 1, "phase": "up"');
    expect(() => store.load()).toThrow(StateFileError);
    writeFileSync(store.path, JSON.stringify({ ...emptyJournal('linux', 0), version: 7 }));
    expect(() => store.load()).toThrow(/version 7, this agent reads version 1/);
  });

  it('carries a checksum, keeps the previous journal, and falls back to it (logged) when the current one is corrupt', () => {
    const warnings: string[] = [];
    const store = openAtStart((o) => new JournalStore(dir, o), { warn: (message, fields) => warnings.push(`${message} ${JSON.stringify(fields)}`) });
    const up = { ...emptyJournal('linux', 1), phase: 'up' as const };
    store.save(emptyJournal('linux', 0));
    store.save(up);
    expect(JSON.parse(readFileSync(store.path, 'utf8')).checksum).toMatch(/^sha256:[0-9a-f]{64}$/);
    writeFileSync(store.path, readFileSync(store.path, 'utf8').replace('"phase": "up"', '"phase": "down"'));
    expect(store.load()).toEqual(emptyJournal('linux', 0));
    expect(warnings).toEqual([expect.stringMatching(/falling back to its previous copy.*checksum mismatch/)]);
  });

  it('reads a journal written before checksums (upgrade)', () => {
    const store = new JournalStore(dir);
    writeFileSync(store.path, JSON.stringify(emptyJournal('darwin', 5)));
    expect(store.load()).toEqual(emptyJournal('darwin', 5));
  });

  it('at start, removes the temporary journal files of a process that died mid-write (logged)', () => {
    const dead = spawnSync('true').pid;
    writeFileSync(join(dir, `${JOURNAL_FILE}.tmp-${dead}`), '{"version": 1');
    const warnings: string[] = [];
    openAtStart((o) => new JournalStore(dir, o), { warn: (message) => warnings.push(message) });
    expect(existsSync(join(dir, `${JOURNAL_FILE}.tmp-${dead}`))).toBe(false);
    expect(warnings).toEqual(['removed temporary files of a write whose process died']);
  });
});
