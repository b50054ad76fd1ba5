/**
 * Watching the PF kill switch while up. PF reports nothing (no routing-socket-like events for
 * its state or rules), so it is looked at periodically, as cheaply as the facts allow: two
 * pfctl reads side by side.
 *
 * - `pfctl -s References`: our `pfctl -E` token still listed. This covers PF being disabled:
 *   `pfctl -d` (DIOCSTOP) stops PF, zeroes the reference count and frees every token
 *   (xnu bsd/net/pf_ioctl.c: `pf_stop(); pf_enabled_ref_count = 0; invalidate_all_tokens();`),
 *   and PF cannot stop while our token holds a reference (DIOCSTOPREF stops it at count 0) —
 *   so "PF enabled" needs no `pfctl -s info` of its own.
 * - `pfctl -a ANCHOR -sr`: the anchor's rules equal to what the policy renders (a flush empties it).
 *
 * The main ruleset's `anchor "com.apple/*"` is not healable (it is never edited): Status and
 * the verify after a heal report it (readDarwinKillSwitch).
 */
import { normalizePfRuleset, parsePfReferences, parsePfRules } from '@wgctl/parsers';
import { readTogether, type Runner } from '@wgctl/runner';
import type { KillSwitchHandle, KillSwitchPolicy } from '../driver';
import type { KillSwitchWatch } from '../kill-switch-watch';
import { READ } from './common';
import { renderDarwinKillSwitch } from './pf';

export class DarwinKillSwitchWatch implements KillSwitchWatch {
  /** No events: looked at every second, so that a change is healed within 2 s. */
  readonly defaultCheckMs = 1_000;

  constructor(private readonly anchor: string) {}

  async quickCheck(run: Runner, policy: KillSwitchPolicy, handle: KillSwitchHandle | null): Promise<string> {
    const token = handle?.pfToken;
    const [references, anchorRead] = await readTogether([
      token ? run.run(['pfctl', '-s', 'References'], READ) : undefined,
      run.run(['pfctl', '-a', this.anchor, '-sr'], { readOnly: true, allowFailure: true }),
    ]);
    const problems: string[] = [];
    if (token && references && !parsePfReferences(references.stdout).some((r) => r.token === token)) {
      problems.push(`our PF reference (token ${token}) is gone: PF was disabled (pfctl -d) or the token released`);
    }
    // An anchor never created (or removed) cannot be listed: no rules.
    const live = anchorRead.exitCode === 0 ? parsePfRules(anchorRead.stdout).map((r) => r.text) : [];
    const wanted = normalizePfRuleset(renderDarwinKillSwitch(policy, this.anchor));
    if (live.length === 0) problems.push(`anchor ${this.anchor} has no rules (flushed)`);
    else if (JSON.stringify(live) !== JSON.stringify(wanted)) problems.push(`anchor ${this.anchor} differs from the policy (${live.length} rules, ${wanted.length} wanted)`);
    return problems.join('; ');
  }
}
