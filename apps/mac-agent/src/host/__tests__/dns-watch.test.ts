/**
 * The DNS watches: what each driver watches, and DnsChangeWatcher on a real directory (inotify):
 * the managed file's own events only, its sibling temp file ignored, nothing after stop().
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryTransport, createLogger } from '@wgctl/logging';
import type { StreamingOptions, StreamingProcess } from '@wgctl/runner';
import { DarwinDriver } from '../darwin';
import { DnsChangeWatcher, watchFilesForChange } from '../dns-watch';
import { LinuxDriver } from '../linux';

const logger = createLogger({ service: 'test', level: 'info', transports: [new MemoryTransport()] });
const noSpawn = (): StreamingProcess => {
  throw new Error('no process expected');
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('driver DNS watches', () => {
  it('linux watches the resolv.conf it writes; resolvectl mode, systemd-resolved\'s own file', () => {
    expect(new LinuxDriver({ resolvConfPath: '/tmp/x/resolv.conf' }).dnsWatch()).toEqual({ files: ['/tmp/x/resolv.conf'] });
    expect(new LinuxDriver().dnsWatch()).toEqual({ files: ['/etc/resolv.conf'] });
    expect(new LinuxDriver({ dnsMode: 'resolvectl' }).dnsWatch()).toEqual({ files: ['/run/systemd/resolve/resolv.conf'] });
  });

  it('darwin runs scutil, adds configd\'s DNS keys on stdin and reports changedKey lines only', () => {
    const monitor = new DarwinDriver().dnsWatch().monitor!;
    expect(monitor.argv).toEqual(['scutil']);
    expect(monitor.input).toBe('n.add State:/Network/Global/DNS\nn.add Setup:/Network/Service/[^/]+/DNS pattern\nn.watch\n');
    expect(monitor.classifyLine('notification callback (store address = 0x7f8c2bd04a80).')).toBeNull();
    expect(monitor.classifyLine('  10:00:07.412 (+3.118) changedKey [0] = State:/Network/Global/DNS')).toBe('scutil: changed State:/Network/Global/DNS');
  });
});

describe('DnsChangeWatcher on a directory (inotify)', () => {
  let dir: string;
  let file: string;
  let events: string[];
  let watcher: DnsChangeWatcher;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wdw-'));
    file = join(dir, 'resolv.conf');
    writeFileSync(file, 'nameserver 192.0.2.1\n');
    events = [];
    watcher = new DnsChangeWatcher({ watch: { files: [file] }, spawn: noSpawn as (argv: readonly string[], o: StreamingOptions) => StreamingProcess, logger, onChange: (t) => events.push(t) });
  });

  afterEach(async () => {
    await watcher.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reports a file renamed over it and an in-place write; a sibling (our temp file) is not reported', async () => {
    watcher.start();
    expect(watcher.watching).toBe(true);
    writeFileSync(`${file}.wgctl-tmp`, 'nameserver 198.51.100.53\n');
    writeFileSync(join(dir, 'hosts'), '127.0.0.1 localhost\n');
    await sleep(100);
    expect(events).toEqual([]);
    renameSync(`${file}.wgctl-tmp`, file);
    await sleep(100);
    expect(events).toContain(`file event: rename ${file}`);
    events.length = 0;
    writeFileSync(file, 'nameserver 192.0.2.1\n');
    await sleep(100);
    expect(events).toContain(`file event: change ${file}`);
  });

  it('reports nothing once stopped', async () => {
    watcher.start();
    await watcher.stop();
    expect(watcher.watching).toBe(false);
    writeFileSync(file, 'nameserver 192.0.2.1\n');
    await sleep(100);
    expect(events).toEqual([]);
  });
});

describe('DnsChangeWatcher on a directory that is not there yet', () => {
  it('watches it once it appears, and looks once then (what changed meanwhile)', async () => {
    const root = mkdtempSync(join(tmpdir(), 'wdw-'));
    const file = join(root, 'resolve', 'resolv.conf');
    const events: string[] = [];
    const watcher = new DnsChangeWatcher({ watch: { files: [file] }, spawn: noSpawn as (argv: readonly string[], o: StreamingOptions) => StreamingProcess, logger, onChange: (t) => events.push(t), retryMs: 50 });
    try {
      watcher.start();
      expect(watcher.watching).toBe(false);
      mkdirSync(join(root, 'resolve'));
      await sleep(200);
      expect(watcher.watching).toBe(true);
      expect(events).toEqual([`file watch re-armed: ${file}`]);
      writeFileSync(file, 'nameserver 192.0.2.1\n');
      await sleep(100);
      expect(events).toContain(`file event: rename ${file}`); // created
    } finally {
      await watcher.stop();
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('watchFilesForChange (inotify)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wtm-dnschange-'));
    writeFileSync(join(dir, 'resolv.conf'), 'nameserver 192.0.2.1\n');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('stays unchanged through a sibling\'s writes; a write or a rename over the file marks it changed', async () => {
    const watch = watchFilesForChange([join(dir, 'resolv.conf')])!;
    writeFileSync(join(dir, 'resolv.conf.wgctl-tmp'), 'nameserver 198.51.100.53\n');
    await sleep(50);
    expect(watch.changed).toBe(false);
    renameSync(join(dir, 'resolv.conf.wgctl-tmp'), join(dir, 'resolv.conf'));
    await sleep(50);
    expect(watch.changed).toBe(true);
    watch.close();

    const inPlace = watchFilesForChange([join(dir, 'resolv.conf')])!;
    writeFileSync(join(dir, 'resolv.conf'), 'nameserver 192.0.2.2\n');
    await sleep(50);
    expect(inPlace.changed).toBe(true);
    inPlace.close();
  });

  it('cannot watch a file whose directory is missing: null (the caller reads again)', () => {
    expect(watchFilesForChange([join(dir, 'missing', 'resolv.conf')])).toBeNull();
  });
});
