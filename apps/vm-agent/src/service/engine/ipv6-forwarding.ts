/**
 * IPv6 forwarding for the Mac's IPv6 (mac_source6): net.ipv6.conf.all.forwarding, and the
 * trap that comes with it — with forwarding on, an interface whose accept_ra is 1 ignores
 * router advertisements, so the VM would lose its own RA-learnt IPv6 default route. accept_ra
 * 1 on the LAN interface becomes 2 first. Every previous value is journaled before its write;
 * the restore puts back only what still holds the value wgctl wrote.
 */
import type { Runner } from '@wgctl/runner';
import type { JournalRecord } from '../journal';
import { IPV6_FORWARDING, acceptRaName, restoreJournaledSysctl, type Sysctl } from '../../host/sysctl';

type V6Record = NonNullable<JournalRecord['v6']>;

/** Up's `ip6-forward` step. `record.v6` must be set; `persist` writes the journal (before each change). */
export async function enableIpv6Forwarding(
  runner: Runner,
  sysctl: Sysctl,
  record: JournalRecord,
  lanInterface: string,
  options: { dryRun: boolean; persist: (record: JournalRecord) => Promise<void> },
): Promise<string | { skipped: string }> {
  const v6 = record.v6!;
  const raName = acceptRaName(lanInterface);
  const forwarding = await sysctl.read(IPV6_FORWARDING, runner);
  const acceptRa = await sysctl.read(raName, runner);
  const done: string[] = [];
  // accept_ra first: forwarding must never be on while the LAN interface ignores RAs.
  if (acceptRa === '1') {
    if (options.dryRun) done.push(`would write 2 to ${sysctl.where(raName)} (now 1)`);
    else {
      v6.acceptRa = { interface: lanInterface, previous: v6.acceptRa?.previous ?? acceptRa, applied: '2' };
      await options.persist(record);
      await sysctl.write(raName, '2', runner);
      done.push(`${raName}: 1 → 2 (router advertisements still accepted while forwarding; ${v6.acceptRa.previous} is restored by Down)`);
    }
  }
  if (forwarding !== '1') {
    if (options.dryRun) done.push(`would write 1 to ${sysctl.where(IPV6_FORWARDING)} (now ${forwarding})`);
    else {
      v6.forwarding = { previous: v6.forwarding?.previous ?? forwarding, applied: '1' };
      await options.persist(record);
      await sysctl.write(IPV6_FORWARDING, '1', runner);
      done.push(`${IPV6_FORWARDING}: ${forwarding} → 1 (${v6.forwarding.previous} is restored by Down)`);
    }
  }
  if (done.length === 0) return { skipped: `${IPV6_FORWARDING} is already 1; ${raName} is ${acceptRa}` };
  return done.join('; ');
}

/** Down's (and rollback's) `ip6-forward` step: forwarding off first (fail closed), then accept_ra back. */
export async function restoreIpv6Forwarding(
  runner: Runner,
  sysctl: Sysctl,
  v6: V6Record,
  options: { dryRun: boolean },
): Promise<string | { skipped: string }> {
  const done: string[] = [];
  const restore = async (name: string, journaled: { previous: string; applied: string } | null): Promise<void> => {
    if (!journaled) return;
    const restored = await restoreJournaledSysctl(sysctl, runner, name, journaled, options.dryRun);
    if (restored.outcome !== 'already') done.push(restored.message);
  };
  await restore(IPV6_FORWARDING, v6.forwarding);
  if (v6.acceptRa) await restore(acceptRaName(v6.acceptRa.interface), v6.acceptRa);
  if (done.length === 0) return { skipped: `${IPV6_FORWARDING} and accept_ra: nothing of wgctl's to restore` };
  return done.join('; ');
}
