/** `wgctl up`: VM first (handshake awaited), then the Mac; roll back on failure. */
import { dirname } from 'node:path';
import type { CommandContext } from '../command-context';
import { EXIT } from '../errors';
import { lockConfigDir } from '../lock';
import { keepingVerdict, settlePortalState } from '../portal-state';
import { UP_STEPS, probeCaptivePortal, up } from '../orchestrator';
import { createProgress } from '../render/progress';
import { ipv6DecisionJson, portalWindowWarning, renderPortalResult, renderUpResult } from '../render/results';
import { QUICK_DEFAULT_TIMEOUT_S, configPath, controllerLogger, openAgents, progressMode, timeoutMs, writeJson } from './context';
import { planCommand } from './plan';
import { UP_DEFAULT_TIMEOUT_S, probeUrlFor, upOptionsFor } from './up-options';

export interface UpFlags {
  dryRun?: boolean;
  macSource?: string;
  /** Excluded for this run, besides the config's `exclude`. */
  exclude?: string[];
  /** --allow-lan for this run (the config's allowLan: every run). */
  allowLan?: boolean;
  /** The captive-portal probe's URL (plain http), asked when the handshake does not come; default: the config's portal.probeUrl. */
  portalProbeUrl?: string;
  /** `wgctl portal`: open a captive-portal sign-in window this long (seconds) while the handshake is awaited. */
  portalWindowS?: number;
}

export async function upCommand(ctx: CommandContext, flags: UpFlags): Promise<number> {
  if (flags.dryRun) return planCommand(ctx, { macSource: flags.macSource, exclude: flags.exclude, allowLan: flags.allowLan });
  const { config, options, vmAddress } = await upOptionsFor(ctx, flags);
  const probeUrl = probeUrlFor(config, flags.portalProbeUrl);
  const command = flags.portalWindowS ? 'portal' : 'up';
  if (flags.portalWindowS) options.portalWindowMs = Math.round(flags.portalWindowS * 1000);
  const logger = controllerLogger(ctx);
  // The VM's Up waits out the whole window: the call's deadline is the window's plus up's own.
  const defaultTimeoutS = UP_DEFAULT_TIMEOUT_S + (flags.portalWindowS ?? 0);
  const agents = openAgents(config, { timeoutMs: timeoutMs(ctx, defaultTimeoutS), quickTimeoutMs: timeoutMs(ctx, QUICK_DEFAULT_TIMEOUT_S), vmAddress });
  // One up/down at a time on this machine (the agents also refuse a second one: ABORTED).
  let lock: { release(): void };
  try {
    lock = lockConfigDir(dirname(configPath(ctx)), command, (line) => ctx.io.stderr.write(`${line}\n`));
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
    ctx.io.stderr.write(`\nwgctl ${command}: interrupted: finishing the current step, then rolling back (Ctrl-C again to quit now)\n`);
    return 'handled';
  });
  if (flags.portalWindowS) ctx.io.stderr.write(portalWindowWarning(flags.portalWindowS));
  try {
    const probePortal = () => probeCaptivePortal({ url: probeUrl });
    const probe = keepingVerdict(probePortal);
    const result = await up(agents.vm, agents.mac, { ...options, signal: abort.signal, probePortal: probe.probe }, (event) => {
      logger.debug('up event', { event });
      progress.onEvent(event);
    });
    await progress.finish();
    // `wgctl status` shows the portal (the agents never see the probe).
    await settlePortalState(dirname(configPath(ctx)), result.ok, probe.verdict(), new Date(), (line) => ctx.io.stderr.write(line));
    if (ctx.global.json) writeJson(ctx, { command, ...result, ipv6: ipv6DecisionJson(result.ipv6), vm: undefined, mac: undefined });
    else {
      const text = flags.portalWindowS ? renderPortalResult(result, flags.portalWindowS) : renderUpResult(result);
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
