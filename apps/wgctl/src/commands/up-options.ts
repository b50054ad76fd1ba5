/**
 * What `wgctl up` and `wgctl plan` (= `up --dry-run`) send the agents: the Up options from the
 * config and the flags, and the default deadline of these long calls (down's as well).
 */
import { canonicalExcluded, excludedProblems, isIpAddress, MAX_EXCLUDED, probeUrlProblem, type WgctlConfig } from '@wgctl/config';
import { IPV6_MODE_BY_WORD } from '@wgctl/proto';
import type { CommandContext } from '../command-context';
import { UsageError } from '../errors';
import { sameHostTarget, localSourceAddress } from '../local-source';
import type { UpOptions } from '../orchestrator';
// The module itself, not the orchestrator's index: `up` loads the orchestrator once its Describes are sent.
import { DEFAULT_PROBE_URL } from '../orchestrator/portal-probe';
import { loadControllerConfig, vmAddressIp } from './context';

export const UP_DEFAULT_TIMEOUT_S = 120;

/**
 * The excluded CIDRs of this run: the config's and `--exclude`'s (this run only), checked as the
 * mac-agent checks them, and none covering the VM or a configured DNS server (exit 2, before
 * any agent is asked).
 */
function excludedFor(config: WgctlConfig, vmAddress: string, extra: readonly string[]): string[] {
  const keep = [
    { address: vmAddress, what: 'the VM\'s address' },
    { address: config.vm.address6, what: 'the VM\'s IPv6 address' },
    ...(config.dns ?? []).map((address) => ({ address, what: 'the DNS server' })),
  ];
  const problems = [...excludedProblems('exclude (config)', config.exclude ?? [], keep), ...excludedProblems('--exclude', extra, keep)];
  const all = problems.length ? [] : canonicalExcluded([...(config.exclude ?? []), ...extra]);
  if (all.length > MAX_EXCLUDED) problems.push(`exclude: ${all.length} CIDRs with --exclude, at most ${MAX_EXCLUDED}`);
  if (problems.length) throw new UsageError(problems.join('\n       '));
  return all;
}

/** The captive-portal probe's URL for this run: `--portal-probe-url`, else the config's `portal.probeUrl`, else Apple's. */
export function probeUrlFor(config: WgctlConfig, flag: string | undefined): string {
  if (flag === undefined) return config.portal?.probeUrl ?? DEFAULT_PROBE_URL;
  const problem = probeUrlProblem(flag);
  if (problem) throw new UsageError(`--portal-probe-url: ${problem}`);
  return flag;
}

export async function upOptionsFor(ctx: CommandContext, flags: { macSource?: string; exclude?: string[]; allowLan?: boolean }) {
  if (flags.macSource !== undefined && !isIpAddress(flags.macSource)) {
    throw new UsageError(`--mac-source: expected an IPv4 or IPv6 address, got "${flags.macSource}"`);
  }
  // ipv6 (auto/route/block) is decided at connect, once both agents are described (orchestrator decideIpv6).
  const { config } = loadControllerConfig(ctx);
  const vmAddress = await vmAddressIp(config);
  // Asked once: `up` starts it while the TLS handshakes run (the VM's Up may leave with it).
  let localSource: Promise<string | undefined> | undefined;
  const options: UpOptions = {
    vmAddress,
    vmAddress6: config.vm.address6,
    macSource: flags.macSource,
    dnsServers: config.dns,
    exclude: excludedFor(config, vmAddress, flags.exclude ?? []),
    // `up --allow-lan` turns it on for one run; the config's allowLan for every run.
    allowLan: Boolean(flags.allowLan || config.allowLan),
    handshakeTimeoutMs: config.handshakeTimeoutMs,
    // The config file's word, as the Ipv6Mode every later step uses.
    ipv6: config.ipv6 ? IPV6_MODE_BY_WORD[config.ipv6] : undefined,
    localSource: sameHostTarget(config.mac.agent) ? () => (localSource ??= localSourceAddress(vmAddress)) : undefined,
  };
  return { config, options, vmAddress };
}
