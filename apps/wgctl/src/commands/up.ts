/** `wgctl up`: VM first (handshake awaited), then the Mac; roll back on failure. */
import { dirname } from 'node:path';
import { isIpAddress } from '@wgctl/config';
import type { CommandContext } from '../cli';
import { EXIT, UsageError } from '../errors';
import { sameHostTarget, localSourceAddress } from '../local-source';
import { lockConfigDir } from '../lock';
import { type UpOptions, UP_STEPS, up } from '../orchestrator';
import { createProgress } from '../render/progress';
import { renderUpResult } from '../render/results';
import { QUICK_DEFAULT_TIMEOUT_S, configPath, controllerLogger, loadControllerConfig, openAgents, progressMode, timeoutMs, vmAddressIp, writeJson } from './context';
import { planCommand } from './plan';

export const UP_DEFAULT_TIMEOUT_S = 120;

const IPV6_MODE_NUMBER = { auto: 0, route: 1, block: 2 } as const;

export interface UpFlags {
  dryRun?: boolean;
  macSource?: string;
}

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
    ipv6: config.ipv6 ? IPV6_MODE_NUMBER[config.ipv6] : undefined,
    localSource: sameHostTarget(config.mac.agent) ? () => localSourceAddress(vmAddress) : undefined,
  };
  return { config, options, vmAddress };
}

export async function upCommand(ctx: CommandContext, flags: UpFlags): Promise<number> {
  if (flags.dryRun) return planCommand(ctx, { macSource: flags.macSource });
  const { config, options, vmAddress } = await upOptionsFor(ctx, flags);
  const logger = controllerLogger(ctx);
  const agents = openAgents(config, { timeoutMs: timeoutMs(ctx, UP_DEFAULT_TIMEOUT_S), quickTimeoutMs: timeoutMs(ctx, QUICK_DEFAULT_TIMEOUT_S), vmAddress });
  // One up/down at a time on this machine (the agents also refuse a second one: ABORTED).
  let lock: { release(): void };
  try {
    lock = lockConfigDir(dirname(configPath(ctx)), 'up', (line) => ctx.io.stderr.write(`${line}\n`));
  } catch (error) {
    agents.close();
    throw error;
  }
  const progress = createProgress({ mode: progressMode(ctx), out: ctx.io.stdout, steps: UP_STEPS, stopOnFailure: true });

  // Ctrl-C: finish the step in flight, then roll back (a second Ctrl-C exits at once).
  const abort = new AbortController();
  const unregister = ctx.io.onInterrupt?.(() => {
    if (abort.signal.aborted) return 'exit';
    abort.abort();
    ctx.io.stderr.write('\nwgctl up: interrupted: finishing the current step, then rolling back (Ctrl-C again to quit now)\n');
    return 'handled';
  });
  try {
    const result = await up(agents.vm, agents.mac, { ...options, signal: abort.signal }, (event) => {
      logger.debug('up event', { event });
      progress.onEvent(event);
    });
    await progress.finish();
    if (ctx.global.json) writeJson(ctx, { command: 'up', ...result, vm: undefined, mac: undefined });
    else {
      const text = renderUpResult(result);
      ctx.io.stdout.write(text.stdout);
      ctx.io.stderr.write(text.stderr);
    }
    return result.ok ? EXIT.ok : EXIT.failed;
  } finally {
    unregister?.();
    agents.close();
    lock.release();
  }
}
