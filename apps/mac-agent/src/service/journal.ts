/**
 * The journal: what the agent changed on this host, on disk, so that Down works after a
 * crash or a reboot. Written ahead of each change (a route is listed before it is added),
 * atomically (@wgctl/state: temp file + fsync + rename + directory fsync), mode 0600, in
 * --state-dir. Read and written synchronously, as the engine calls it.
 *
 * Format: one JSON object, `version: 1` (see MacJournal). Unknown versions are refused
 * rather than guessed at.
 */
import { join } from 'node:path';
import type { JournalPhase } from '@wgctl/agent-kit';
import { JsonStateFile, type StateFileOptions } from '@wgctl/state';
import type { DnsSnapshot, KillSwitchHandle, KillSwitchPolicy, ServerEndpoint, Uplink, Vnic } from '../host/driver';

const JOURNAL_VERSION = 1;
export const JOURNAL_FILE = 'mac-agent.journal.json';

/**
 * wgctl.v1.Ipv6Mode in the engine's own terms (the engine sees no proto): the words of
 * @wgctl/proto's IPV6_MODE_BY_WORD, the one table the gRPC layer maps them with.
 */
export type Ipv6Choice = 'auto' | 'route' | 'block';
/** What auto comes to once the Mac's vnic is known: the mode in effect. */
export type Ipv6InEffect = Exclude<Ipv6Choice, 'auto'>;

export interface UpIntent {
  vmAddress: string;
  vmAddress6?: string;
  endpoints: (ServerEndpoint & { host?: string })[];
  dnsServers: string[];
  ipv6: Ipv6Choice;
  /**
   * Only what makes the host fail-closed: the kill switch and the server pins, while the VM's
   * tunnel comes up (the controller's full Up follows). The journal stays up-in-progress, and a
   * re-assert at start re-applies just that much.
   */
  killSwitchOnly?: boolean;
  /** Excluded destinations (canonical CIDRs): routed via the uplink's gateway, let through the kill switch. */
  exclude?: string[];
  /** --allow-lan: the kill switch lets the uplink's private subnets and mDNS through (host/lan.ts). */
  allowLan?: boolean;
  /**
   * `wgctl portal` (kill-switch-only Ups only): open a captive-portal sign-in window this long
   * (the kill switch's policy.portalWindow holds its deadline). Never re-opened by a re-assert.
   */
  portalWindowMs?: number;
}

/** A route this agent added (listed before it is added; removed from the list after it is deleted). */
export interface JournalRoute {
  /** pin: a server's host route, exclude: an excluded CIDR (both via the uplink's gateway); split*: via the VM. */
  role: 'pin' | 'exclude' | 'split' | 'split6';
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
  ipv6: Ipv6InEffect | null;
  routes: JournalRoute[];
  killSwitch: { policy: KillSwitchPolicy; handle: KillSwitchHandle | null } | null;
  /** DNS as it was before the first Up changed it; kept across re-Ups until Down restores it. */
  dns: { snapshot: DnsSnapshot; servers: string[] } | null;
  lastRoamMs: number;
  lastError: string;
  /**
   * A kill-switch-only Up's: the routing table as its discover read it (RoutingTable.fingerprint),
   * which lets the full Up that follows take that discovery when the table is unchanged.
   */
  routingFingerprint?: string;
  /**
   * A kill-switch-only Up writes DNS ahead for the full Up (HostNetworkDriver.prepareDns): set
   * before it does, cleared once that is known gone (taken by the full Up's dns step, or
   * discarded by it, by Down or by the next kill-switch-only Up that does not prepare).
   */
  dnsPrepared?: boolean;
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

function decodeJournal(data: unknown): MacJournal {
  const version = (data as { version?: unknown } | null)?.version;
  if (version !== JOURNAL_VERSION) throw new Error(`has version ${String(version)}, this agent reads version ${JOURNAL_VERSION}`);
  return data as MacJournal;
}

/**
 * Carries a checksum and keeps the previous copy (`.prev`), falling back to it when the current
 * one is corrupt (@wgctl/state); a journal unusable both ways makes Up refuse and Down go by
 * marks (down-by-marks.ts).
 */
export class JournalStore extends JsonStateFile<MacJournal> {
  constructor(
    readonly stateDir: string,
    options: StateFileOptions = {},
  ) {
    super(join(stateDir, JOURNAL_FILE), decodeJournal, options);
  }

  /** null when there is no journal (never been up on this host). */
  load(): MacJournal | null {
    return this.readSync();
  }

  save(journal: MacJournal): void {
    this.writeSync(journal);
  }
}
