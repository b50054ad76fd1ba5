/**
 * The Capture RPC both agents serve: `tcpdump -nn -l -p --immediate-mode -i IF` for a bounded
 * time, optionally probing a target with `ping` while it listens. `wgctl verify` judges what
 * each side saw. The agents supply only what differs: the default interface (the vm-agent's
 * tunnel, the mac-agent's uplink) and ping's argv (./ping).
 *
 * - Inputs are checked before anything runs: interface name pattern, an IP literal as probe
 *   target (never a name or anything ping could read as an option), duration ≤ 30 s, packet
 *   and probe counts bounded → INVALID_ARGUMENT.
 * - The probe starts only once tcpdump says it is listening, and its packets must fit in the
 *   duration (the controller times both agents' captures around it).
 * - tcpdump failing to start, or stopping before the end (interface gone), is
 *   FAILED_PRECONDITION with its stderr: a truncated capture proves nothing.
 * - At most two captures at a time (RESOURCE_EXHAUSTED beyond): each one is a process.
 */
import * as grpc from '@grpc/grpc-js';
import { isInterfaceName, isIpAddress } from '@wgctl/config';
import { redactText, shownValue, type Logger } from '@wgctl/logging';
import { parseTcpdumpLine, type TcpdumpPacket } from '@wgctl/parsers';
import type { CaptureRequest, CaptureResult, Packet } from '@wgctl/proto';
import { spawnStreaming, type Runner, type StreamExit, type StreamingOptions, type StreamingProcess } from '@wgctl/runner';
import { failedPrecondition, invalidArgument, statusError } from '@wgctl/transport';
import type { InterfaceLink } from './link';
import { iputilsPingArgv, type ProbePlan } from './ping';

export const CAPTURE_LIMITS = {
  defaultDurationMs: 5_000,
  maxDurationMs: 30_000,
  defaultMaxPackets: 1_000,
  maxPackets: 10_000,
  defaultProbeCount: 3,
  maxProbeCount: 100,
  /** Seconds between echo requests: ping's floor for a sane load, and its default. */
  minProbeIntervalS: 0.2,
  maxProbeIntervalS: 1,
  /** How long ping waits for the last reply (-W 1). */
  probeReplyWaitMs: 1_000,
  maxConcurrent: 2,
  /** tcpdump must say "listening on …" within this. */
  startTimeoutMs: 5_000,
} as const;

export interface CapturePlan {
  /** Empty: the agent's default interface. */
  interface: string;
  durationMs: number;
  maxPackets: number;
  probe?: ProbePlan;
}

/** Checks a request and fills in defaults; throws INVALID_ARGUMENT naming the field. */
export function planCapture(request: CaptureRequest): CapturePlan {
  const iface = request.interface.trim();
  if (iface !== '' && !isInterfaceName(iface)) {
    throw invalidArgument(`interface: ${shownValue(request.interface)} is not an interface name (1–15 of A-Z a-z 0-9 _ . = + -)`);
  }
  const durationMs = request.durationMs || CAPTURE_LIMITS.defaultDurationMs;
  if (durationMs > CAPTURE_LIMITS.maxDurationMs) {
    throw invalidArgument(`duration_ms: ${request.durationMs} is more than the limit of ${CAPTURE_LIMITS.maxDurationMs} ms`);
  }
  const maxPackets = request.maxPackets || CAPTURE_LIMITS.defaultMaxPackets;
  if (maxPackets > CAPTURE_LIMITS.maxPackets) {
    throw invalidArgument(`max_packets: ${request.maxPackets} is more than the limit of ${CAPTURE_LIMITS.maxPackets}`);
  }
  const target = request.probeTarget.trim();
  if (target === '') {
    if (request.probeCount) throw invalidArgument('probe_count needs probe_target');
    return { interface: iface, durationMs, maxPackets };
  }
  if (!isIpAddress(target)) throw invalidArgument(`probe_target: expected an IPv4 or IPv6 address, got ${shownValue(request.probeTarget)}`);
  const count = request.probeCount || CAPTURE_LIMITS.defaultProbeCount;
  if (count > CAPTURE_LIMITS.maxProbeCount) {
    throw invalidArgument(`probe_count: ${count} is more than the limit of ${CAPTURE_LIMITS.maxProbeCount}`);
  }
  // Spread the probes over the capture, leaving time for the last reply.
  const room = (durationMs - CAPTURE_LIMITS.probeReplyWaitMs) / 1000;
  const intervalS = Math.min(CAPTURE_LIMITS.maxProbeIntervalS, Math.floor((room / count) * 1000) / 1000);
  if (intervalS < CAPTURE_LIMITS.minProbeIntervalS) {
    const needed = Math.ceil(count * CAPTURE_LIMITS.minProbeIntervalS * 1000 + CAPTURE_LIMITS.probeReplyWaitMs);
    throw invalidArgument(`probe_count: ${count} probes do not fit in ${durationMs} ms (needs duration_ms ≥ ${needed})`);
  }
  return { interface: iface, durationMs, maxPackets, probe: { target, count, intervalS } };
}

/**
 * -p: no promiscuous mode, so other hosts' unicast on a shared LAN is not captured at all.
 * -e: each packet's link-layer source and destination, which tell what this host sent (source
 * MAC = the interface's own) from neighbours' broadcasts and what was sent to it; see
 * apps/wgctl/src/verify.ts for why MACs rather than `-Q out` (Linux only) or pktap metadata.
 * --immediate-mode: each packet is delivered at once; buffered (Linux TPACKET_V3 blocks, BPF)
 * packets of the last second would otherwise be lost when the capture is stopped.
 */
export function tcpdumpArgv(iface: string, maxPackets: number): string[] {
  return ['tcpdump', '-nn', '-e', '-l', '-p', '--immediate-mode', '-i', iface, '-c', String(maxPackets)];
}

function packetMessage(parsed: TcpdumpPacket, iface: string): Packet {
  return {
    interface: parsed.interface ?? iface,
    family: parsed.family,
    protocol: parsed.protocol,
    src: parsed.src,
    dst: parsed.dst,
    srcPort: parsed.srcPort ?? 0,
    dstPort: parsed.dstPort ?? 0,
    line: parsed.line,
    srcMac: parsed.srcMac ?? '',
    dstMac: parsed.dstMac ?? '',
  };
}

/** ping's summary ("3 packets transmitted, 3 received, …") or, failing that, its last words. */
function probeDetail(stdout: string, stderr: string, exitCode: number): string {
  const summary = stdout.split('\n').find((line) => /packets transmitted/.test(line));
  if (summary) return summary.trim();
  const last = (stderr.trim() || stdout.trim()).split('\n').slice(-1)[0];
  return last ? `ping exit ${exitCode}: ${last}` : `ping exit ${exitCode}`;
}

export interface CaptureDeps {
  /** Runs ping. */
  runner: Runner;
  /** Starts tcpdump (spawnStreaming; replaced in tests). */
  spawn?: (argv: readonly string[], options: StreamingOptions) => StreamingProcess;
  /** The interface used when the request names none. */
  defaultInterface: () => Promise<string | undefined>;
  /** The interface's own MAC and addresses (./link); without it verify cannot tell directions. */
  interfaceLink?: (iface: string) => Promise<InterfaceLink | undefined>;
  /** ping's argv for a probe (default: iputils', see ./ping). */
  pingArgv?: (probe: ProbePlan) => string[];
  logger?: Logger;
  startTimeoutMs?: number;
}

/** The first of `promises`, or `fallback` after `ms` (or at once when `signal` aborts); no timer is left behind. */
function raceWithTimeout<T>(promises: Promise<T>[], ms: number, fallback: T, signal?: AbortSignal): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const timeout = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
    onAbort = () => resolve(fallback);
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([...promises, timeout]).finally(() => {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  });
}

const cancelled = () => statusError(grpc.status.CANCELLED, 'the capture was cancelled by the caller');

/** Runs one capture (the request is planned first); `signal` ends it early (caller went away). */
export async function runCapture(request: CaptureRequest, deps: CaptureDeps, signal?: AbortSignal): Promise<CaptureResult> {
  const plan = planCapture(request);
  const iface = plan.interface || (await deps.defaultInterface());
  if (!iface) throw failedPrecondition('no interface to capture on: the agent found no default one; name it in the request');

  const link = await deps.interfaceLink?.(iface);
  const argv = tcpdumpArgv(iface, plan.maxPackets);
  const packets: Packet[] = [];
  let listening: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (listening = resolve));
  const startedAt = performance.now();
  const tcpdump = (deps.spawn ?? spawnStreaming)(argv, {
    onLine: (line) => {
      if (packets.length >= plan.maxPackets) return;
      let parsed: TcpdumpPacket | null;
      try {
        parsed = parseTcpdumpLine(line);
      } catch {
        // Unreadable is not harmless: report the line, the verdict treats it as unknown traffic.
        parsed = { family: 'other', protocol: 'other', src: '', dst: '', line };
      }
      if (parsed) packets.push(packetMessage(parsed, iface));
    },
    onStderrLine: (line) => {
      if (/^listening on /.test(line)) listening();
    },
  });
  const stderrOf = () => redactText(tcpdump.stderrTail().join('\n').trim());

  let exitedEarly: StreamExit | undefined;
  void tcpdump.exited.then((exit) => (exitedEarly = exit));
  const startTimeoutMs = deps.startTimeoutMs ?? CAPTURE_LIMITS.startTimeoutMs;
  const started = await raceWithTimeout([ready.then(() => true), tcpdump.exited.then(() => false)], startTimeoutMs, false, signal);
  if (!started) {
    const exitedByItself = exitedEarly !== undefined;
    const exit = await tcpdump.stop(500);
    if (signal?.aborted) throw cancelled();
    const why = exitedByItself ? `exited (${exit.error ?? exit.signal ?? `code ${exit.code}`})` : `did not start listening within ${startTimeoutMs} ms`;
    throw failedPrecondition(`capture on ${iface} failed: tcpdump ${why}: ${stderrOf() || 'no output'}`);
  }
  const listeningAt = performance.now();

  let probe: Promise<{ ok: boolean; detail: string }> | undefined;
  if (plan.probe) {
    const probeArgv = (deps.pingArgv ?? iputilsPingArgv)(plan.probe);
    probe = deps.runner
      .run(probeArgv, { allowFailure: true, readOnly: true, timeoutMs: plan.durationMs + 5_000 })
      .then((r) => ({ ok: r.exitCode === 0, detail: probeDetail(r.stdout, r.stderr, r.exitCode) }))
      .catch((e: unknown) => ({ ok: false, detail: `ping failed: ${e instanceof Error ? e.message : String(e)}` }));
  }
  // tcpdump ends by itself after max_packets (-c); otherwise the duration ends it.
  await raceWithTimeout([tcpdump.exited], plan.durationMs, undefined, signal);
  const stoppedByItself = exitedEarly !== undefined;
  const probeResult = await probe;
  const exit = await tcpdump.stop(1_000);
  if (signal?.aborted) throw cancelled();
  // Only reaching max_packets may end a capture early; anything else hides what came after.
  if (stoppedByItself && packets.length < plan.maxPackets) {
    throw failedPrecondition(
      `capture on ${iface} stopped after ${Math.round(performance.now() - listeningAt)} ms of ${plan.durationMs} ` +
        `(tcpdump ${exit.error ?? exit.signal ?? `exit ${exit.code}`}): ${stderrOf() || 'no output'}`,
    );
  }
  deps.logger?.info('capture finished', { interface: iface, packets: packets.length, probe: plan.probe?.target, probeOk: probeResult?.ok });
  return {
    interface: iface,
    packets,
    probeOk: probeResult?.ok ?? false,
    probeDetail: probeResult?.detail ?? '',
    command: {
      argv,
      exitCode: exit.code ?? -1,
      stderr: stderrOf(),
      dryRun: false,
      durationMs: String(Math.round(performance.now() - startedAt)),
    },
    linkAddress: link?.linkAddress ?? '',
    interfaceAddresses: link?.addresses ?? [],
  };
}

/** The unary handler: at most CAPTURE_LIMITS.maxConcurrent at once; a cancelled call stops its capture. */
export function captureHandler(deps: CaptureDeps): grpc.handleUnaryCall<CaptureRequest, CaptureResult> {
  let running = 0;
  return async (call, callback) => {
    if (running >= CAPTURE_LIMITS.maxConcurrent) {
      throw statusError(grpc.status.RESOURCE_EXHAUSTED, `${running} captures are already running: try again when they end`);
    }
    running++;
    const controller = new AbortController();
    const onCancel = (): void => controller.abort();
    call.on('cancelled', onCancel);
    try {
      callback(null, await runCapture(call.request, deps, controller.signal));
    } finally {
      call.off('cancelled', onCancel);
      running--;
    }
  };
}
