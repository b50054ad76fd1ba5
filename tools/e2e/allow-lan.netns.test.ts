/**
 * `--allow-lan` end to end (issue #14 item 3), with the built agents and the Linux driver's real
 * nftables kill switch: a printer-like host on the café LAN (the lab's neighbour namespace,
 * tools/lab/src/neighbour.ts) answers TCP and UDP echo, mDNS, and DNS. Without --allow-lan the
 * kill switch keeps the Mac from all of it; with it the Mac reaches the printer (TCP, UDP and
 * its mDNS answer) but never its DNS, the internet still goes only through the tunnel, status
 * and plan show the LAN, and `wgctl verify` PASSes with the LAN traffic counted as allowed.
 * Lab prefix `wgal`: documentation addresses only (the café 192.0.2.0/25).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { ExecRunner, spawnStreaming, type StreamingProcess } from '@wgctl/runner';
import { labExec, roam, startChattyNeighbour, type ChattyNeighbour, type Lab } from '../lab/src';
import { inNamespace } from '../lab/src/plan';
import { eventually, formatPacket, ping, startCapture } from './observe';
import { createStack, describeRun, netnsTestsEnabled, type Stack } from './stack';

const suite = netnsTestsEnabled() ? describe : describe.skip;

const PREFIX = 'wgal';
const ECHO_PORT = 7; // RFC 862, TCP and UDP
const IPP_PORT = 631; // a printer's port, echoing here

/** The printer: echo on TCP 631 and UDP 7, an mDNS answer to any query, a DNS answer on UDP 53. */
const PRINTER_JS = `
const dgram = require('node:dgram');
const net = require('node:net');
const [address, address6] = process.argv.slice(2);
net.createServer((s) => s.pipe(s)).listen(${IPP_PORT}, address);
net.createServer((s) => s.pipe(s)).listen(${IPP_PORT}, address6);
const echo = dgram.createSocket('udp4');
echo.on('message', (m, r) => echo.send(m, r.port, r.address));
echo.bind(${ECHO_PORT}, address);
const dns = dgram.createSocket('udp4');
dns.on('message', (m, r) => dns.send(Buffer.from('dns-answer'), r.port, r.address));
dns.bind(53, address);
// mDNS (RFC 6762): a member of 224.0.0.251 on port 5353; a one-shot query (source port not
// 5353, §6.7) is answered by unicast to the querier.
const mdns = dgram.createSocket({ type: 'udp4', reuseAddr: true });
mdns.on('message', (m, r) => { if (r.address !== address) mdns.send(Buffer.from('printer._ipp._tcp.local'), r.port, r.address); });
mdns.bind(5353, () => { mdns.addMembership('224.0.0.251', address); console.log('ready'); });
`;

/** The Mac's side: each probe's answer or 'none' (JSON on stdout). */
const CLIENT_JS = `
const dgram = require('node:dgram');
const net = require('node:net');
const [printer, own] = process.argv.slice(2);
const WAIT = 1500;
function tcp() {
  return new Promise((resolve) => {
    const s = net.connect({ host: printer, port: ${IPP_PORT}, timeout: WAIT }, () => s.write('ipp-hello'));
    s.on('data', (d) => { resolve(String(d)); s.destroy(); });
    s.on('timeout', () => { resolve('none'); s.destroy(); });
    s.on('error', (e) => resolve('none: ' + e.code));
  });
}
function udp(host, port, payload, setup) {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const timer = setTimeout(() => { resolve('none'); s.close(); }, WAIT);
    s.on('message', (m) => { clearTimeout(timer); resolve(String(m)); s.close(); });
    s.on('error', (e) => { clearTimeout(timer); resolve('none: ' + e.code); s.close(); });
    s.bind(0, () => { if (setup) setup(s); s.send(Buffer.from(payload), port, host); });
  });
}
(async () => {
  const result = {
    tcp: await tcp(),
    udp: await udp(printer, ${ECHO_PORT}, 'udp-hello'),
    // As mDNSResponder does, the query leaves by the uplink (IP_MULTICAST_IF), not the split routes.
    mdns: await udp('224.0.0.251', 5353, 'query _ipp._tcp.local', (s) => s.setMulticastInterface(own)),
    dns: await udp(printer, 53, 'dns-query'),
  };
  console.log(JSON.stringify(result));
})();
`;

interface LanProbe {
  tcp: string;
  udp: string;
  mdns: string;
  dns: string;
}

suite('end to end: --allow-lan lets the café LAN through the kill switch, and nothing more (netns)', () => {
  let stack: Stack;
  let lab: Lab;
  let neighbour: ChattyNeighbour | undefined;
  let printer: StreamingProcess | undefined;
  let clientScript: string;
  let web: string;
  const runner = new ExecRunner();

  async function probeLan(): Promise<LanProbe> {
    const r = await labExec(lab, 'mac', [process.execPath, clientScript, neighbour!.ipv4, lab.cafes.cafe1.client.ipv4], { runner, timeoutMs: 20_000 });
    return JSON.parse(r.stdout.trim()) as LanProbe;
  }

  async function macStatus(): Promise<{ lan: { allowed: boolean; subnets: string[] }; checks: { name: string; ok: boolean; detail: string }[] }> {
    const r = await stack.wgctl(['--json', 'status']);
    if (!r.stdout.trim()) throw new Error(`wgctl status printed nothing\n${describeRun(r)}`);
    return (JSON.parse(r.stdout) as { mac: { lan: { allowed: boolean; subnets: string[] }; checks: { name: string; ok: boolean; detail: string }[] } }).mac;
  }

  beforeAll(async () => {
    stack = await createStack(PREFIX);
    lab = stack.lab;
    web = lab.web.wan.ipv4;
    // Slow chatter: the neighbour is here as the printer's host, not to flood the capture.
    neighbour = await startChattyNeighbour(lab, { intervalMs: 2_000 });
    const printerScript = `${lab.paths.bin}/lan-printer.js`;
    clientScript = `${lab.paths.bin}/lan-client.js`;
    writeFileSync(printerScript, PRINTER_JS);
    writeFileSync(clientScript, CLIENT_JS);
    let ready: () => void = () => undefined;
    const started = new Promise<void>((resolve) => (ready = resolve));
    printer = spawnStreaming(inNamespace(neighbour.ns, [process.execPath, printerScript, neighbour.ipv4, neighbour.ipv6]), { onLine: (l) => l === 'ready' && ready() });
    await started;
  }, 90_000);

  afterAll(async () => {
    await stack?.wgctl(['down']);
    await printer?.stop(1_000);
    await neighbour?.stop();
    await stack?.destroy();
  }, 60_000);

  it('without --allow-lan the kill switch keeps the Mac from the printer, its mDNS and its DNS', async () => {
    const up = await stack.wgctl(['up']);
    expect({ exitCode: up.exitCode, out: up.exitCode === 0 ? '' : describeRun(up) }).toEqual({ exitCode: 0, out: '' });
    expect(await probeLan()).toEqual({ tcp: expect.stringMatching(/^none/), udp: expect.stringMatching(/^none/), mdns: 'none', dns: expect.stringMatching(/^none/) });
    expect((await macStatus()).lan).toEqual({ allowed: false, subnets: [] });
  }, 60_000);

  it('plan shows the LAN the kill switch would let through', async () => {
    const r = await stack.wgctl(['plan', '--allow-lan']);
    expect({ exitCode: r.exitCode, out: r.exitCode === 0 ? '' : describeRun(r) }).toEqual({ exitCode: 0, out: '' });
    expect(r.stdout).toMatch(/LAN allowed on \S+: 192\.0\.2\.0\/25\b.*both ways, and mDNS \(DNS to the LAN blocked\)/);
  }, 60_000);

  it('with `up --allow-lan`: the printer answers over TCP, UDP and mDNS; its DNS does not; status says so', async () => {
    const up = await stack.wgctl(['up', '--allow-lan']);
    expect({ exitCode: up.exitCode, out: up.exitCode === 0 ? '' : describeRun(up) }).toEqual({ exitCode: 0, out: '' });
    expect(await probeLan()).toEqual({ tcp: 'ipp-hello', udp: 'udp-hello', mdns: 'printer._ipp._tcp.local', dns: expect.stringMatching(/^none/) });

    const mac = await macStatus();
    expect(mac.lan.allowed).toBe(true);
    expect(mac.lan.subnets).toContain('192.0.2.0/25');
    // Never the internet's or the tunnel's prefixes: only what the uplink is connected to.
    expect(mac.lan.subnets.filter((s) => /^(203\.0\.113|198\.51\.100)\./.test(s))).toEqual([]);
    expect(mac.checks.filter((c) => !c.ok)).toEqual([]);
    const table = await stack.wgctl(['status']);
    expect(table.stdout).toMatch(/^LAN\s+-?\S*\s+allowed \(192\.0\.2\.0\/25/m);
  }, 60_000);

  it('with --allow-lan the internet still goes only through the tunnel: the uplink carries WireGuard and LAN traffic only', async () => {
    const uplink = await startCapture(lab, 'mac', lab.mac.uplink, ['-e']);
    const [lanProbe, webPing] = await Promise.all([probeLan(), ping(lab, 'mac', web, { count: 3, intervalS: 0.2 })]);
    const packets = await uplink.stop();
    expect(lanProbe.tcp).toBe('ipp-hello');
    expect(webPing.ok).toBe(true);

    const own = (await labExec(lab, 'mac', ['cat', `/sys/class/net/${lab.mac.uplink}/address`], { runner })).stdout.trim();
    const server = lab.srv.wan.ipv4;
    const sent = packets.filter((p) => p.srcMac === own && p.family !== 'arp');
    const lan = (ip: string) => /^192\.0\.2\.([0-9]|[1-9][0-9]|1[01][0-9]|12[0-7])$/.test(ip) || ip === '224.0.0.251' || /^(fe80:|ff02:)/.test(ip);
    const other = sent.filter((p) => !(p.dst === server && p.protocol === 'udp') && !lan(p.dst));
    expect(other.map(formatPacket)).toEqual([]);
    expect(sent.some((p) => p.dst === server)).toBe(true); // the web ping went through the tunnel
    expect(sent.some((p) => p.dst === neighbour!.ipv4)).toBe(true); // and the LAN probe did not
    expect(packets.filter((p) => p.dst === web || p.src === web).map(formatPacket)).toEqual([]);
  }, 60_000);

  it('wgctl verify PASSes while the Mac talks to the printer, counting that traffic as LAN', async () => {
    const verify = stack.wgctl(['--json', 'verify', '--target', web, '--duration', '3']);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const lanProbe = await probeLan();
    const r = await verify;
    const doc = JSON.parse(r.stdout) as { pass: boolean; leaks: unknown[]; problems: string[]; allowed: Record<string, number> };
    expect(lanProbe.udp).toBe('udp-hello');
    expect({ exitCode: r.exitCode, pass: doc.pass, leaks: doc.leaks, problems: doc.problems }).toEqual({ exitCode: 0, pass: true, leaks: [], problems: [] });
    expect(doc.allowed.lan).toBeGreaterThan(0);
  }, 60_000);

  it('a plain `up` afterwards turns the LAN off again', async () => {
    const up = await stack.wgctl(['up']);
    expect(up.exitCode).toBe(0);
    expect(await probeLan()).toEqual({ tcp: expect.stringMatching(/^none/), udp: expect.stringMatching(/^none/), mdns: 'none', dns: expect.stringMatching(/^none/) });
    expect((await macStatus()).lan.allowed).toBe(false);
  }, 60_000);

  it('with IPv6 through the tunnel, the LAN includes the uplink\'s IPv6 subnets: the printer answers over IPv6, the internet\'s IPv6 stays in the tunnel', async () => {
    // The VM's IPv6 on the vnic, as `wgctl init --vm-address6` would write it: ipv6 auto then routes.
    const config = JSON.parse(readFileSync(stack.configFile, 'utf8'));
    writeFileSync(stack.configFile, `${JSON.stringify({ ...config, vm: { ...config.vm, address6: lab.vm.eth.ipv6 } }, null, 2)}\n`, { mode: 0o600 });
    const up = await stack.wgctl(['up', '--allow-lan']);
    expect({ exitCode: up.exitCode, out: up.exitCode === 0 ? '' : describeRun(up) }).toEqual({ exitCode: 0, out: '' });
    expect((await macStatus()).lan.subnets).toEqual(['192.0.2.0/25', '2001:db8:c1::/64', 'fe80::/64']);

    const uplink = await startCapture(lab, 'mac', lab.mac.uplink, ['-e']);
    const tcp6 = await labExec(lab, 'mac', [process.execPath, '-e', `
      const s = require('node:net').connect({ host: process.argv[1], port: ${IPP_PORT}, timeout: 1500 }, () => s.write('ipp6'));
      s.on('data', (d) => { console.log(String(d)); s.destroy(); });
      s.on('timeout', () => { console.log('none'); s.destroy(); });
      s.on('error', (e) => console.log('none: ' + e.code));`, neighbour!.ipv6], { runner, timeoutMs: 10_000 });
    const web6Address = lab.web.wan.ipv6!;
    const web6 = await ping(lab, 'mac', web6Address, { count: 2, intervalS: 0.2 });
    const packets = await uplink.stop();
    expect(tcp6.stdout.trim()).toBe('ipp6');
    expect(web6.ok).toBe(true);
    expect(packets.some((p) => p.dst === neighbour!.ipv6 && p.dstPort === IPP_PORT)).toBe(true);
    expect(packets.filter((p) => p.dst === web6Address || p.src === web6Address).map(formatPacket)).toEqual([]);
  }, 60_000);

  it('the LAN follows a roam: on the next café the kill switch lets through its subnet, not the old one', async () => {
    const up = await stack.wgctl(['up', '--allow-lan']);
    expect({ exitCode: up.exitCode, out: up.exitCode === 0 ? '' : describeRun(up) }).toEqual({ exitCode: 0, out: '' });
    expect((await macStatus()).lan.subnets).toContain('192.0.2.0/25');
    // The neighbour's bridge must go before the access port moves (neighbour.ts).
    await printer?.stop(1_000);
    await neighbour?.stop();
    [printer, neighbour] = [undefined, undefined];
    await roam(lab, 'cafe2');
    const subnets = await eventually('the kill switch to follow the roam to cafe2', async () => {
      const lan = (await macStatus()).lan;
      return lan.subnets.includes('192.0.2.128/25') ? lan.subnets : undefined;
    }, 20_000, 500);
    expect(subnets).not.toContain('192.0.2.0/25');
    // And the rules say so (the Linux driver's table, read as nft prints it).
    const table = await labExec(lab, 'mac', ['nft', 'list', 'table', 'inet', 'wgctl'], { runner });
    expect(table.stdout).toContain('ip daddr 192.0.2.128/25 accept');
    expect(table.stdout).not.toContain('192.0.2.0/25');
  }, 60_000);
});
