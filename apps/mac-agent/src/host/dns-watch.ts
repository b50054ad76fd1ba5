/**
 * How the mac-agent learns that DNS may have changed behind its back, as it happens, where the
 * OS says so: a driver describes its sources (DnsWatch), DnsChangeWatcher runs them while up.
 *
 * - Files (linux resolv.conf): inotify through node's fs.watch on the file's DIRECTORY, as
 *   writers (dhclient-script, resolvconf, NetworkManager, our own driver) usually write a new
 *   file and rename it over the old one: a watch on the file itself would follow the old inode.
 * - A process (darwin: `scutil` watching configd's DNS keys): kept running by SupervisedMonitor.
 *
 * Each report is only a hint: the owner re-reads DNS and decides (see roam.ts keepDnsOnTunnel).
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from '@wgctl/logging';
import { formatArgv, SupervisedMonitor, type StreamingOptions, type StreamingProcess } from '@wgctl/runner';

export interface DnsWatchMonitor {
  argv: string[];
  /** Commands written to its stdin at each start (which stays open). */
  input?: string;
  /** What a line reports ('' or null: nothing of interest); pure. */
  classifyLine(line: string): string | null;
}

export interface DnsWatch {
  /** Files whose rewrite, replacement or removal may change DNS. */
  files?: string[];
  monitor?: DnsWatchMonitor;
}

export interface DnsChangeWatcherOptions {
  watch: DnsWatch;
  spawn: (argv: readonly string[], options: StreamingOptions) => StreamingProcess;
  logger: Logger;
  /** Told of each change, with what reported it. */
  onChange: (trigger: string) => void;
  /** A directory watch that failed is set up again this much later (default 1000 ms). */
  retryMs?: number;
}

/** Runs a driver's DnsWatch: directory watches and a monitor process, from start() to stop(). */
export class DnsChangeWatcher {
  private readonly monitor?: SupervisedMonitor;
  private readonly directories = new Map<string, FSWatcher>();
  private readonly retries = new Set<NodeJS.Timeout>();
  /** Files whose watch cannot be set up (no such directory yet): logged once, retried quietly. */
  private readonly failing = new Set<string>();
  private wanted = false;
  private monitorStarts = 0;

  constructor(private readonly options: DnsChangeWatcherOptions) {
    const spec = options.watch.monitor;
    if (!spec) return;
    this.monitor = new SupervisedMonitor({
      spawn: options.spawn,
      argv: spec.argv,
      input: spec.input,
      onLine: (line) => {
        const what = spec.classifyLine(line);
        if (what) options.onChange(what);
      },
      onStart: (proc) => {
        options.logger.info('watching DNS changes', { argv: formatArgv(spec.argv), pid: proc.pid });
        // After a restart a change may have gone unseen meanwhile: one look.
        if (this.monitorStarts++ > 0) options.onChange(`${spec.argv[0]} restarted`);
      },
      onExit: (exit, stderr) => {
        options.logger.warn('DNS monitor exited; restarting', { argv: formatArgv(spec.argv), code: exit.code, signal: exit.signal, error: exit.error, stderr: stderr.join(' | ') });
        return exit.code !== 127; // a tool that is missing stays missing
      },
    });
  }

  /** Whether anything is being watched. */
  get watching(): boolean {
    return this.directories.size > 0 || this.monitor?.running !== undefined;
  }

  start(): void {
    if (this.wanted) return;
    this.wanted = true;
    this.monitorStarts = 0;
    for (const file of this.options.watch.files ?? []) this.watchFile(file);
    this.monitor?.start();
  }

  async stop(): Promise<void> {
    this.wanted = false;
    for (const timer of this.retries) clearTimeout(timer);
    this.retries.clear();
    this.failing.clear();
    for (const watcher of this.directories.values()) watcher.close();
    this.directories.clear();
    await this.monitor?.stop();
  }

  private watchFile(file: string): void {
    const directory = dirname(file);
    if (this.directories.has(file) || !this.wanted) return;
    let watcher: FSWatcher;
    try {
      watcher = watchFileInDirectory(file, (event) => this.options.onChange(`file event: ${event} ${file}`));
    } catch (e) {
      if (!this.failing.has(file)) this.options.logger.warn('cannot watch DNS file; retrying every second', { file, error: (e as Error).message });
      this.failing.add(file);
      this.retryWatch(file);
      return;
    }
    this.failing.delete(file);
    watcher.on('error', (e) => {
      // The directory went away (or the watch broke): watched again once it is back.
      this.options.logger.warn('DNS file watch failed; retrying', { file, error: e.message });
      watcher.close();
      this.directories.delete(file);
      this.retryWatch(file);
    });
    this.directories.set(file, watcher);
    this.options.logger.info('watching DNS changes', { file, directory });
  }

  private retryWatch(file: string): void {
    if (!this.wanted) return;
    const timer = setTimeout(() => {
      this.retries.delete(timer);
      if (!this.wanted) return;
      this.watchFile(file);
      // Whatever changed while it was not watched is looked at once.
      if (this.directories.has(file)) this.options.onChange(`file watch re-armed: ${file}`);
    }, this.options.retryMs ?? 1_000);
    timer.unref();
    this.retries.add(timer);
  }
}

/**
 * Events naming `file` in its directory (inotify through fs.watch): written, replaced, removed.
 * Throws when the directory cannot be watched.
 */
function watchFileInDirectory(file: string, onEvent: (event: string) => void): FSWatcher {
  const name = basename(file);
  return watch(dirname(file), { persistent: false }, (event, changed) => {
    // inotify names the entry; a null name (an overflowed queue) may be ours too.
    if (changed === null || changed === name) onEvent(event);
  });
}

/** Whether files were written, replaced or removed since the watch began. */
export interface FileChangeWatch {
  readonly changed: boolean;
  close(): void;
}

/**
 * Watches `files` as DnsChangeWatcher does (inotify on their directories, by name) and only
 * remembers that one changed: what lets DNS read once be taken as still current a moment later
 * without reading it again. A watch that breaks counts as a change; null when one cannot be set up.
 */
export function watchFilesForChange(files: readonly string[]): FileChangeWatch | null {
  const watchers: FSWatcher[] = [];
  const state = { changed: false };
  const close = () => watchers.forEach((w) => w.close());
  try {
    for (const file of files) {
      const watcher = watchFileInDirectory(file, () => (state.changed = true));
      watcher.on('error', () => (state.changed = true));
      watchers.push(watcher);
    }
  } catch {
    close();
    return null;
  }
  return {
    get changed() {
      return state.changed;
    },
    close,
  };
}
