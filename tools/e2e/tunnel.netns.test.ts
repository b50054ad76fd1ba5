/**
 * End to end in the namespace lab, through `wgctl` only, with the built agents and mTLS:
 *   a. up → the Mac reaches the web host through the tunnel: the uplink carries only WireGuard
 *      UDP to the server, the tunnel carries the probe from the tunnel address; verify PASSes
 *      (and FAILs on a real leak);
 *   b. fail-closed: the VM's wireguard-go killed while up → no way out, nothing on the uplink,
 *      status degraded and says why;
 *   c. roaming to another LAN and gateway → traffic resumes within 1 s, no command given;
 *   e. idempotency: up, up, down, down;
 *   g. DNS through the tunnel while up, the previous resolver back after down.
 * One lab for the file; each test starts and ends with the tunnel down.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { TcpdumpPacket } from '@wgctl/parsers';
import { spawnStreaming } from '@wgctl/runner';
import { currentCafe, labDnsQuery, labExec, labHttpGet, roam, withChattyNeighbour, type Lab } from '../lab/src';
import { inNamespace } from '../lab/src/plan';
import { findProcesses, isAlive, readCmdline } from '../lab/src/processes';
import { diffSnapshots, eventually, formatPacket, ping, snapshotNetwork, startCapture } from './observe';
import { createStack, describeRun, type Stack, netnsTestsEnabled } from './stack';

const suite = netnsTestsEnabled() ? describe : describe.skip;

const PREFIX = 'wge';

function isLinkScopeIcmp6(p: TcpdumpPacket): boolean {
  const linkScope = (address: string) => /^(fe80:|ff02:)/i.test(address);
  return p.family === 'ip6' && p.protocol === 'icmp6' && (linkScope(p.src) || p.src === '::') && linkScope(p.dst);
}
/** The vm-agent samples its health every second (default 5 s), so status reacts quickly. */
const VM_AGENT_ARGS = ['--health-interval', '1000'];

suite('end to end: the tunnel (netns)', () => {
  let stack: Stack;
  let lab: Lab;
  let web: string;
  let server: string;
  let serverPort: number;
  let tunnelAddress: string;

  /** WireGuard between the Mac's uplink and the server: the only traffic allowed there. */
  const isWireGuard = (p: TcpdumpPacket) =>
    p.protocol === 'udp' && ((p.dst === server && p.dstPort === serverPort) || (p.src === server && p.srcPort === serverPort));
  /**
   * What may not appear on the uplink: anything but WireGuard, ARP and IPv6's link-scope ICMP
   * (neighbour/router discovery, multicast listener reports) — never routed beyond the LAN.
   */
  const offUplink = (packets: TcpdumpPacket[]) =>
    packets.filter((p) => !isWireGuard(p) && p.family !== 'arp' && !isLinkScopeIcmp6(p)).map(formatPacket);

  async function up(): Promise<void> {
    const r = await stack.wgctl(['up']);
    if (r.exitCode !== 0) throw new Error(`wgctl up failed\n${describeRun(r)}`);
  }

  beforeAll(async () => {
    stack = await createStack(PREFIX, { vmAgentArgs: VM_AGENT_ARGS });
    lab = stack.lab;
    web = lab.web.wan.ipv4;
    server = lab.srv.wan.ipv4;
    serverPort = lab.srv.wireguard.listenPort;
    tunnelAddress = lab.vm.wireguard.address;
  }, 60_000);

  afterEach(async () => {
    if (!stack) return;
    if ((await currentCafe(lab)) !== 'cafe1') await roam(lab, 'cafe1');
    const down = await stack.wgctl(['down']);
    if (down.exitCode !== 0) throw new Error(`cleanup: wgctl down failed\n${describeRun(down)}`);
  }, 60_000);

  afterAll(async () => {
    await stack?.destroy();
  }, 60_000);

  it('a. up: ping and HTTP go through the tunnel; only WireGuard UDP on the uplink; the probe leaves the tunnel from the tunnel address', async () => {
    // Control: before up, the web host sees the coffee shop's address (the capture can see a leak).
    const before = await labHttpGet(lab, 'mac', lab.web.url4);
    expect(before.ok && JSON.parse(before.body).remote).toBe(lab.cafes.cafe1.wan.ipv4);

    await up();
    const uplink = await startCapture(lab, 'mac', lab.mac.uplink);
    const tunnel = await startCapture(lab, 'vm', lab.vm.wireguard.interface);
    const probe = await ping(lab, 'mac', web, { count: 3 });
    const http = await labHttpGet(lab, 'mac', lab.web.url4);
    const [onUplink, inTunnel] = await Promise.all([uplink.stop(), tunnel.stop()]);

    expect(probe).toMatchObject({ transmitted: 3, received: 3 });
    expect(http.ok && JSON.parse(http.body).remote).toBe(server); // the server's NAT, not the cafe
    expect(offUplink(onUplink)).toEqual([]);
    expect(onUplink.filter(isWireGuard).length).toBeGreaterThanOrEqual(6); // 3 echoes + 3 replies, at least
    const requests = inTunnel.filter((p) => p.protocol === 'icmp' && p.dst === web && /echo request/.test(p.line));
    expect(requests.map((p) => p.src)).toEqual([tunnelAddress, tunnelAddress, tunnelAddress]);
    expect(inTunnel.filter((p) => p.src === lab.mac.vnic.ipv4)).toEqual([]); // nothing un-SNATed

    const status = await stack.wgctl(['status']);
    expect({ exit: status.exitCode, overall: /Overall: HEALTHY/.test(status.stdout) }).toEqual({ exit: 0, overall: true });

    // The product's own check agrees: both agents' captures, judged by wgctl — on a LAN where a
    // neighbour chatters (mDNS, SSDP, MLD, RS, ARP): not the Mac's packets, so not leaks.
    const verify = await withChattyNeighbour(lab, () => stack.wgctl(['verify', '--target', web, '--duration', '2']));
    expect(verify.exitCode).toBe(0);
    expect(verify.stdout).toMatch(/verify: PASS/);
    expect(verify.stdout).toMatch(/0 leaked/);
  });

  it('a. verify FAILs when traffic bypasses the tunnel; the kill switch removed meanwhile is put back, so nothing leaks', async () => {
    await up();
    // Sabotage like a careless admin: no kill switch, and a host route to the web host via the cafe.
    await labExec(lab, 'mac', ['nft', 'delete', 'table', 'inet', 'wgctl']);
    await labExec(lab, 'mac', ['ip', 'route', 'add', `${web}/32`, 'via', lab.cafes.cafe1.client.gateway4, 'dev', lab.mac.uplink]);
    try {
      // The mac-agent's self-healing (nft monitor) loads the kill switch again within moments.
      await eventually('the kill switch to be put back', async () => (await labExec(lab, 'mac', ['nft', 'list', 'table', 'inet', 'wgctl'], { allowFailure: true })).exitCode === 0, 2000, 20);
      const verify = await stack.wgctl(['verify', '--target', web, '--duration', '2']);
      expect(verify.exitCode).toBe(1);
      expect(verify.stdout).toMatch(/verify: FAIL/);
      expect(verify.stdout).toMatch(/did not see the probe.*it did not go through the tunnel/);
      // The probe took the host route and met the kill switch: rejected on the Mac, never on the uplink.
      expect(verify.stdout).not.toContain(`ICMP ${lab.cafes.cafe1.client.ipv4} → ${web}`);
    } finally {
      await labExec(lab, 'mac', ['ip', 'route', 'del', `${web}/32`], { allowFailure: true });
    }
  });

  it('b. fail-closed: with the VM\'s wireguard-go killed, the Mac cannot reach the web host, nothing leaks, status is degraded and says why', async () => {
    await up();
    const iface = lab.vm.wireguard.interface;
    const [wireguardGo] = findProcesses((argv) => basename(argv[0]) === 'wireguard-go' && argv[argv.length - 1] === iface);
    expect(readCmdline(wireguardGo)).toEqual(expect.arrayContaining([iface]));
    process.kill(wireguardGo, 'SIGKILL');
    await eventually('wireguard-go to die', async () => !isAlive(wireguardGo), 3000, 20);

    const uplink = await startCapture(lab, 'mac', lab.mac.uplink);
    const probe = await ping(lab, 'mac', web, { count: 3, waitS: 1 });
    const http = await labHttpGet(lab, 'mac', lab.web.url4, { timeoutMs: 1500 });
    const dns = await labDnsQuery(lab, 'mac', lab.cafes.cafe1.client.dns, lab.web.hostname, { timeoutMs: 500 });
    const onUplink = await uplink.stop();

    expect(probe.received).toBe(0);
    expect(http.ok).toBe(false);
    expect(dns.ok).toBe(false); // not even the coffee shop's resolver
    expect(offUplink(onUplink)).toEqual([]);

    const status = await eventually(
      'wgctl status to turn degraded',
      async () => {
        const r = await stack.wgctl(['status']);
        return r.exitCode === 1 ? r : undefined;
      },
      8000,
      250,
    );
    expect(status.stdout).toMatch(/Overall: DEGRADED/);
    expect(status.stdout).toContain(`${iface} does not exist`);
  });

  it('c. roaming: the Mac moves to another LAN and gateway; traffic resumes within 1 s with no command given', async () => {
    await up();
    // ping -D: one timestamped line per reply, every 50 ms, for 6 s.
    const replies: number[] = [];
    const pinger = spawnStreaming(inNamespace(lab.mac.ns, ['ping', '-D', '-n', '-i', '0.05', '-W', '1', '-w', '6', web]), {
      onLine: (line) => {
        const m = /^\[(\d+\.\d+)\] .*bytes from/.exec(line);
        if (m) replies.push(Number(m[1]) * 1000);
      },
    });
    try {
      await eventually('replies before roaming', async () => replies.length >= 5, 3000, 20);
      const roamStart = Date.now();
      await roam(lab, 'cafe2');
      const roamEnd = Date.now();
      const resumed = await eventually('a reply after roaming', async () => replies.find((t) => t > roamEnd), 3000, 10);
      const lastBefore = Math.max(...replies.filter((t) => t < roamStart));
      const sinceMoveMs = Math.round(resumed - roamStart);
      process.stdout.write(
        `roaming: first reply ${sinceMoveMs} ms after the move began, ${Math.round(resumed - roamEnd)} ms after the new LAN was up ` +
          `(the move took ${roamEnd - roamStart} ms; gap in replies ${Math.round(resumed - lastBefore)} ms)\n`,
      );
      expect(sinceMoveMs).toBeLessThanOrEqual(1000);
    } finally {
      await pinger.stop(500);
    }

    // Still through the tunnel, still fail-closed, now pinned via the new gateway.
    const pin = await labExec(lab, 'mac', ['ip', 'route', 'get', server]);
    expect(pin.stdout).toContain(`via ${lab.cafes.cafe2.client.gateway4} dev ${lab.mac.uplink}`);
    const uplink = await startCapture(lab, 'mac', lab.mac.uplink);
    const http = await labHttpGet(lab, 'mac', lab.web.url4);
    const onUplink = await uplink.stop();
    expect(http.ok && JSON.parse(http.body).remote).toBe(server);
    expect(offUplink(onUplink)).toEqual([]);
    expect(onUplink.filter((p) => isWireGuard(p) && p.src === lab.cafes.cafe2.client.ipv4).length).toBeGreaterThan(0);
  });

  it('e. idempotency: up, up, down, down — the second of each changes nothing and succeeds', async () => {
    const initial = await snapshotNetwork(lab);
    await up();
    const afterUp = await snapshotNetwork(lab);
    expect(diffSnapshots(initial, afterUp).length).toBeGreaterThan(0); // up did change something

    const again = await stack.wgctl(['up']);
    expect(again.exitCode).toBe(0);
    expect(diffSnapshots(afterUp, await snapshotNetwork(lab))).toEqual([]);
    expect(await ping(lab, 'mac', web, { count: 2 })).toMatchObject({ received: 2 });

    for (const attempt of ['first', 'second']) {
      const down = await stack.wgctl(['down']);
      expect({ attempt, exit: down.exitCode }).toEqual({ attempt, exit: 0 });
      expect(diffSnapshots(initial, await snapshotNetwork(lab))).toEqual([]);
    }
  });

  it('g. DNS: names resolve through the tunnel (the server side\'s resolver) while up; the previous resolver is back after down', async () => {
    const resolvConf = lab.paths.resolvConf.mac;
    const original = readFileSync(resolvConf, 'utf8');
    expect(original).toContain(`nameserver ${lab.cafes.cafe1.client.dns}`);
    const cafeLog = `${lab.paths.logs}/cafe1-dns.log`;
    const serverLog = `${lab.paths.logs}/srv-dns.log`;
    const queriesIn = (file: string) => readFileSync(file, 'utf8').split('\n').filter((l) => l.includes(`query[A] ${lab.web.hostname}`));

    await up();
    const whileUp = readFileSync(resolvConf, 'utf8');
    expect(whileUp).toMatch(new RegExp(`^nameserver ${lab.srv.dns.replace(/\./g, '\\.')}$`, 'm'));
    expect(whileUp).not.toContain(lab.cafes.cafe1.client.dns);

    const cafeBefore = queriesIn(cafeLog).length;
    const serverBefore = queriesIn(serverLog).length;
    const resolved = await labExec(lab, 'mac', ['getent', 'ahostsv4', lab.web.hostname], { allowFailure: true, timeoutMs: 10_000 });
    expect(resolved.exitCode).toBe(0);
    expect(resolved.stdout).toContain(web);
    const byName = await labHttpGet(lab, 'mac', `http://${lab.web.hostname}/`);
    expect(byName.ok && JSON.parse(byName.body).remote).toBe(server);
    const serverQueries = queriesIn(serverLog).slice(serverBefore);
    expect(serverQueries.length).toBeGreaterThan(0);
    expect(serverQueries.every((l) => l.endsWith(`from ${tunnelAddress}`))).toBe(true); // it came through the tunnel
    expect(queriesIn(cafeLog).length).toBe(cafeBefore); // no query reached the coffee shop
    // And asking the coffee shop's resolver directly goes nowhere (kill switch).
    expect((await labDnsQuery(lab, 'mac', lab.cafes.cafe1.client.dns, lab.web.hostname, { timeoutMs: 500 })).ok).toBe(false);

    const down = await stack.wgctl(['down']);
    expect(down.exitCode).toBe(0);
    expect(readFileSync(resolvConf, 'utf8')).toBe(original);
    const afterDown = await labExec(lab, 'mac', ['getent', 'ahostsv4', lab.web.hostname], { allowFailure: true, timeoutMs: 10_000 });
    expect(afterDown.stdout).toContain(web);
    expect(queriesIn(cafeLog).length).toBeGreaterThan(cafeBefore);
  });
});
