/**
 * DNS read and written ahead of the Up's dns step: a kill-switch-only Up reads (and where the
 * driver can, writes) DNS for the full Up that follows the handshake; that full Up's discover
 * takes the read, and its dns step takes or removes what was written. Apart from up.ts because
 * discover (up-discovery.ts) needs the read as well.
 */
import type { Runner } from '@wgctl/runner';
import type { DnsContext, DnsSnapshot } from '../host/driver';
import { watchFilesForChange } from '../host/dns-watch';
import type { UpContext } from './up-context';

/**
 * DNS as it is now, for the dns step: as the kill-switch-only Up read it when the files it comes
 * from are unchanged since (readDnsForFullUp), else read beside the routing table (one round of
 * reads fewer after the handshake). Only DNS is read here; nothing of ours changes DNS before the
 * dns step. Undefined when the Up sets no DNS or the previous Up's interfaces are not known.
 */
export function readDnsAhead(up: UpContext, r: Runner): Promise<DnsSnapshot> | undefined {
  const context = previousDnsContext(up);
  if (!context) return undefined;
  const ahead = takeDnsReadAhead(up);
  return ahead ? Promise.resolve(ahead) : up.driver.readDns(r, context);
}

/**
 * What the kill-switch-only Up read of DNS (readDnsForFullUp), while the files it came from are
 * unchanged since and the interfaces are the same; undefined otherwise (nothing is read here).
 */
export function takeDnsReadAhead(up: UpContext): DnsSnapshot | undefined {
  const context = previousDnsContext(up);
  const ahead = up.dnsReadAhead;
  if (!context || !ahead || ahead.watch.changed || ahead.context.uplink !== context.uplink || ahead.context.vnic !== context.vnic) return undefined;
  return ahead.snapshot;
}

function previousDnsContext(up: UpContext): DnsContext | undefined {
  const { uplink, vnic } = up.previous;
  if (up.intent.dnsServers.length === 0 || !uplink || !vnic) return undefined;
  return { uplink: uplink.interface, vnic: vnic.interface };
}

/**
 * A kill-switch-only Up reads DNS for the full Up that follows: this Up runs while the VM's
 * tunnel comes up, that one after the handshake, where every process counts. Kept with a watch
 * on the files it comes from, set up before the read so that no change in between is missed;
 * the full Up reads again if one changed. Only for drivers whose DNS lives in files (a dnsWatch
 * of files alone) and a resolv.conf that is no symlink (its target is not watched); a failed
 * read is left to the full Up. Where the driver can (prepareDns), what the full Up will write
 * is written ahead too (journaled by writeAhead): that Up then only renames it into place, and
 * writes it anew if its DNS differs from what was prepared.
 */
export async function readDnsForFullUp(up: UpContext, r: Runner): Promise<string> {
  const files = dnsFilesForFullUp(up);
  const watch = files && watchFilesForChange(files);
  const context: DnsContext = { uplink: up.uplink.interface, vnic: up.vnic.interface };
  const snapshot = watch ? await up.driver.readDns(r, context).catch(() => undefined) : undefined;
  if (!watch || !snapshot || snapshot.resolvConfLink) {
    watch?.close();
    await discardPreparedDns(up, r);
    return '';
  }
  const prepared = up.journal.dnsPrepared ? await up.driver.prepareDns?.(r, up.intent.dnsServers, snapshot).catch(() => undefined) : undefined;
  up.core.keepDnsReadAhead({ snapshot, context, watch, prepared });
  return prepared ? '; DNS read and written ahead for it' : '; DNS read for it';
}

/** The files DNS lives in when this kill-switch-only Up reads DNS for the full Up (readDnsForFullUp), else undefined. */
export function dnsFilesForFullUp(up: UpContext): string[] | undefined {
  const watched = up.driver.dnsWatch?.();
  if (up.dryRun || up.mode !== 'request' || !up.intent.killSwitchOnly || up.intent.dnsServers.length === 0 || !watched?.files?.length || watched.monitor) return undefined;
  return watched.files;
}

/** What a kill-switch-only Up wrote ahead for DNS (journaled: dnsPrepared) and nothing will take: removed. */
async function discardPreparedDns(up: UpContext, r: Runner): Promise<void> {
  if (!up.journal.dnsPrepared || up.dryRun) return;
  await up.driver.discardPreparedDns?.(r);
  delete up.journal.dnsPrepared;
  up.persist();
}

/** The dns step sets no DNS: what was written ahead for it goes (the journal's flag with the Up's last write). */
export async function removeDnsWrittenAhead(up: UpContext, r: Runner): Promise<void> {
  if (up.journal.dnsPrepared && !up.dryRun) await up.driver.discardPreparedDns?.(r);
}
