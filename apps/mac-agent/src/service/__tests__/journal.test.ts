import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateFileError } from '@wgctl/state';
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
});
