/**
 * The linux kill switch holds on EVERY interface, not only the uplink (network namespaces,
 * prefix `wtk`, documentation addresses only):
 *
 *   wtk-r1 (uplink router + "WireGuard server")         wtk-host (the "Mac")                 wtk-r2 (a second network)
 *     wtkr1 192.0.2.1/26, 203.0.113.10 on lo ───────── wtkup 192.0.2.2/26 (the uplink)
 *                                                      wtk2nd 203.0.113.130/26 ─────────── wtkr2 203.0.113.129/26, 2001:db8:2::1
 *                                                        2001:db8:2::2                        198.51.100.20 on lo
 *                                                      wtkvn 192.0.2.129/29 (the vnic)
 *                                                        │
 *                                                      wtk-vm: wtkvm 192.0.2.130/29 (default via the host)
 *
 * The host's default is on wtkup; wtk2nd is a second connected interface with a route of its
 * own (a second default with a higher metric, 198.51.100.0/24, and source routing for its
 * address): what a second Wi-Fi/Ethernet, a tether or the interface roamed away from is. The
 * hypervisor's masquerade lives in a table of its own (`ip hypervisor`), as in the lab.
 */
import { randomBytes } from 'node:crypto';
import { ExecRunner, spawnStreaming, type StreamingProcess } from '@wgctl/runner';
import type { KillSwitchPolicy } from '../driver';
import { LinuxDriver } from '../linux';
import { NetnsRunner, netnsTestsEnabled, startNetnsCapture } from '../../testing/lab';

const describeNetns = netnsTestsEnabled() ? describe : describe.skip;
jest.setTimeout(60_000);

const SERVER = '203.0.113.10';
const PORT = 51820;
const ELSEWHERE = '198.51.100.20'; // reachable only through the second interface
const SECOND_SRC = '203.0.113.130';
const SECOND_GW6 = '2001:db8:2::1';
const IF = { up: 'wtkup', second: 'wtk2nd', vnic: 'wtkvn', vm: 'wtkvm', r1: 'wtkr1', r2: 'wtkr2' } as const;

/** UDP echo bound to the server's address (so its replies come from it, not from the router's). */
const ECHO = `
const s = require('dgram').createSocket('udp4');
s.on('message', (m, r) => s.send(m, r.port, r.address));
s.bind(Number(process.argv[2]), process.argv[1], () => console.log('listening'));`;

/** One datagram (optionally from a bound source address); prints `reply` or `no-reply`/`error CODE`. */
const UDP_PROBE = `
const [host, port, bind] = [process.argv[1], Number(process.argv[2]), process.argv[3]];
const s = require('dgram').createSocket('udp4');
const end = (what) => { console.log(what); try { s.close(); } catch {} ; process.exit(0); };
s.on('message', () => end('reply'));
s.on('error', (e) => end('error ' + e.code));
s.bind(0, bind || undefined, () => { s.send('probe', port, host); setTimeout(() => end('no-reply'), 700); });`;

describeNetns('linux kill switch: fail-closed on every interface (a second uplink, the VM routed out of it)', () => {
  const id = randomBytes(2).toString('hex');
  const ns = { host: `wtk-host-${id}`, r1: `wtk-r1-${id}`, r2: `wtk-r2-${id}`, vm: `wtk-vm-${id}` };
  const root = new ExecRunner();
  const run = (name: string) => new NetnsRunner(name, root);
  const sh = (name: string, ...argv: string[]) => run(name).run(argv);
  const processes = new Set<StreamingProcess>();
  const driver = new LinuxDriver({ nftTable: 'wgctl' });
  const policy: KillSwitchPolicy = { uplink: IF.up, endpoints: [{ ip: SERVER, port: PORT }], vnic: IF.vnic, vmAddress: '192.0.2.130', allowDhcp6: false, blockIpv6: true };

  const udp = async (name: string, host: string, port: number, bind?: string) =>
    (await run(name).run([process.execPath, '-e', UDP_PROBE, host, String(port), ...(bind ? [bind] : [])], { timeoutMs: 5_000 })).stdout.trim();
  const ping = async (name: string, ...args: string[]) =>
    (await run(name).run(['ping', '-n', '-c', '1', '-W', '0.5', ...args], { allowFailure: true, timeoutMs: 5_000 })).exitCode === 0;

  /** tcpdump on the host's second interface; `stop` returns what the HOST sent there (its MAC). */
  const capture = async (iface: string) => {
    const c = await startNetnsCapture(ns.host, iface, processes);
    return async () => (await c.stop()).filter((p) => p.srcMac === c.mac && p.family !== 'arp');
  };

  /** Everything that must not leave by the second interface, from the host and from the VM. */
  const leakAttempts = async () => ({
    pingBound: await ping(ns.host, '-I', IF.second, ELSEWHERE), // SO_BINDTODEVICE
    ping6Bound: await ping(ns.host, '-6', '-I', IF.second, SECOND_GW6),
    udpBound: await udp(ns.host, ELSEWHERE, 5353, SECOND_SRC), // source-routed out of the second interface
    udpRouted: await udp(ns.host, ELSEWHERE, 5353), // the main table routes 198.51.100.0/24 there
    vmUdp: await udp(ns.vm, ELSEWHERE, 5353), // forwarded, routed out of the second interface
    vmPing: await ping(ns.vm, ELSEWHERE),
  });

  beforeAll(async () => {
    try {
      for (const name of Object.values(ns)) {
        await root.run(['ip', 'netns', 'add', name]);
        await sh(name, 'ip', 'link', 'set', 'lo', 'up');
      }
      const veth = (a: string, nsA: string, b: string, nsB: string) => root.run(['ip', 'link', 'add', a, 'netns', nsA, 'type', 'veth', 'peer', 'name', b, 'netns', nsB]);
      await veth(IF.up, ns.host, IF.r1, ns.r1);
      await veth(IF.second, ns.host, IF.r2, ns.r2);
      await veth(IF.vnic, ns.host, IF.vm, ns.vm);
      const addr = (name: string, dev: string, cidr: string) => sh(name, 'ip', 'addr', 'add', cidr, 'dev', dev, ...(cidr.includes(':') ? ['nodad'] : []));
      await addr(ns.r1, IF.r1, '192.0.2.1/26');
      await addr(ns.r1, 'lo', `${SERVER}/32`);
      await addr(ns.r2, IF.r2, '203.0.113.129/26');
      await addr(ns.r2, IF.r2, `${SECOND_GW6}/64`);
      await addr(ns.r2, 'lo', `${ELSEWHERE}/32`);
      await addr(ns.host, IF.up, '192.0.2.2/26');
      await addr(ns.host, IF.second, `${SECOND_SRC}/26`);
      await addr(ns.host, IF.second, '2001:db8:2::2/64');
      await addr(ns.host, IF.vnic, '192.0.2.129/29');
      await addr(ns.vm, IF.vm, '192.0.2.130/29');
      for (const [name, dev] of [[ns.r1, IF.r1], [ns.r2, IF.r2], [ns.host, IF.up], [ns.host, IF.second], [ns.host, IF.vnic], [ns.vm, IF.vm]]) {
        await sh(name, 'ip', 'link', 'set', dev, 'up');
      }
      await sh(ns.r1, 'ip', 'route', 'add', 'default', 'via', '192.0.2.2');
      await sh(ns.r2, 'ip', 'route', 'add', 'default', 'via', SECOND_SRC);
      await sh(ns.host, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
      await sh(ns.host, 'ip', 'route', 'add', 'default', 'via', '192.0.2.1', 'dev', IF.up);
      await sh(ns.host, 'ip', 'route', 'add', 'default', 'via', '203.0.113.129', 'dev', IF.second, 'metric', '500');
      await sh(ns.host, 'ip', 'route', 'add', '198.51.100.0/24', 'via', '203.0.113.129', 'dev', IF.second);
      await sh(ns.host, 'ip', 'route', 'add', 'default', 'via', '203.0.113.129', 'dev', IF.second, 'table', '100');
      await sh(ns.host, 'ip', 'rule', 'add', 'from', SECOND_SRC, 'lookup', '100');
      await run(ns.host).run(['nft', '-f', '-'], {
        input: `table ip hypervisor {\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\tip saddr 192.0.2.128/29 oifname != "${IF.vnic}" masquerade\n\t}\n}\n`,
      });
      await sh(ns.vm, 'ip', 'route', 'add', 'default', 'via', '192.0.2.129');
      let listening!: () => void;
      const started = new Promise<void>((resolve) => (listening = resolve));
      const echo = spawnStreaming(['ip', 'netns', 'exec', ns.r1, process.execPath, '-e', ECHO, SERVER, String(PORT)], { onLine: (l) => l === 'listening' && listening() });
      processes.add(echo);
      await started;
    } catch (e) {
      await cleanup();
      throw e;
    }
  });

  const cleanup = async () => {
    await Promise.all([...processes].map((p) => p.stop(500)));
    for (const name of Object.values(ns)) await root.run(['ip', 'netns', 'del', name], { allowFailure: true });
  };
  afterAll(cleanup);

  it('control, without the kill switch: the second interface does carry all of it (so the capture can see leaks)', async () => {
    const stop = await capture(IF.second);
    const results = await leakAttempts();
    const sent = await stop();
    expect(results).toMatchObject({ pingBound: true, ping6Bound: true, udpRouted: 'no-reply', vmPing: true });
    expect(sent.some((p) => p.protocol === 'icmp' && p.dst === ELSEWHERE && p.src === SECOND_SRC)).toBe(true);
    expect(sent.some((p) => p.family === 'ip6')).toBe(true);
    expect(sent.filter((p) => p.protocol === 'udp' && p.dst === ELSEWHERE && p.dstPort === 5353).length).toBeGreaterThanOrEqual(3); // bound, routed, the VM's
  });

  it('with the kill switch loaded for the uplink, nothing leaves by the second interface; UDP to the server still works, the VM\'s NATed too', async () => {
    await driver.loadKillSwitch(run(ns.host), policy);
    const status = await driver.readKillSwitch(run(ns.host), policy);
    expect(status).toMatchObject({ loaded: true, enabled: true, interface: IF.up, problems: [] });
    expect(status.rules.join('\n')).not.toContain(IF.up);

    const stop = await capture(IF.second);
    const results = await leakAttempts();
    // The allowed flow, from the host and from the VM (masqueraded out of the uplink).
    const hostToServer = await udp(ns.host, SERVER, PORT);
    const vmToServer = await udp(ns.vm, SERVER, PORT);
    const sent = await stop();

    expect(sent.map((p) => p.line)).toEqual([]); // tcpdump on the second interface stays clean
    expect(results.pingBound).toBe(false);
    expect(results.ping6Bound).toBe(false);
    expect(results.vmPing).toBe(false);
    for (const udpResult of [results.udpBound, results.udpRouted, results.vmUdp]) expect(udpResult).not.toBe('reply');
    expect(hostToServer).toBe('reply');
    expect(vmToServer).toBe('reply');
    // Still fail-closed on the uplink itself: only the server's port passes there.
    expect(await udp(ns.host, SERVER, 9999)).not.toBe('reply');
    expect(await ping(ns.host, SERVER)).toBe(false);
  });

  it('a UDP flow to the server may leave by the second interface too (the rules do not depend on which one is the uplink)', async () => {
    const stop = await capture(IF.second);
    await udp(ns.host, SERVER, PORT, SECOND_SRC); // source-routed out of wtk2nd; r2 has no route to the server, so no reply
    await udp(ns.host, SERVER, 9999, SECOND_SRC);
    const sent = await stop();
    expect(sent.map((p) => `${p.protocol} ${p.dst}:${p.dstPort}`)).toEqual([`udp ${SERVER}:${PORT}`]);
    await driver.unloadKillSwitch(run(ns.host), {});
    expect((await driver.readKillSwitch(run(ns.host))).loaded).toBe(false);
  });
});
