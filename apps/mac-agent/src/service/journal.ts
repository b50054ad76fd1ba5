/**
 * The journal: what the agent changed on this host, on disk, so that Down works after a
 * crash or a reboot. Written ahead of each change (a route is listed before it is added),
 * atomically (temp file + fsync + rename + directory fsync), mode 0600, in --state-dir.
 *
 * Format: one JSON object, `version: 1` (see MacJournal). Unknown versions are refused
 * rather than guessed at.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { DnsSnapshot, KillSwitchHandle, KillSwitchPolicy, ServerEndpoint, Uplink, Vnic } from '../host/driver';

export const JOURNAL_VERSION = 1;
export const JOURNAL_FILE = 'mac-agent.journal.json';

export type JournalPhase = 'up-in-progress' | 'up' | 'down-in-progress' | 'down';
export type Ipv6Choice = 'auto' | 'route' | 'block';

export interface UpIntent {
  vmAddress: string;
  vmAddress6?: string;
  endpoints: (ServerEndpoint & { host?: string })[];
  dnsServers: string[];
  ipv6: Ipv6Choice;
}

/** A route this agent added (listed before it is added; removed from the list after it is deleted). */
export interface JournalRoute {
  role: 'pin' | 'split' | 'split6';
  destination: string;
  gateway: string;
  interface?: string;
}

export interface MacJournal {
  version: typeof JOURNAL_VERSION;
  driver: string;
  phase: JournalPhase;
  updatedAtMs: number;
  intent: UpIntent | null;
  uplink: Uplink | null;
  /** The uplink disappeared while up: the kill switch stays on the last one (fail-closed). */
  uplinkLost: boolean;
  vnic: Vnic | null;
  ipv6: 'route' | 'block' | null;
  routes: JournalRoute[];
  killSwitch: { policy: KillSwitchPolicy; handle: KillSwitchHandle | null } | null;
  /** DNS as it was before the first Up changed it; kept across re-Ups until Down restores it. */
  dns: { snapshot: DnsSnapshot; servers: string[] } | null;
  lastRoamMs: number;
  lastError: string;
}

export function emptyJournal(driver: string, now: number): MacJournal {
  return {
    version: JOURNAL_VERSION,
    driver,
    phase: 'down',
    updatedAtMs: now,
    intent: null,
    uplink: null,
    uplinkLost: false,
    vnic: null,
    ipv6: null,
    routes: [],
    killSwitch: null,
    dns: null,
    lastRoamMs: 0,
    lastError: '',
  };
}

export class JournalError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JournalError';
  }
}

export class JournalStore {
  readonly path: string;

  constructor(readonly stateDir: string) {
    this.path = join(stateDir, JOURNAL_FILE);
  }

  /** null when there is no journal (never been up on this host). */
  load(): MacJournal | null {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    let data: MacJournal;
    try {
      data = JSON.parse(text) as MacJournal;
    } catch (e) {
      throw new JournalError(`journal ${this.path} is not valid JSON (${(e as Error).message}); inspect it, then remove it to start afresh`);
    }
    if (data.version !== JOURNAL_VERSION) {
      throw new JournalError(`journal ${this.path} has version ${String(data.version)}, this agent reads version ${JOURNAL_VERSION}`);
    }
    return data;
  }

  save(journal: MacJournal): void {
    mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.tmp-${process.pid}`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(journal, null, 2)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      renameSync(tmp, this.path);
    } catch (e) {
      try {
        unlinkSync(tmp);
      } catch {
        /* already gone */
      }
      throw e;
    }
    // The rename itself must survive a power cut too.
    try {
      const dir = openSync(this.stateDir, 'r');
      try {
        fsyncSync(dir);
      } finally {
        closeSync(dir);
      }
    } catch {
      /* some filesystems refuse fsync on directories; the rename is still atomic */
    }
  }
}
