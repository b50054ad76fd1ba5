/** `wgctl up`: VM first (handshake awaited), then the Mac; roll back on failure. */
import { dirname } from 'node:path';
import type { LogLevel } from '@wgctl/logging';
import type { CommandContext } from '../command-context';
import { EXIT } from '../errors';
import { lockConfigDir } from '../lock';
import { type Agents, QUICK_DEFAULT_TIMEOUT_S, configPath, controllerLogLevel, controllerLogger, openAgents, progressMode, timeoutMs, writeJson } from './context';
import { UP_DEFAULT_TIMEOUT_S, probeUrlFor, upOptionsFor } from './up-options';

/* eslint-disable @typescript-eslint/no-require-imports -- loaded once the Describes are sent: see loadRest */
type Orchestrator = typeof import('../orchestrator');
type PortalState = typeof import('../portal-state');
type Progress = typeof import('../render/progress');
type Results = typeof import('../render/results');
type UpOptions = import('../orchestrator').UpOptions;

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
  if (flags.dryRun) {
    const { planCommand } = require('./plan') as typeof import('./plan');
    return planCommand(ctx, { macSource: flags.macSource, exclude: flags.exclude, allowLan: flags.allowLan });
  }
  const { config, options, vmAddress } = await upOptionsFor(ctx, flags);
  const probeUrl = probeUrlFor(config, flags.portalProbeUrl);
  const logLevel = controllerLogLevel(ctx);
  const command = flags.portalWindowS ? 'portal' : 'up';
  if (flags.portalWindowS) options.portalWindowMs = Math.round(flags.portalWindowS * 1000);
  // The VM's Up waits out the whole window: the call's deadline is the window's plus up's own.
  const defaultTimeoutS = UP_DEFAULT_TIMEOUT_S + (flags.portalWindowS ?? 0);
  // Both Describes leave as soon as their connections are up, before the rest of `up` is loaded.
  const agents = openAgents(config, {
    timeoutMs: timeoutMs(ctx, defaultTimeoutS),
    quickTimeoutMs: timeoutMs(ctx, QUICK_DEFAULT_TIMEOUT_S),
    vmAddress,
    describeNow: true,
  });
  // This host's source towards the VM, worked out while the handshakes run: with it the VM's Up
  // may leave before the Mac's Describe is in (orchestrator/connect.ts, sourceWithoutMac).
  void options.localSource?.();
  // One up/down at a time on this machine (the agents also refuse a second one: ABORTED).
  let lock: { release(): void };
  try {
    lock = lockConfigDir(dirname(configPath(ctx)), command, (line) => ctx.io.stderr.write(`${line}\n`));
  } catch (error) {
    agents.close();
    throw error;
  }
  // Ctrl-C: finish the step in flight, then roll back (a second Ctrl-C exits at once).
  const abort = new AbortController();
  const unregister = ctx.io.onInterrupt?.(() => {
    if (abort.signal.aborted) return 'exit';
    abort.abort();
    ctx.io.stderr.write(`\nwgctl ${command}: interrupted: finishing the current step, then rolling back (Ctrl-C again to quit now)\n`);
    return 'handled';
  });
  try {
    // The event loop stays free for the TLS and HTTP/2 set-up; the rest of `up` loads while the
    // agents work out their answers.
    await agents.connected();
    return await runUp(ctx, flags, { command, options, probeUrl, agents, logLevel, signal: abort.signal }, loadRest());
  } finally {
    unregister?.();
    agents.close();
    lock.release();
  }
}

/** The rest of `up`: the orchestrator, the renderers, the portal state (see upCommand). */
function loadRest(): { orchestrator: Orchestrator; portalState: PortalState; progress: Progress; results: Results } {
  return {
    orchestrator: require('../orchestrator') as Orchestrator,
    portalState: require('../portal-state') as PortalState,
    progress: require('../render/progress') as Progress,
    results: require('../render/results') as Results,
  };
}

interface UpRun {
  command: 'up' | 'portal';
  options: UpOptions;
  probeUrl: string;
  agents: Agents;
  logLevel: LogLevel;
  signal: AbortSignal;
}

async function runUp(ctx: CommandContext, flags: UpFlags, run: UpRun, modules: ReturnType<typeof loadRest>): Promise<number> {
  const { orchestrator, portalState, progress: progressModule, results } = modules;
  const { command, agents } = run;
  // Up's only records are its events, at debug: winston is loaded only to write them.
  const logger = run.logLevel === 'debug' ? controllerLogger(ctx) : undefined;
  const progress = progressModule.createProgress({ mode: progressMode(ctx), out: ctx.io.stdout, steps: orchestrator.UP_STEPS, stopOnFailure: true });
  if (flags.portalWindowS) ctx.io.stderr.write(results.portalWindowWarning(flags.portalWindowS));
  const probe = portalState.keepingVerdict(() => orchestrator.probeCaptivePortal({ url: run.probeUrl }));
  const result = await orchestrator.up(agents.vm, agents.mac, { ...run.options, signal: run.signal, probePortal: probe.probe }, (event) => {
    logger?.debug('up event', { event });
    progress.onEvent(event);
  });
  await progress.finish();
  // `wgctl status` shows the portal (the agents never see the probe).
  await portalState.settlePortalState(dirname(configPath(ctx)), result.ok, probe.verdict(), new Date(), (line) => ctx.io.stderr.write(line));
  if (ctx.global.json) writeJson(ctx, { command, ...result, ipv6: results.ipv6DecisionJson(result.ipv6), vm: undefined, mac: undefined });
  else {
    const text = flags.portalWindowS ? results.renderPortalResult(result, flags.portalWindowS) : results.renderUpResult(result);
    ctx.io.stdout.write(text.stdout);
    ctx.io.stderr.write(text.stderr);
  }
  return result.ok ? EXIT.ok : EXIT.failed;
}
