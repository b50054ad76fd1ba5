/**
 * `scutil` with `n.watch` (interactive, commands on stdin): configd's dynamic store reports each
 * change of a watched key. scutil.tproj/notifications.c (storeCallback) prints, per notification,
 *
 *   notification callback (store address = 0x7f8c2bd04a80).
 *     10:00:07.412 (+3.118) changedKey [0] = State:/Network/Global/DNS
 *
 * the time being `%2d:%02d:%02d.%03d` and the `(+s.mmm)` since the previous one absent the
 * first time. SCPrint flushes stdout after every line, so a pipe sees them at once.
 */

/** One key a notification names. */
export interface ScutilChangedKey {
  index: number;
  key: string;
}

// The time prefix is optional: older configd printed the key without it.
const CHANGED_KEY = /^\s*(?:\d{1,2}:\d{2}:\d{2}\.\d{3}\s+(?:\(\+\d+\.\d{3}\)\s+)?)?changed\s?key \[(\d+)\] = (\S.*)$/i;

/** The key a `changedKey [n] = KEY` line names; null for any other line (the callback banner, errors). */
export function parseScutilChangedKey(line: string): ScutilChangedKey | null {
  const m = CHANGED_KEY.exec(line.replace(/\s+$/, ''));
  return m ? { index: Number(m[1]), key: m[2] } : null;
}
