/**
 * The end of a captive-portal sign-in window (`wgctl portal`, KillSwitchPolicy.portalWindow).
 * A window opens with a kill-switch-only Up and ends by whichever comes first: the full Up after
 * the handshake (its policy has no window), a Down (no kill switch), a restart (a re-assert
 * never re-opens one), or its deadline, here: the kill switch is re-loaded without it.
 */
import { ensureKillSwitch, messageOf, type EngineCore } from './core';

/** Until the close succeeds, it is tried again this often: the window must not outlive its deadline by much. */
export const PORTAL_CLOSE_RETRY_MS = 1_000;

/**
 * Closes the window with this deadline if it is still the open one. Returns false when there is
 * nothing to close (closed already, or another window opened since). Throws when the kill
 * switch cannot be re-loaded (the caller retries).
 */
export async function closePortalWindow(core: EngineCore, untilMs: number, why = 'at its deadline'): Promise<boolean> {
  const journal = core.loadJournal();
  const policy = journal.killSwitch?.policy;
  if (!policy?.portalWindow || policy.portalWindow.untilMs !== untilMs) return false;
  const { portalWindow: _closing, ...closed } = policy;
  if (journal.intent) delete journal.intent.portalWindowMs;
  await ensureKillSwitch(core.driver, core.runner, journal, closed, { readFirst: false, persist: () => core.persist(journal) });
  core.logger.warn(`captive-portal sign-in window closed ${why}: fail-closed again`, { untilMs });
  return true;
}

/** Schedules the close of the journal's open window at its deadline (retried until it succeeds); returns the timer. */
export function scheduleWindowClose(core: EngineCore, exclusive: <T>(fn: () => Promise<T>) => Promise<T>, onTimer: (t: NodeJS.Timeout) => void): void {
  const window = core.loadJournal().killSwitch?.policy.portalWindow;
  if (!window) return;
  const attempt = (delayMs: number) => {
    const timer = setTimeout(() => {
      exclusive(() => closePortalWindow(core, window.untilMs)).catch((e: unknown) => {
        core.logger.error('cannot close the sign-in window; retrying', { error: messageOf(e), retryMs: PORTAL_CLOSE_RETRY_MS });
        attempt(PORTAL_CLOSE_RETRY_MS);
      });
    }, delayMs);
    timer.unref();
    onTimer(timer);
  };
  attempt(Math.max(0, window.untilMs - core.now()));
}
