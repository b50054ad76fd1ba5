/**
 * Is anything coming back through the tunnel? A pure decision over readings of the peers' rx
 * byte counters (`wg show IF dump`) and the clock; liveness-monitor.ts reads, probes and
 * schedules.
 *
 * Why a probe and these timings (WireGuard whitepaper §6.5, wireguard-go timers.go/receive.go):
 * a peer that receives a transport data packet and has nothing to send back sends a keepalive
 * after Keepalive-Timeout (10 s) — the "passive keepalive" (timersDataReceived); keepalives
 * themselves are never answered, so the VM's PersistentKeepalive proves nothing about the
 * server. rx can therefore stay still for minutes on a healthy idle tunnel, and the 180 s
 * handshake age reacts only after the server has been dead for up to ~3 minutes. So, when rx
 * has not moved for PROBE_AFTER_IDLE_MS, ONE data packet (an ICMP echo with TTL 1) goes into the
 * tunnel: a live server decrypts it (data received) and its kernel answers with time-exceeded at
 * once, or its WireGuard answers with a keepalive within 10 s; if the session is stale, the
 * handshake response (also rx) comes first, a lost initiation retried after Rekey-Timeout (5 s).
 * rx not moving for REPLY_WINDOW_MS after the probe = nothing is alive at the other end.
 */
import ipaddr from 'ipaddr.js';

/** Keepalive-Timeout (whitepaper §6.5): a live peer answers data within this, at the latest. */
export const WIREGUARD_KEEPALIVE_TIMEOUT_MS = 10_000;

export interface LivenessTimings {
  /** rx still for this long → one probe. */
  probeAfterIdleMs: number;
  /** After a probe, rx must move within this (Keepalive-Timeout + margin). */
  replyWindowMs: number;
  /** How often rx is read between deadlines: how late an rx change may be noticed. */
  pollMs: number;
}

/**
 * Worst case from the server's death to NOT_SERVING: pollMs (the last rx seen late) +
 * probeAfterIdleMs + replyWindowMs = 3 + 10 + 12 = 25 s, then one health sample (~0.5 s):
 * inside the 30 s `wgctl status` promises. The window is Keepalive-Timeout plus 2 s for the
 * round trip, timer slack and one retried handshake initiation (5 s + jitter, answered with a
 * handshake response that is itself rx). An idle tunnel costs one ~60-byte probe and its answer
 * every ~10 s; a tunnel carrying traffic, none.
 */
export const DEFAULT_LIVENESS_TIMINGS: LivenessTimings = {
  probeAfterIdleMs: 10_000,
  replyWindowMs: WIREGUARD_KEEPALIVE_TIMEOUT_MS + 2_000,
  pollMs: 3_000,
};

/** unknown: no rx change seen yet (just started); probing: a probe awaits its answer. */
export type LivenessState = 'unknown' | 'alive' | 'probing' | 'dead';

/** What the decision remembers between readings; null fields: not yet / none. */
export interface LivenessMemory {
  interface: string;
  /** Sum of the rx counters of the peers with an endpoint (uint64 as a decimal string). */
  rxBytes: string;
  /** When rx was last seen changing (or first read). */
  rxChangedAtMs: number;
  /** An rx change was seen since the first reading. */
  rxSeenMoving: boolean;
  /** The unanswered probe. */
  probeAtMs: number | null;
  /** Since when the tunnel is dead (the first unanswered probe's window ran out). */
  deadSinceMs: number | null;
  /** The first unanswered probe of this dead spell. */
  firstUnansweredProbeAtMs: number | null;
}

export interface RxReading {
  interface: string;
  atMs: number;
  rxBytes: string;
}

export interface LivenessStep {
  memory: LivenessMemory;
  /** Send one probe now. */
  probe: boolean;
  /** When the decision changes next unless rx moves: read again then at the latest. */
  nextDeadlineMs: number;
}

export function livenessState(memory: LivenessMemory | null): LivenessState {
  if (!memory) return 'unknown';
  if (memory.deadSinceMs !== null) return 'dead';
  if (memory.probeAtMs !== null) return 'probing';
  return memory.rxSeenMoving ? 'alive' : 'unknown';
}

function fresh(reading: RxReading): LivenessMemory {
  return {
    interface: reading.interface,
    rxBytes: reading.rxBytes,
    rxChangedAtMs: reading.atMs,
    rxSeenMoving: false,
    probeAtMs: null,
    deadSinceMs: null,
    firstUnansweredProbeAtMs: null,
  };
}

/**
 * One reading in, what to do out. A new interface or a counter that went down (the interface
 * was re-created) starts over; rx moving clears any probe and any dead spell.
 */
export function observeRx(previous: LivenessMemory | null, reading: RxReading, timings: LivenessTimings): LivenessStep {
  const at = reading.atMs;
  let memory: LivenessMemory;
  if (!previous || previous.interface !== reading.interface || BigInt(reading.rxBytes) < BigInt(previous.rxBytes)) {
    memory = fresh(reading);
  } else if (BigInt(reading.rxBytes) > BigInt(previous.rxBytes)) {
    memory = { ...fresh(reading), rxSeenMoving: true };
  } else {
    memory = { ...previous };
  }

  let probe = false;
  if (memory.probeAtMs === null) {
    if (at - memory.rxChangedAtMs >= timings.probeAfterIdleMs) probe = true;
  } else if (at - memory.probeAtMs >= timings.replyWindowMs) {
    // Unanswered: dead from now on (kept while dead), and probe again — a probe is also what
    // makes WireGuard try a new handshake, so the tunnel's return is seen at once.
    memory.deadSinceMs ??= at;
    memory.firstUnansweredProbeAtMs ??= memory.probeAtMs;
    probe = true;
  }
  if (probe) memory.probeAtMs = at;
  const nextDeadlineMs = memory.probeAtMs !== null ? memory.probeAtMs + timings.replyWindowMs : memory.rxChangedAtMs + timings.probeAfterIdleMs;
  return { memory, probe, nextDeadlineMs };
}

/** What Status shows of the liveness. */
export interface LivenessReport {
  state: LivenessState;
  interface: string;
  /** When rx last moved (a reply of any kind); null: not seen moving yet. */
  lastRxAtMs: number | null;
  lastProbeAtMs: number | null;
  deadSinceMs: number | null;
  /** The address the probes go to. */
  probeTarget: string;
  detail: string;
}

const seconds = (ms: number): number => Math.round(ms / 1000);
const iso = (ms: number): string => new Date(ms).toISOString();

export function livenessReport(memory: LivenessMemory | null, probeTarget: string, nowMs: number): LivenessReport {
  const state = livenessState(memory);
  const base = { state, interface: memory?.interface ?? '', probeTarget, lastProbeAtMs: memory?.probeAtMs ?? null, deadSinceMs: memory?.deadSinceMs ?? null };
  const lastRxAtMs = memory?.rxSeenMoving ? memory.rxChangedAtMs : null;
  const rxAge = lastRxAtMs === null ? '' : `last reply ${seconds(nowMs - lastRxAtMs)} s ago`;
  let detail: string;
  switch (state) {
    case 'unknown':
      detail = memory ? `no reply seen yet (watching ${memory.interface} since ${iso(memory.rxChangedAtMs)})` : 'not watched (the tunnel is not up)';
      break;
    case 'alive':
      detail = `alive: ${rxAge}`;
      break;
    case 'probing':
      detail = `probe sent to ${probeTarget} ${seconds(nowMs - memory!.probeAtMs!)} s ago, awaiting an answer${rxAge ? ` (${rxAge})` : ''}`;
      break;
    case 'dead': {
      const since = memory!.firstUnansweredProbeAtMs!;
      detail =
        `no reply through the tunnel for ${seconds(nowMs - since)} s since a probe at ${iso(since)} ` +
        `(dead since ${iso(memory!.deadSinceMs!)}; ${rxAge || 'no reply seen since the agent started watching'})`;
      break;
    }
  }
  return { ...base, lastRxAtMs, detail };
}

/**
 * Where probes go: an address inside the peer's AllowedIPs (else WireGuard drops the packet
 * before encrypting it), IPv4 first. For a default route, a documentation address (RFC 5737
 * 192.0.2.1, RFC 3849 2001:db8::1): nothing real, and TTL 1 ends the probe at the server's
 * kernel anyway. Otherwise the prefix's first host (a /32 or /128 itself), usually the server.
 */
export function probeTargetFor(allowedIps: readonly string[]): { address: string; family: 4 | 6 } | null {
  const cidrs = allowedIps.filter((c) => ipaddr.isValidCIDR(c)).map((c) => ipaddr.parseCIDR(c));
  const pick = cidrs.find(([a]) => a.kind() === 'ipv4') ?? cidrs[0];
  if (!pick) return null;
  const [address, length] = pick;
  const family = address.kind() === 'ipv4' ? 4 : 6;
  if (length === 0) return { address: family === 4 ? '192.0.2.1' : '2001:db8::1', family };
  const bits = family === 4 ? 32 : 128;
  if (length === bits) return { address: address.toString(), family };
  const cidr = `${address.toString()}/${length}`;
  const bytes = (family === 4 ? ipaddr.IPv4.networkAddressFromCIDR(cidr) : ipaddr.IPv6.networkAddressFromCIDR(cidr)).toByteArray();
  bytes[bytes.length - 1] += 1; // a network's last bit is 0 (prefixes up to /31, /127): no carry
  return { address: ipaddr.fromByteArray(bytes).toString(), family };
}

/**
 * One ICMP echo with TTL (hop limit) 1, bound to the tunnel interface (SO_BINDTODEVICE: into
 * the tunnel whatever the routing rules say), waiting at most 1 s: the answer that matters is
 * the rx counter, not ping's. Exit 1 (no echo reply) is the usual outcome.
 */
export function probeArgv(ifname: string, target: { address: string; family: 4 | 6 }): string[] {
  return ['ping', `-${target.family}`, '-n', '-q', '-c', '1', '-w', '1', '-t', '1', '-I', ifname, target.address];
}
