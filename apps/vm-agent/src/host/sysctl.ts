/**
 * Kernel parameters (net.ipv4.ip_forward, …). The agent reads and writes /proc/sys directly:
 * no process per read, and the health sampler can look as often as it likes.
 *
 * RunnerSysctl does the same through `sysctl(8)` on a runner: for tests that drive a
 * network namespace from outside it (/proc/sys/net always shows the *caller's* namespace).
 */
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Runner } from '@wgctl/runner';

export const IP_FORWARD = 'net.ipv4.ip_forward';
export const IPV6_FORWARDING = 'net.ipv6.conf.all.forwarding';
/** accept_ra of an interface: 1 = accept RAs unless forwarding, 2 = accept them even when forwarding. */
export function acceptRaName(ifname: string): string {
  // sysctl names separate levels with dots: an interface name with a dot cannot be addressed so.
  if (ifname.includes('.')) throw new Error(`cannot address net.ipv6.conf.${ifname}.accept_ra: the interface name contains a dot`);
  return `net.ipv6.conf.${ifname}.accept_ra`;
}
/** Set to 1 by wg-quick for full-tunnel configs (and never restored by it). */
export const SRC_VALID_MARK = 'net.ipv4.conf.all.src_valid_mark';

const NAME = /^[a-z0-9_]+(\.[a-zA-Z0-9_-]+)+$/;

export interface Sysctl {
  /** The current value, trimmed. `runner` is the step's runner (used only by command-based implementations). */
  read(name: string, runner?: Runner): Promise<string>;
  write(name: string, value: string, runner?: Runner): Promise<void>;
  /** Where the value lives, for step messages. */
  where(name: string): string;
  /**
   * The current value read synchronously, where that costs no process and cannot block (a
   * /proc/sys file): for checks every second — ~15 µs of CPU instead of ~150 µs through
   * the thread pool. Absent: use read().
   */
  readNow?(name: string): string;
}

function checkName(name: string): void {
  if (!NAME.test(name)) throw new Error(`invalid sysctl name "${name}"`);
}

export class ProcSysctl implements Sysctl {
  constructor(private readonly root = '/proc/sys') {}

  where(name: string): string {
    checkName(name);
    return join(this.root, ...name.split('.'));
  }

  async read(name: string): Promise<string> {
    return (await readFile(this.where(name), 'utf8')).trim();
  }

  readNow(name: string): string {
    return readFileSync(this.where(name), 'utf8').trim();
  }

  async write(name: string, value: string): Promise<void> {
    await writeFile(this.where(name), `${value}\n`);
  }
}

export class RunnerSysctl implements Sysctl {
  constructor(private readonly runner: Runner) {}

  where(name: string): string {
    checkName(name);
    return `sysctl ${name}`;
  }

  async read(name: string, runner: Runner = this.runner): Promise<string> {
    checkName(name);
    return (await runner.run(['sysctl', '-n', name], { readOnly: true })).stdout.trim();
  }

  async write(name: string, value: string, runner: Runner = this.runner): Promise<void> {
    checkName(name);
    await runner.run(['sysctl', '-w', `${name}=${value}`]);
  }
}

/**
 * Puts back a value wgctl changed (journaled as previous → applied), unless it is back already or
 * someone else changed it since (then it is theirs: left as is). Down and rollback use it for
 * every sysctl the agent writes.
 */
export async function restoreJournaledSysctl(
  sysctl: Sysctl,
  runner: Runner,
  name: string,
  journaled: { previous: string; applied: string },
  dryRun: boolean,
): Promise<{ outcome: 'already' | 'foreign' | 'restored'; message: string }> {
  const current = await sysctl.read(name, runner);
  const { previous, applied } = journaled;
  if (current === previous) return { outcome: 'already', message: `${name} is already ${previous}` };
  if (current !== applied) return { outcome: 'foreign', message: `${name} is ${current}, set by someone else since: left as is` };
  if (dryRun) return { outcome: 'restored', message: `would write ${previous} to ${sysctl.where(name)} (now ${current})` };
  await sysctl.write(name, previous, runner);
  return { outcome: 'restored', message: `${name}: ${current} → ${previous} (restored)` };
}
