import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateFileError } from '@wgctl/state';
import { JournalStore, type JournalRecord } from '../service/journal';
import { ProcSysctl } from '../host/sysctl';

const record: JournalRecord = {
  version: 1,
  phase: 'up-in-progress',
  interface: 'wg0',
  configPath: '/etc/wireguard/wg0.conf',
  macSource: '198.51.100.2/32',
  lanInterface: 'enp0s1',
  tunnelAddress: '192.0.2.2',
  backend: { kind: 'nft', iptables: 'iptables-nft', save: 'iptables-nft-save', version: '1.8.9' },
  chains: ['filter', 'nat', 'mangle'],
  createdTables: ['mangle'],
  ipForward: { previous: '0', applied: '1' },
  wgInterface: { method: 'wg-quick', srcValidMarkPrevious: '0' },
  updatedAtMs: 1_700_000_000_000,
};

describe('JournalStore', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wtv-journal-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes atomically with mode 0600 (even under a permissive umask) and reads back', async () => {
    const store = new JournalStore(join(dir, 'state'));
    expect(await store.read()).toBeNull();
    const old = process.umask(0o000);
    try {
      await store.write(record);
    } finally {
      process.umask(old);
    }
    expect(statSync(store.path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'state')).mode & 0o777).toBe(0o700);
    expect(readdirSync(join(dir, 'state'))).toEqual(['journal.json']); // no temporary file left
    expect(await store.read()).toEqual(record);
    await store.write({ ...record, phase: 'up' });
    expect((await store.read())?.phase).toBe('up');
    await store.remove();
    expect(await store.read()).toBeNull();
    await store.remove(); // idempotent
  });

  it('reads the phase names of journals written before the shared vocabulary, and writes the new ones', async () => {
    const store = new JournalStore(dir);
    for (const [legacy, phase] of [
      ['applying', 'up-in-progress'],
      ['removing', 'down-in-progress'],
    ]) {
      writeFileSync(store.path, JSON.stringify({ ...record, phase: legacy }));
      const read = await store.read();
      expect(read).toEqual({ ...record, phase });
      await store.write(read!);
      expect(JSON.parse(readFileSync(store.path, 'utf8')).phase).toBe(phase);
    }
  });

  it('refuses a corrupt or foreign file instead of ignoring it', async () => {
    const store = new JournalStore(dir);
    writeFileSync(store.path, '{"version":1,"phase":"applying"');
    await expect(store.read()).rejects.toThrow(StateFileError);
    await expect(store.read()).rejects.toThrow(/not valid JSON.*`wgctl down` removes what is ours by its marks/);
    writeFileSync(store.path, JSON.stringify({ ...record, phase: 'sideways' }));
    await expect(store.read()).rejects.toThrow(/phase/);
    await expect(store.write({ ...record, chains: ['raw'] } as unknown as JournalRecord)).rejects.toThrow();
  });
});

describe('JournalStore: corruption', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'wtv-journal-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('falls back to the previous record when the current one is garbage, truncated or fails its checksum', async () => {
    const store = new JournalStore(dir);
    for (const corrupt of [
      () => writeFileSync(store.path, 'garbage'),
      () => writeFileSync(store.path, readFileSync(store.path, 'utf8').slice(0, 40)),
      () => writeFileSync(store.path, readFileSync(store.path, 'utf8').replace('"phase": "up"', '"phase": "up-in-progress"')),
    ]) {
      await store.write(record);
      await store.write({ ...record, phase: 'up' });
      corrupt();
      expect(await store.read()).toEqual(record);
    }
  });

  it('reads a record written before checksums (upgrade); remove() takes the previous copy too', async () => {
    const store = new JournalStore(dir);
    writeFileSync(store.path, JSON.stringify(record));
    expect(await store.read()).toEqual(record);
    await store.write(record);
    await store.remove();
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('ProcSysctl', () => {
  it('reads and writes the /proc/sys file of a name (no process)', async () => {
    const root = mkdtempSync(join(tmpdir(), 'wtv-sys-'));
    try {
      const { mkdirSync } = await import('node:fs');
      mkdirSync(join(root, 'net/ipv4'), { recursive: true });
      writeFileSync(join(root, 'net/ipv4/ip_forward'), '0\n');
      const sysctl = new ProcSysctl(root);
      expect(await sysctl.read('net.ipv4.ip_forward')).toBe('0');
      await sysctl.write('net.ipv4.ip_forward', '1');
      expect(await sysctl.read('net.ipv4.ip_forward')).toBe('1');
      expect(sysctl.where('net.ipv4.conf.all.src_valid_mark')).toBe(join(root, 'net/ipv4/conf/all/src_valid_mark'));
      expect(() => sysctl.where('../etc/passwd')).toThrow(/invalid sysctl name/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
