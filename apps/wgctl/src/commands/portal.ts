/**
 * `wgctl portal`: `wgctl up` with a captive-portal sign-in window. The Mac is made fail-closed
 * as by `up`, except that for at most `--duration` seconds its own web traffic (TCP 80/443, any
 * address) and DNS to the network's resolvers pass the kill switch (the mac-agent's
 * KillSwitchPolicy.portalWindow), with no routes via the VM yet (a kill-switch-only Up), so the
 * browser reaches the portal through the café. The VM waits for its handshake as long; once it
 * comes, the full Up replaces the kill switch (window closed). Timeout or Ctrl-C: rolled back.
 */
import type { CommandContext } from '../command-context';
import { EXIT, UsageError } from '../errors';
import { QUICK_DEFAULT_TIMEOUT_S, loadControllerConfig, openAgents, timeoutMs, writeJson } from './context';
import { upCommand, type UpFlags } from './up';

export const PORTAL_DEFAULT_S = 120;
/** The vm-agent waits at most 5 minutes for a handshake (and the mac-agent refuses longer windows). */
export const PORTAL_MAX_S = 300;

export interface PortalFlags extends Pick<UpFlags, 'macSource' | 'exclude' | 'allowLan'> {
  duration?: number;
  /** Close an open window now (from another terminal): the Mac stays fail-closed. */
  end?: boolean;
}

export function portalCommand(ctx: CommandContext, flags: PortalFlags): Promise<number> {
  if (flags.end) return endPortalWindow(ctx);
  const seconds = flags.duration ?? PORTAL_DEFAULT_S;
  if (!(seconds >= 1 && seconds <= PORTAL_MAX_S)) throw new UsageError(`--duration: ${seconds} s is not in 1..${PORTAL_MAX_S}`);
  return upCommand(ctx, { macSource: flags.macSource, exclude: flags.exclude, allowLan: flags.allowLan, portalWindowS: seconds });
}

/** `wgctl portal --end`: the mac-agent re-loads its kill switch without the window. */
async function endPortalWindow(ctx: CommandContext): Promise<number> {
  const { config } = loadControllerConfig(ctx);
  const agents = openAgents(config, { timeoutMs: timeoutMs(ctx, QUICK_DEFAULT_TIMEOUT_S) });
  try {
    const { closed } = await agents.mac.endPortalWindow();
    if (ctx.global.json) writeJson(ctx, { command: 'portal', end: true, closed });
    else {
      ctx.io.stdout.write(
        closed
          ? 'portal: the sign-in window is CLOSED: the Mac is fail-closed again (a running `wgctl portal` waits for the handshake until its deadline; Ctrl-C it to roll back)\n'
          : 'portal: no sign-in window was open\n',
      );
    }
    return EXIT.ok;
  } finally {
    agents.close();
  }
}
