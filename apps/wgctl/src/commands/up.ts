/** `wgctl up`: VM first (handshake awaited), then the Mac; roll back on failure. */
import { dirname } from 'node:path';
import type { CommandContext } from '../command-context';
import { EXIT } from '../errors';
import { lockConfigDir } from '../lock';
import { UP_STEPS, up } from '../orchestrator';
import { createProgress } from '../render/progress';
import { ipv6DecisionJson, renderUpResult } from '../render/results';
import { QUICK_DEFAULT_TIMEOUT_S, configPath, controllerLogger, openAgents, progressMode, timeoutMs, writeJson } from './context';
import { planCommand } from './plan';
import { UP_DEFAULT_TIMEOUT_S, upOptionsFor } from './up-options';

export interface UpFlags {
  dryRun?: boolean;
  macSource?: string;
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
    if (ctx.global.json) writeJson(ctx, { command: 'up', ...result, ipv6: ipv6DecisionJson(result.ipv6), vm: undefined, mac: undefined });
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
