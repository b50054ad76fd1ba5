/**
 * A chatty neighbour on the Mac's café LAN, for tests that judge what the Mac's uplink
 * carries: a namespace `<prefix>-nbr` plugged into the café's LAN, sending mDNS, SSDP, IGMP/MLD
 * reports, router solicitations and ARP (./scripts CHATTY_NEIGHBOUR_JS) until stopped.
 *
 * The café LAN is a point-to-point veth (the access port holds the router's LAN addresses), so
 * while a neighbour is attached the café becomes a bridge `<prefix>-lan` (the topology's LAN
 * interface, with the access port's MAC so the Mac's neighbour cache stays right) holding those
 * addresses, with the access port and the neighbour's veth as ports. stop() puts it all back,
 * so roam() keeps working. Addresses: the LAN's base + 50 (documentation prefixes only).
 */
import { writeFileSync } from 'node:fs';
import ipaddr from 'ipaddr.js';
import { ExecRunner, spawnStreaming, type Runner, type StreamingProcess } from '@wgctl/runner';
import { accessPortLines, inNamespace } from './plan';
import { CHATTY_NEIGHBOUR_JS } from './scripts';
import type { Lab } from './topology';

export interface ChattyNeighbour {
  ns: string;
  interface: string;
  ipv4: string;
  ipv6: string;
  stop(): Promise<void>;
}

export interface ChattyNeighbourOptions {
  /** Milliseconds between rounds of chatter (default 250). */
  intervalMs?: number;
  /** Also send unicast UDP (port 9) to this address, e.g. the Mac's: traffic it did not ask for. */
  unicastTo?: string;
  runner?: Runner;
}

const HOST_OFFSET = 50;
const UNUSED_OFFSET = 60;

function offsetIp(cidr: string, offset: number): string {
  const [base] = ipaddr.parseCIDR(cidr);
  const bytes = base.toByteArray();
  bytes[bytes.length - 1] += offset;
  return ipaddr.fromByteArray(bytes).toString();
}

function ipBatch(ns: string, lines: string[]) {
  return { argv: ['ip', '-n', ns, '-batch', '-'], input: lines.join('\n') + '\n' };
}

/**
 * The router's neighbour entries for the Mac live on the device holding the LAN addresses, so
 * moving them (bridge in, bridge out) makes it resolve the Mac again. Done here, with one echo
 * each way the kill switch may drop, so that ARP/NS/NA exchange falls in no later capture.
 */
async function resolveMacFromRouter(lab: Lab, runner: Runner): Promise<void> {
  const cafe = lab.cafes[lab.state.macCafe];
  await Promise.all(
    [cafe.client.ipv4, cafe.client.ipv6].map((address) =>
      runner.run(inNamespace(cafe.ns, ['ping', '-n', '-c', '1', '-W', '1', address]), { allowFailure: true, readOnly: true }),
    ),
  );
}

/** Plugs a chatty neighbour into the café the Mac is in and starts its chatter. */
export async function startChattyNeighbour(lab: Lab, options: ChattyNeighbourOptions = {}): Promise<ChattyNeighbour> {
  const runner = options.runner ?? new ExecRunner();
  const cafe = lab.cafes[lab.state.macCafe];
  const ns = `${lab.prefix}-nbr`;
  const iface = `${lab.prefix}-nbr0`;
  const port = `${lab.prefix}-nbrp`;
  const bridge = cafe.lan.interface;
  const ipv4 = offsetIp(cafe.lan.subnet4, HOST_OFFSET);
  const ipv6 = offsetIp(cafe.lan.subnet6, HOST_OFFSET);
  const run = (c: { argv: string[]; input?: string }) => runner.run(c.argv, { input: c.input });

  const ap = JSON.parse((await runner.run(['ip', '-n', cafe.ns, '-j', 'link', 'show', 'dev', lab.mac.accessPort], { readOnly: true })).stdout) as { address: string }[];
  await run({ argv: ['ip', 'netns', 'add', ns] });
  // A host, not a router: it keeps soliciting routers (-1 = no limit, one a second) as no RA comes.
  await run({
    argv: inNamespace(ns, [
      'sysctl', '-q', '-w', 'net.ipv6.conf.default.accept_dad=0', 'net.ipv6.conf.default.router_solicitations=-1',
      'net.ipv6.conf.default.router_solicitation_interval=1', 'net.ipv6.conf.default.router_solicitation_max_interval=1',
    ]),
  });
  await run({ argv: ['ip', 'link', 'add', port, 'netns', cafe.ns, 'type', 'veth', 'peer', 'name', iface, 'netns', ns] });
  await run(
    ipBatch(cafe.ns, [
      `link add ${bridge} address ${ap[0].address} type bridge stp_state 0 forward_delay 0 mcast_snooping 0`,
      `addr del ${cafe.lan.ipv4}/${cafe.lan.prefix4} dev ${lab.mac.accessPort}`,
      `addr del ${cafe.lan.ipv6}/${cafe.lan.prefix6} dev ${lab.mac.accessPort}`,
      `link set ${lab.mac.accessPort} master ${bridge}`,
      `link set ${port} master ${bridge}`,
      `addr add ${cafe.lan.ipv4}/${cafe.lan.prefix4} dev ${bridge}`,
      `addr add ${cafe.lan.ipv6}/${cafe.lan.prefix6} dev ${bridge} nodad`,
      `link set ${port} up`,
      `link set ${bridge} up`,
    ]),
  );
  await run(
    ipBatch(ns, [
      'link set lo up',
      `addr add ${ipv4}/${cafe.lan.prefix4} dev ${iface}`,
      `addr add ${ipv6}/${cafe.lan.prefix6} dev ${iface} nodad`,
      `link set ${iface} up`,
    ]),
  );

  const script = `${lab.paths.bin}/chatty-neighbour.js`;
  writeFileSync(script, CHATTY_NEIGHBOUR_JS);
  const argv = [process.execPath, script, iface, ipv4, String(options.intervalMs ?? 250), offsetIp(cafe.lan.subnet4, UNUSED_OFFSET), ...(options.unicastTo ? [options.unicastTo] : [])];
  const chatter: StreamingProcess = spawnStreaming(inNamespace(ns, argv), { onLine: () => undefined });

  const stop = async () => {
    await chatter.stop(1_000);
    await runner.run(['ip', 'netns', 'del', ns], { allowFailure: true });
    await runner.run(['ip', '-n', cafe.ns, 'link', 'del', bridge], { allowFailure: true });
    await runner.run(['ip', '-n', cafe.ns, '-batch', '-'], { input: accessPortLines(lab, cafe.name).join('\n') + '\n' });
    await resolveMacFromRouter(lab, runner);
  };
  await resolveMacFromRouter(lab, runner);
  return { ns, interface: iface, ipv4, ipv6, stop };
}

/** Runs `fn` while a chatty neighbour talks on the Mac's café LAN (stopped however fn ends). */
export async function withChattyNeighbour<T>(lab: Lab, fn: (neighbour: ChattyNeighbour) => Promise<T>, options: ChattyNeighbourOptions = {}): Promise<T> {
  const neighbour = await startChattyNeighbour(lab, options);
  try {
    return await fn(neighbour);
  } finally {
    await neighbour.stop();
  }
}
