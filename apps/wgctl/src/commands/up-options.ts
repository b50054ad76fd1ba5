/**
 * What `wgctl up` and `wgctl plan` (= `up --dry-run`) send the agents: the Up options from the
 * config and the flags, and the default deadline of these long calls (down's as well).
 */
import { isIpAddress } from '@wgctl/config';
import { IPV6_MODE_BY_WORD } from '@wgctl/proto';
import type { CommandContext } from '../command-context';
import { UsageError } from '../errors';
import { sameHostTarget, localSourceAddress } from '../local-source';
import type { UpOptions } from '../orchestrator';
import { loadControllerConfig, vmAddressIp } from './context';

export const UP_DEFAULT_TIMEOUT_S = 120;

export async function upOptionsFor(ctx: CommandContext, flags: { macSource?: string }) {
  if (flags.macSource !== undefined && !isIpAddress(flags.macSource)) {
    throw new UsageError(`--mac-source: expected an IPv4 or IPv6 address, got "${flags.macSource}"`);
  }
  // ipv6 (auto/route/block) is decided at connect, once both agents are described (orchestrator decideIpv6).
  const { config } = loadControllerConfig(ctx);
  const vmAddress = await vmAddressIp(config);
  const options: UpOptions = {
    vmAddress,
    vmAddress6: config.vm.address6,
    macSource: flags.macSource,
    dnsServers: config.dns,
    handshakeTimeoutMs: config.handshakeTimeoutMs,
    // The config file's word, as the Ipv6Mode every later step uses.
    ipv6: config.ipv6 ? IPV6_MODE_BY_WORD[config.ipv6] : undefined,
    localSource: sameHostTarget(config.mac.agent) ? () => localSourceAddress(vmAddress) : undefined,
  };
  return { config, options, vmAddress };
}
