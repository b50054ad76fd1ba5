/**
 * The linux kill switch with a captive-portal sign-in window (`wgctl portal`), for real
 * (network namespaces, prefix `wtp`, documentation addresses only): the host may resolve with
 * the uplink's resolver and open TCP 80/443 anywhere, nothing else; nobody may open a flow to
 * the host from those ports; the read-back matches the policy (nft's own printing); and the
 * same driver without the window blocks all of it again.
 *
 *   wtp-host: wtpup 192.0.2.2/26 ───── wtp-r: wtpr 192.0.2.1/26 (the café's router and resolver)
 *                                             203.0.113.80 on lo (any web host)
 */
import { randomBytes } from 'node:crypto';
import { ExecRunner, spawnStreaming, type StreamingProcess } from '@wgctl/runner';
import type { KillSwitchPolicy } from '../driver';
import { LinuxDriver } from '../linux';
import { NetnsRunner, netnsTestsEnabled } from '../../testing/lab';

const describeNetns = netnsTestsEnabled() ? describe : describe.skip;
jest.setTimeout(60_000);

const RESOLVER = '192.0.2.1';
const WEB = '203.0.113.80';
const HOST = '192.0.2.2';

/** TCP listeners on 22, 80, 443, 8080 and a UDP echo on 443 (QUIC), on argv[1]'s address; a UDP echo on 53 on every address. */
const SERVERS = `
const net = require('net'), dgram = require('dgram');
// A probe resets its connection at once: ignore that, or the server dies of it.
const address = process.argv[1]; // leaves the other addresses' ports free for a probe's own local port
for (const port of [22, 80, 443, 8080]) net.createServer((c) => { c.on('error', () => {}); c.end('hello ' + port + '\\n'); }).listen(port, address);
for (const [port, at] of [[53, undefined], [443, address]]) { const s = dgram.createSocket('udp4'); s.on('message', (m, r) => s.send(m, r.port, r.address)); s.bind(port, at); }
setTimeout(() => console.log('listening'), 100);`;

/** TCP connect (optionally from a fixed local address and port); prints `connected`, `timeout` or `error CODE`. */
const TCP_PROBE = `
const [host, port, localAddress, localPort] = [process.argv[1], Number(process.argv[2]), process.argv[3], process.argv[4]];
const c = require('net').connect({ host, port, localAddress, localPort: localPort ? Number(localPort) : undefined });
const end = (what) => { console.log(what); c.destroy(); process.exit(0); };
c.on('connect', () => end('connected'));
c.on('error', (e) => end('error ' + e.code));
setTimeout(() => end('timeout'), 700);`;

const UDP_PROBE = `
const [host, port] = [process.argv[1], Number(process.argv[2])];
const s = require('dgram').createSocket('udp4');
const end = (what) => { console.log(what); process.exit(0); };
s.on('message', () => end('reply'));
s.on('error', (e) => end('error ' + e.code));
s.send('probe', port, host);
setTimeout(() => end('no-reply'), 700);`;

describeNetns('linux kill switch: the captive-portal sign-in window', () => {
  const id = randomBytes(2).toString('hex');
  const ns = { host: `wtp-host-${id}`, r: `wtp-r-${id}` };
  const root = new ExecRunner();
  const run = (name: string) => new NetnsRunner(name, root);
  const sh = (name: string, ...argv: string[]) => run(name).run(argv);
  const processes = new Set<StreamingProcess>();
  const driver = new LinuxDriver({ nftTable: 'wgctl' });
  const closed: KillSwitchPolicy = { uplink: 'wtpup', endpoints: [{ ip: '203.0.113.50', port: 51820 }], allowDhcp6: false, blockIpv6: true };
  const open: KillSwitchPolicy = { ...closed, portalWindow: { untilMs: Date.now() + 60_000, resolvers: [RESOLVER, '2001:db8::53'] } };

  const node = async (name: string, script: string, ...args: string[]) => (await run(name).run([process.execPath, '-e', script, ...args], { timeoutMs: 5_000 })).stdout.trim();
  const attempts = async () => ({
    dns: await node(ns.host, UDP_PROBE, RESOLVER, '53'),
    dnsElsewhere: await node(ns.host, UDP_PROBE, WEB, '53'),
    http: await node(ns.host, TCP_PROBE, WEB, '80'),
    https: await node(ns.host, TCP_PROBE, WEB, '443'),
    quic: await node(ns.host, UDP_PROBE, WEB, '443'),
    ssh: await node(ns.host, TCP_PROBE, WEB, '22'),
    // A far host opening a flow to the host FROM port 443: no reply of ours, so no way in.
    inboundFrom443: await node(ns.r, TCP_PROBE, HOST, '8080', RESOLVER, '443'),
  });

  beforeAll(async () => {
    try {
      for (const name of Object.values(ns)) {
        await root.run(['ip', 'netns', 'add', name]);
        await sh(name, 'ip', 'link', 'set', 'lo', 'up');
      }
      await root.run(['ip', 'link', 'add', 'wtpup', 'netns', ns.host, 'type', 'veth', 'peer', 'name', 'wtpr', 'netns', ns.r]);
      await sh(ns.host, 'ip', 'addr', 'add', `${HOST}/26`, 'dev', 'wtpup');
      await sh(ns.r, 'ip', 'addr', 'add', `${RESOLVER}/26`, 'dev', 'wtpr');
      await sh(ns.r, 'ip', 'addr', 'add', `${WEB}/32`, 'dev', 'lo');
      await sh(ns.host, 'ip', 'link', 'set', 'wtpup', 'up');
      await sh(ns.r, 'ip', 'link', 'set', 'wtpr', 'up');
      await sh(ns.host, 'ip', 'route', 'add', 'default', 'via', RESOLVER);
      let listening!: () => void;
      const started = new Promise<void>((resolve) => (listening = resolve));
      for (const [name, address] of [[ns.r, WEB], [ns.host, HOST]]) {
        const servers = spawnStreaming(['ip', 'netns', 'exec', name, process.execPath, '-e', SERVERS, address], { onLine: (l) => l === 'listening' && name === ns.r && listening() });
        processes.add(servers);
      }
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

  it('open: DNS to the resolver and TCP 80/443 pass; other DNS, QUIC, other ports and inbound flows do not; the read-back matches', async () => {
    await driver.loadKillSwitch(run(ns.host), open);
    expect((await driver.readKillSwitch(run(ns.host), open)).problems).toEqual([]);
    expect(await attempts()).toEqual({
      dns: 'reply',
      dnsElsewhere: 'no-reply',
      http: 'connected',
      https: 'connected',
      quic: 'no-reply',
      ssh: 'error EHOSTUNREACH', // the kill switch's reject (icmpx admin-prohibited), delivered locally
      inboundFrom443: 'timeout',
    });
  });

  it('closed again (the same driver, no window): nothing of it passes', async () => {
    await driver.loadKillSwitch(run(ns.host), closed);
    expect((await driver.readKillSwitch(run(ns.host), closed)).problems).toEqual([]);
    expect(await attempts()).toMatchObject({ dns: 'no-reply', http: 'error EHOSTUNREACH', https: 'error EHOSTUNREACH', inboundFrom443: 'timeout' });
  });
});
