/** `wgctl plan` / `up --dry-run`: Up with dry_run on both agents; prints every command, runs none. */
import type { CommandContext } from '../command-context';
import { EXIT } from '../errors';
import { PLAN_STEPS, plan } from '../orchestrator';
import { createProgress } from '../render/progress';
import { ipv6DecisionJson, renderPlan } from '../render/results';
import { QUICK_DEFAULT_TIMEOUT_S, openAgents, timeoutMs, writeJson } from './context';
import { UP_DEFAULT_TIMEOUT_S, upOptionsFor } from './up-options';

export async function planCommand(ctx: CommandContext, flags: { macSource?: string; exclude?: string[]; allowLan?: boolean }): Promise<number> {
  const { config, options, vmAddress } = await upOptionsFor(ctx, flags);
  const agents = openAgents(config, { timeoutMs: timeoutMs(ctx, UP_DEFAULT_TIMEOUT_S), quickTimeoutMs: timeoutMs(ctx, QUICK_DEFAULT_TIMEOUT_S), vmAddress });
  // The plan itself is the output; progress would only repeat it.
  const progress = createProgress({ mode: 'none', out: ctx.io.stdout, steps: PLAN_STEPS, stopOnFailure: true });
  try {
    const result = await plan(agents.vm, agents.mac, options, progress.onEvent);
    await progress.finish();
    if (ctx.global.json) writeJson(ctx, { command: 'plan', ...result, ipv6: ipv6DecisionJson(result.ipv6) });
    else if (result.ok) ctx.io.stdout.write(renderPlan(result));
    else {
      ctx.io.stdout.write(renderPlan(result));
      ctx.io.stderr.write(`wgctl plan: could not complete the dry run: ${result.failure?.message}\n`);
    }
    return result.ok ? EXIT.ok : EXIT.failed;
  } finally {
    agents.close();
  }
}
