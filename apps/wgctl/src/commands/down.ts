/** `wgctl down`: Mac first, then the VM; an unreachable agent does not stop the other side. */
import { dirname } from 'node:path';
import type { CommandContext } from '../command-context';
import { EXIT } from '../errors';
import { lockConfigDir } from '../lock';
import { DOWN_STEPS, down, type DownResult } from '../orchestrator';
import { createProgress } from '../render/progress';
import { renderDownResult } from '../render/results';
import { QUICK_DEFAULT_TIMEOUT_S, controllerLogger, loadControllerConfig, openAgents, progressMode, timeoutMs, vmAddressIp, writeJson } from './context';
import { UP_DEFAULT_TIMEOUT_S } from './up-options';

export async function downCommand(ctx: CommandContext, flags: { dryRun?: boolean; force?: boolean }): Promise<number> {
  const { config, path } = loadControllerConfig(ctx);
  const logger = controllerLogger(ctx);
  const agents = openAgents(config, { timeoutMs: timeoutMs(ctx, UP_DEFAULT_TIMEOUT_S), quickTimeoutMs: timeoutMs(ctx, QUICK_DEFAULT_TIMEOUT_S) });
  // One up/down at a time on this machine; a dry run changes nothing and needs no lock.
  let lock: { release(): void } = { release: () => undefined };
  try {
    if (!flags.dryRun) lock = lockConfigDir(dirname(path), 'down', (line) => ctx.io.stderr.write(`${line}\n`));
  } catch (error) {
    agents.close();
    throw error;
  }
  const progress = createProgress({ mode: progressMode(ctx), out: ctx.io.stdout, steps: DOWN_STEPS, stopOnFailure: false });
  try {
    const vmAddresses = { vmAddress: await vmAddressIp(config).catch(() => ''), vmAddress6: config.vm.address6 ?? '' };
    const result = await down(agents.vm, agents.mac, { dryRun: flags.dryRun, forceInterfaceDown: flags.force, ...vmAddresses, exclude: config.exclude ?? [] }, (event) => {
      logger.debug('down event', { event });
      progress.onEvent(event);
    });
    await progress.finish();
    if (ctx.global.json) writeJson(ctx, { command: 'down', ...result });
    else {
      const text = renderDownResult(result, !!flags.dryRun);
      ctx.io.stdout.write(text.stdout);
      ctx.io.stderr.write(text.stderr);
    }
    return downExitCode(result);
  } finally {
    agents.close();
    lock.release();
  }
}

/**
 * Failed: 1. Done but with settings not restored (a lost journal): 3, not 0 — the host is not as
 * it was before `up`, and a script must be able to tell that from a clean Down.
 */
export function downExitCode(result: DownResult): number {
  if (!result.ok) return EXIT.failed;
  return result.notRestored.length > 0 ? EXIT.notRestored : EXIT.ok;
}
