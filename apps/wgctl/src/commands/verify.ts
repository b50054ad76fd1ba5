/**
 * `wgctl verify`: the Mac captures on its uplink while probing a target through the tunnel;
 * at the same time the VM captures on the tunnel interface. judgeVerify decides.
 */
import { isIpAddress } from '@wgctl/config';
import type { CaptureResult } from '@wgctl/proto';
import type { CommandContext } from '../command-context';
import { CliError, EXIT, UsageError } from '../errors';
import { connectBoth } from '../orchestrator';
import { judgeVerify, type VerifyVerdict } from '../verify';
import { QUICK_DEFAULT_TIMEOUT_S, loadControllerConfig, openAgents, timeoutMs, writeJson } from './context';

const DEFAULT_DURATION_S = 5;
const DEFAULT_COUNT = 3;
/** The agents' capture limits (apps/*-agent capture.ts): checked here so a bad flag exits 2. */
const MAX_DURATION_S = 29; // the VM's capture runs 1 s longer, and agents refuse more than 30 s
const MIN_PROBE_INTERVAL_S = 0.2;
const PROBE_REPLY_WAIT_S = 1;
/** The VM's capture starts first and ends last, so it covers the whole probe. */
const VM_HEAD_START_MS = 500;
const MAX_PACKETS = 2000;

export interface VerifyFlags {
  target?: string;
  duration?: number;
  count?: number;
}

function renderVerdict(verdict: VerifyVerdict, target: string): string {
  const lines: string[] = [];
  lines.push(`verify: ${verdict.pass ? 'PASS' : 'FAIL'} (probe ${target}; uplink ${verdict.uplinkInterface || '?'}, tunnel ${verdict.tunnelInterface || '?'})`);
  const a = verdict.allowed;
  lines.push(`  uplink: ${a.wireguard} WireGuard, ${a.dhcp} DHCP, ${a.arp} ARP, ${a.ndp} NDP${a.eapol ? `, ${a.eapol} EAPOL` : ''}${a.lan ? `, ${a.lan} LAN (--allow-lan)` : ''} packet(s) allowed; ${verdict.leaks.length} leaked`);
  lines.push(
    `  uplink MAC ${verdict.uplinkLinkAddress || 'unknown'}: ${verdict.unsolicitedInbound.length} unsolicited inbound, ` +
      `${verdict.neighbourPackets} neighbours' broadcast/multicast packet(s) (not the Mac's: never a leak)`,
  );
  lines.push(`  tunnel: probe seen leaving with a tunnel source: ${verdict.probeSeen.length} packet(s)`);
  if (verdict.leaks.length > 0) {
    lines.push('  leaked on the uplink:');
    for (const leak of verdict.leaks.slice(0, 50)) lines.push(`    - ${leak.reason}`);
    if (verdict.leaks.length > 50) lines.push(`    … and ${verdict.leaks.length - 50} more (see --json)`);
  }
  if (verdict.unsolicitedInbound.length > 0) {
    // A neighbour knocking repeats itself: one line per flow, with its count.
    const flows = new Map<string, number>();
    for (const u of verdict.unsolicitedInbound) flows.set(u.reason, (flows.get(u.reason) ?? 0) + 1);
    lines.push('  unsolicited inbound (reported, not a leak):');
    for (const [reason, count] of [...flows].slice(0, 10)) lines.push(`    - ${reason}${count > 1 ? ` (×${count})` : ''}`);
    if (flows.size > 10) lines.push(`    … and ${flows.size - 10} more flow(s) (see --json)`);
  }
  for (const p of verdict.problems) lines.push(`  problem: ${p}`);
  for (const w of verdict.warnings) lines.push(`  note: ${w}`);
  return `${lines.join('\n')}\n`;
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function verifyCommand(ctx: CommandContext, flags: VerifyFlags): Promise<number> {
  if (flags.target !== undefined && !isIpAddress(flags.target)) {
    throw new UsageError(`--target: expected an IPv4 or IPv6 address, got "${flags.target}"`);
  }
  const durationS = flags.duration ?? DEFAULT_DURATION_S;
  const probeCount = flags.count ?? DEFAULT_COUNT;
  if (durationS > MAX_DURATION_S) throw new UsageError(`--duration: at most ${MAX_DURATION_S} seconds, got ${durationS}`);
  const neededS = probeCount * MIN_PROBE_INTERVAL_S + PROBE_REPLY_WAIT_S;
  if (durationS < neededS) {
    throw new UsageError(`--duration: ${probeCount} probe(s) need at least ${neededS} seconds of capture, got ${durationS} (or lower --count)`);
  }
  const { config } = loadControllerConfig(ctx);
  const durationMs = Math.round(durationS * 1000);
  const agents = openAgents(config, {
    timeoutMs: timeoutMs(ctx, durationMs / 1000 + VM_HEAD_START_MS / 1000 + 30),
    quickTimeoutMs: timeoutMs(ctx, QUICK_DEFAULT_TIMEOUT_S),
  });
  try {
    const connected = await connectBoth(agents.vm, agents.mac);
    const unusable = Object.values(connected.errors);
    if (unusable.length > 0 || !connected.vm) throw new CliError(`cannot verify: ${unusable.join('; ')}`);
    const vm = connected.vm;
    // Never a built-in public address: the probe goes to a resolver the user named (wgctl
    // config, then the VM's wg-quick DNS) or to --target.
    const target = flags.target ?? config.dns?.find(isIpAddress) ?? vm.dns.find(isIpAddress);
    if (!target) {
      throw new UsageError('--target: no default probe target (neither the wgctl config nor the VM\'s wg-quick config names a DNS server); pass --target IP');
    }

    if (!ctx.global.json) ctx.io.stdout.write(`verify: capturing for ${durationMs / 1000} s while probing ${target} ${probeCount} time(s)…\n`);
    const vmCapture = agents.vm.capture({ interface: '', durationMs: durationMs + 2 * VM_HEAD_START_MS, maxPackets: MAX_PACKETS, probeTarget: '', probeCount: 0 });
    const macCapture = delay(VM_HEAD_START_MS).then(() =>
      agents.mac.capture({ interface: '', durationMs, maxPackets: MAX_PACKETS, probeTarget: target, probeCount }),
    );
    // --allow-lan: what the Mac's kill switch lets through is not a leak (its status says which subnets).
    const lanSubnets = agents.mac.status().then((s) => (s.allowLan ? s.lanSubnets : []), () => []);
    const [vmResult, macResult] = await Promise.allSettled([vmCapture, macCapture]);
    const failures = [vmResult, macResult].filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failures.length > 0) {
      throw new CliError(`capture failed: ${failures.map((f) => (f.reason instanceof Error ? f.reason.message : String(f.reason))).join('; ')}`);
    }
    const mac = (macResult as PromiseFulfilledResult<CaptureResult>).value;
    const tunnel = (vmResult as PromiseFulfilledResult<CaptureResult>).value;
    const verdict = judgeVerify(mac, tunnel, vm.endpoints, vm.tunnelAddresses, target, await lanSubnets);
    if (ctx.global.json) {
      writeJson(ctx, { command: 'verify', target, endpoints: vm.endpoints, tunnelAddresses: vm.tunnelAddresses, ...verdict });
    } else {
      ctx.io.stdout.write(renderVerdict(verdict, target));
    }
    return verdict.pass ? EXIT.ok : EXIT.failed;
  } finally {
    agents.close();
  }
}
