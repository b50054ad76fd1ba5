/**
 * What makes the vm-agent's health follow the tunnel within seconds rather than at the next
 * sampling interval: the tunnel found dead or alive again (liveness.ts) and link events of
 * the tunnel interface (link-watch.ts) each ask for a new health sample at once — link events
 * between operations. During an Up, Down or Heal the link events are that operation's own
 * (wg-quick alone makes several within ~50 ms), and every operation is sampled once it ends
 * (server.ts after the reply, run.ts after a heal or the start-up reconcile); a sample for each
 * of them only took CPU from wg-quick, on the Up's critical path. So they are sampled once they
 * have settled (LINK_SETTLE_MS), if the operation still runs then: an Up waiting for its
 * handshake (a captive portal's sign-in, up to its timeout) shows the interface up meanwhile.
 */
import type { Logger } from '@wgctl/logging';
import { spawnStreaming } from '@wgctl/runner';
import type { VmEngine } from './engine';
import { LinkWatch, type LinkWatchOptions } from './link-watch';

export interface TunnelWatch {
  stop(): Promise<void>;
}

/** Quiet time after an operation's last link event before it is sampled (a whole Up takes ~150 ms after wg-quick's first). */
export const LINK_SETTLE_MS = 200;

export function startTunnelWatch(
  engine: VmEngine,
  interfaceName: string,
  resample: () => void,
  logger: Logger,
  spawn: LinkWatchOptions['spawn'] = spawnStreaming,
): TunnelWatch {
  const links = new LinkWatch({
    spawn,
    interfaceName,
    logger,
    onEvent: (event) => {
      const during = engine.running?.op;
      logger.info(`link ${event.deleted ? 'deleted' : 'changed'}: ${event.ifname}${during ? ` (during ${during})` : ''}`, { flags: event.flags });
      clearTimeout(settling);
      settling = undefined;
      if (!during) return react();
      settling = setTimeout(() => {
        settling = undefined;
        if (engine.running) react();
      }, LINK_SETTLE_MS);
      settling.unref();
    },
  });
  let settling: NodeJS.Timeout | undefined;
  const react = (): void => {
    resample();
    engine.liveness.wake();
  };
  links.start();
  // Health changes only when the tunnel is found dead, or alive again: sampled then. The other
  // moves (a probe sent, its reply) Status and metrics show from the monitor (withLivenessNow).
  let deadBefore = false;
  engine.liveness.start((report) => {
    const dead = report.state === 'dead';
    if (dead === deadBefore) return;
    deadBefore = dead;
    resample();
  });
  return {
    async stop() {
      clearTimeout(settling);
      engine.liveness.stop();
      await links.stop();
    },
  };
}
