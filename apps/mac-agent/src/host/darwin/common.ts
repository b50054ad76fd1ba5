/** What the parts of the macOS driver share: the read-only run options, the address family, the exit check. */
import { CommandError, type RunResult } from '@wgctl/runner';

export const READ = { readOnly: true } as const;

export type Family = 'inet' | 'inet6';

export function familyOf(address: string): Family {
  return address.includes(':') ? 'inet6' : 'inet';
}

export function checkExit(result: RunResult): void {
  if (result.exitCode !== 0 && !result.dryRun) throw new CommandError(result);
}
