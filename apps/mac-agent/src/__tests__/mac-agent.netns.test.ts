/**
 * The linux driver and the engine against real namespaces (see testing/lab.ts): routes,
 * the nftables kill switch proven with tcpdump on the uplink (the VM's NATed traffic
 * included, no IPv6 leak), roaming without a command, and Down leaving nothing behind.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryTransport, createLogger } from '@wgctl/logging';
import { parseIpRouteJson } from '@wgctl/parsers';
import type { StepRecord } from '@wgctl/runner';
import { LinuxDriver } from '../host/linux';
import { MacAgentEngine } from '../service/engine';
import { JournalStore, type UpIntent } from '../service/journal';
import { ADDR, IF, createLab, enableVmIpv6, netnsSpawner, netnsTestsEnabled, sentBy, type Lab } from '../testing/lab';

const describeNetns = netnsTestsEnabled() ? describe : describe.skip;
jest.setTimeout(60_000);

const ORIGINAL_RESOLV = '# lab resolv.conf\nnameserver 192.0.2.1\nsearch lan.example\n';

/** IPv6 neighbour discovery the kill switch lets out when the uplink has IPv6 (link-local housekeeping). */
const isNdp = (p: { family: string; line: string }) => p.family === 'ip6' && /ICMP6, (neighbor (solicitation|advertisement)|router solicitation)/.test(p.line);

const intent = (overrides: Partial<UpIntent> = {}): UpIntent => ({
  vmAddress: ADDR.vm,
  endpoints: [{ host: 'wg.example', ip: ADDR.server, port: ADDR.port }],
  dnsServers: ['198.51.100.53'],
  ipv6: 'auto',
  ...overrides,
});

async function routeLines(lab: Lab, family: '-4' | '-6' = '-4'): Promise<string[]> {
  return (await lab.host.run(['ip', family, 'route', 'show', 'table', 'main'])).stdout.split('\n').map((l) => l.trim()).filter(Boolean);
}

describeNetns('mac-agent on a Linux host (network namespaces)', () => {
  let lab: Lab;
  let dir: string;
  let engine: MacAgentEngine;
  let logs: MemoryTransport;
  /** What the echo server received: `rx ADDRESS PORT PAYLOAD`. */
  const received: string[] = [];
  const resolvPath = () => join(dir, 'resolv.conf');

  const newEngine = () => {
    logs = new MemoryTransport();
    return new MacAgentEngine({
      driver: new LinuxDriver({ resolvConfPath: resolvPath() }),
      runner: lab.host,
      journal: new JournalStore(join(dir, 'state')),
      logger: createLogger({ service: 'mac-agent-test', level: 'debug', transports: [logs] }),
      spawnMonitor: netnsSpawner(lab.ns.host),
      roamWatchAfterUpMs: 0, // the monitor as soon as the reply is out: the roaming test times it from there
    });
  };

  beforeAll(async () => {
    lab = await createLab();
    dir = mkdtempSync(join(tmpdir(), 'wtm-mac-'));
    writeFileSync(resolvPath(), ORIGINAL_RESOLV);
    // The "WireGuard server": a UDP echo on ADDR.port, v4 and v6, for every test.
    let listeners = 0;
    await new Promise<void>((ready) =>
      lab.node(lab.ns.srv, 'echo-server', [ADDR.server, ADDR.server6, String(ADDR.port)], (line) => {
        received.push(line);
        if (line.startsWith('listening') && ++listeners === 2) ready();
      }),
    );
  });

  afterAll(async () => {
    await engine?.close();
    await lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  afterEach(async () => {
    // Every test starts from down.
    if (engine) {
      await engine.down({}, () => undefined);
      await engine.close();
    }
  });

  it('Up: pins the server before the /1 routes, loads the kill switch, sets DNS; idempotent; Down restores everything exactly', async () => {
    engine = newEngine();
    const before = await routeLines(lab);
    const steps: StepRecord[] = [];
    const outcome = await engine.up(intent(), {}, (s) => steps.push(s));
    expect(outcome).toMatchObject({ ok: true, failedStep: '' });
    const finished = steps.filter((s) => s.state !== 'started');
    expect(finished.map((s) => `${s.step}:${s.state}`)).toEqual([
      'discover:done',
      'kill-switch:done',
      'pin-endpoint:done',
      'split-routes:done',
      'ipv6:done',
      'dns:done',
      'verify:done',
    ]);
    const argvs = finished.flatMap((s) => s.commands.map((c) => c.argv.join(' ')));
    const pinAt = argvs.indexOf(`ip netns exec ${lab.ns.host} ip route add ${ADDR.server}/32 via ${ADDR.gwA} dev ${IF.hostA}`);
    const splitAt = argvs.indexOf(`ip netns exec ${lab.ns.host} ip route add 0.0.0.0/1 via ${ADDR.vm} dev ${IF.hostV}`);
    expect(pinAt).toBeGreaterThanOrEqual(0);
    expect(splitAt).toBeGreaterThan(pinAt);

    const routes = await routeLines(lab);
    expect(routes).toEqual(
      expect.arrayContaining([
        `0.0.0.0/1 via ${ADDR.vm} dev ${IF.hostV}`,
        `128.0.0.0/1 via ${ADDR.vm} dev ${IF.hostV}`,
        `${ADDR.server} via ${ADDR.gwA} dev ${IF.hostA}`,
        `default via ${ADDR.gwA} dev ${IF.hostA}`,
      ]),
    );
    // Traffic to "the internet" now leaves through the VM, the server through the uplink.
    const get = async (dst: string) => parseIpRouteJson((await lab.host.run(['ip', '-j', 'route', 'get', dst])).stdout)[0];
    expect(await get(ADDR.internet)).toMatchObject({ gateway: ADDR.vm, dev: IF.hostV });
    expect(await get(ADDR.server)).toMatchObject({ gateway: ADDR.gwA, dev: IF.hostA });
    expect(readFileSync(resolvPath(), 'utf8')).toMatch(/^nameserver 198\.51\.100\.53$/m);
    const table = (await lab.host.run(['nft', 'list', 'table', 'inet', 'wgctl'])).stdout;
    expect(table).toContain(`ip daddr ${ADDR.server} udp dport ${ADDR.port} accept`);
    expect(table).not.toContain(IF.hostA); // every interface but lo and the vnic: no rule names the uplink

    const status = await engine.status();
    expect(status.reasons).toEqual([]);
    expect(status).toMatchObject({ up: true, healthy: true, uplink: { interface: IF.hostA, gateway: ADDR.gwA } });
    expect(status.routes.map((r) => r.evidence)).toEqual(
      expect.arrayContaining([`${ADDR.server} via ${ADDR.gwA} dev ${IF.hostA}`, `0.0.0.0/1 via ${ADDR.vm} dev ${IF.hostV}`]),
    );
    expect(status.killSwitch).toMatchObject({ loaded: true, enabled: true, interface: IF.hostA, problems: [] });
    expect(status.dns).toEqual({ servers: ['198.51.100.53'], previous: ['192.0.2.1'], managed: true });

    // Again: everything already in place, nothing run that changes anything.
    const again: StepRecord[] = [];
    expect(await engine.up(intent(), {}, (s) => again.push(s))).toMatchObject({ ok: true });
    expect(again.filter((s) => s.state === 'skipped').map((s) => s.step)).toEqual(['kill-switch', 'pin-endpoint', 'split-routes', 'dns']);
    expect(again.flatMap((s) => s.commands).filter((c) => /route add|nft -f|tee|mv/.test(c.argv.join(' ')))).toEqual([]);

    // The user adds a route of their own meanwhile; Down must leave it (and the default) alone.
    await lab.host.run(['ip', 'route', 'add', '198.51.100.0/24', 'via', ADDR.gwA, 'dev', IF.hostA]);
    const down: StepRecord[] = [];
    expect(await engine.down({}, (s) => down.push(s))).toMatchObject({ ok: true });
    expect(down.filter((s) => s.state !== 'started').map((s) => `${s.step}:${s.state}`)).toEqual([
      'restore-dns:done',
      'remove-routes:done',
      'unload-kill-switch:done',
      'verify-clean:done',
    ]);
    expect(new Set(await routeLines(lab))).toEqual(new Set([...before, `198.51.100.0/24 via ${ADDR.gwA} dev ${IF.hostA}`]));
    await lab.host.run(['ip', 'route', 'del', '198.51.100.0/24', 'via', ADDR.gwA, 'dev', IF.hostA]);
    expect(await routeLines(lab)).toEqual(before);
    expect(readFileSync(resolvPath(), 'utf8')).toBe(ORIGINAL_RESOLV);
    expect((await lab.host.run(['nft', 'list', 'tables'])).stdout).not.toContain('wgctl');
  });

  it('kill switch: tcpdump on the uplink sees only UDP to/from the server (the VM\'s NATed traffic included), no IPv6', async () => {
    const hostProbes = [`udp:${ADDR.server}:${ADDR.port}`, `udp:${ADDR.server}:9999`, `tcp:${ADDR.server}:80`, `udp:${ADDR.internet}:5353`, `udp:[${ADDR.server6}]:${ADDR.port}`];
    const vmProbes = [`udp:${ADDR.server}:${ADDR.port}`, `udp:${ADDR.server}:5353`, `tcp:${ADDR.server}:443`];
    let hostProbeResults = '';
    const traffic = async () => {
      hostProbeResults = await lab.probe(lab.ns.host, hostProbes);
      await lab.probe(lab.ns.vm, vmProbes);
      await lab.ping(lab.ns.host, ADDR.server);
      await lab.ping(lab.ns.host, ADDR.server6);
      await lab.ping(lab.ns.vm, ADDR.server);
    };
    const isServerUdp = (p: { family: string; protocol: string; src: string; dst: string; srcPort?: number; dstPort?: number }) =>
      p.family === 'ip' && p.protocol === 'udp' && ((p.dst === ADDR.server && p.dstPort === ADDR.port) || (p.src === ADDR.server && p.srcPort === ADDR.port));

    // Control, before Up: the same traffic does leak onto the uplink (so the capture can see leaks).
    const control = await lab.capture(lab.ns.host, IF.hostA);
    await traffic();
    const leaked = sentBy(control, await control.stop()).filter((p) => p.family !== 'arp' && !isServerUdp(p));
    expect(leaked.some((p) => p.protocol === 'udp' && p.dstPort === 9999)).toBe(true);
    expect(leaked.some((p) => p.protocol === 'tcp' && p.dstPort === 443)).toBe(true); // the VM's, masqueraded
    expect(leaked.some((p) => p.family === 'ip6' && !isNdp(p))).toBe(true);

    engine = newEngine();
    expect(await engine.up(intent(), {}, () => undefined)).toMatchObject({ ok: true });
    received.length = 0;
    const capture = await lab.capture(lab.ns.host, IF.hostA);
    await traffic();
    const packets = await capture.stop();
    const offenders = sentBy(capture, packets).filter((p) => p.family !== 'arp' && !isServerUdp(p) && !isNdp(p));
    expect(offenders.map((p) => p.line)).toEqual([]);
    // The host's own blocked connections fail at once (rejected locally), not after a timeout.
    expect(hostProbeResults).toMatch(new RegExp(`tcp:${ADDR.server}:80 error E[A-Z]+`));
    // The allowed flows did pass, both the host's own and the VM's (masqueraded to the host's address).
    const toServer = packets.filter((p) => isServerUdp(p) && p.dst === ADDR.server);
    expect(toServer.length).toBeGreaterThanOrEqual(2);
    expect(toServer.every((p) => p.src === ADDR.hostA)).toBe(true);
    expect(received.filter((l) => l.startsWith(`rx ${ADDR.hostA} `)).length).toBeGreaterThanOrEqual(2);
    expect(packets.some((p) => p.src === ADDR.server && p.srcPort === ADDR.port)).toBe(true); // echoes came back
    expect(received.some((l) => l.includes('5353') || l.includes('9999'))).toBe(false);

    // The agent dies and the VM network goes away (split routes gone): still nothing leaks.
    await engine.close();
    for (const dst of ['0.0.0.0/1', '128.0.0.0/1']) await lab.host.run(['ip', 'route', 'del', dst, 'via', ADDR.vm, 'dev', IF.hostV]);
    const orphan = await lab.capture(lab.ns.host, IF.hostA);
    await lab.probe(lab.ns.host, [`udp:${ADDR.internet}:5353`, `tcp:${ADDR.internet}:80`]);
    expect(await lab.ping(lab.ns.host, ADDR.internet)).toBe(false);
    expect(sentBy(orphan, await orphan.stop()).filter((p) => p.family !== 'arp' && !isNdp(p)).map((p) => p.line)).toEqual([]);
    engine = newEngine(); // afterEach brings it down from the journal
  });

  it('roaming: the gateway, then the uplink change under it; traffic resumes within 1 s with no command; no uplink stays fail-closed', async () => {
    engine = newEngine();
    expect(await engine.up(intent(), {}, () => undefined)).toMatchObject({ ok: true });
    // The monitor is spawned once the outcome has been handed back (two turns of the event loop).
    await new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
    expect(engine.watching).toBe(true);

    // The "VM" keeps a WireGuard-like UDP flow to the server, every 10 ms.
    const echoes: { seq: number; sentAt: number; receivedAt: number }[] = [];
    lab.node(lab.ns.vm, 'pinger', [ADDR.server, String(ADDR.port), '10'], (line) => {
      const [kind, seq, sentAt, receivedAt] = line.split(' ');
      if (kind === 'echo') echoes.push({ seq: Number(seq), sentAt: Number(sentAt), receivedAt: Number(receivedAt) });
    });
    const waitFor = async (what: string, ok: () => boolean, ms = 5_000) => {
      const deadline = Date.now() + ms;
      while (!ok()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    /** ms from `changedAt` until an echo of a datagram sent after it came back. */
    const resumedAfter = async (changedAt: number) => {
      await waitFor('traffic to resume', () => echoes.some((e) => e.sentAt > changedAt), 3_000).catch(async (e) => {
        process.stdout.write(`DEBUG echoes=${echoes.length} last=${JSON.stringify(echoes.slice(-2))} changedAt=${changedAt}\n${logs.lines.slice(-30).join('\n')}\n${(await routeLines(lab)).join('\n')}\n`);
        throw e;
      });
      return echoes.find((e) => e.sentAt > changedAt)!.receivedAt - changedAt;
    };
    await waitFor('the first echo', () => echoes.length > 0);

    // 1. Same uplink, new gateway (the router's other address).
    await lab.host.run(['ip', 'route', 'replace', 'default', 'via', ADDR.gwAlt, 'dev', IF.hostA]);
    const t1 = Date.now(); // the change is in effect
    await waitFor('the server re-pinned via the new gateway', () => engine.roams.length === 1);
    const gatewayResume = await resumedAfter(t1);
    expect(engine.roams[0]).toMatchObject({ fromInterface: IF.hostA, toInterface: IF.hostA, fromGateway: ADDR.gwA, toGateway: ADDR.gwAlt });
    expect(await routeLines(lab)).toContain(`${ADDR.server} via ${ADDR.gwAlt} dev ${IF.hostA}`);
    expect(await routeLines(lab)).not.toContain(`${ADDR.server} via ${ADDR.gwA} dev ${IF.hostA}`);

    // 2. The uplink goes away and another network takes over (Wi-Fi → Ethernet).
    await lab.host.run(['ip', 'link', 'set', IF.hostA, 'down']);
    await lab.host.run(['ip', 'route', 'add', 'default', 'via', ADDR.gwB, 'dev', IF.hostB]);
    const t2 = Date.now(); // the change is in effect: from here the flow is broken until the agent re-pins
    const uplinkResume = await resumedAfter(t2);
    await waitFor('the roam to the new uplink', () => engine.roams.length === 2);
    expect(engine.roams[1]).toMatchObject({ fromInterface: IF.hostA, toInterface: IF.hostB, toGateway: ADDR.gwB });
    expect(await routeLines(lab)).toContain(`${ADDR.server} via ${ADDR.gwB} dev ${IF.hostB}`);
    const table = (await lab.host.run(['nft', 'list', 'table', 'inet', 'wgctl'])).stdout;
    // The rules held on wtmhb before it became the uplink (they name no uplink at all).
    expect(table).toMatch(new RegExp(`iifname "${IF.hostV}" counter packets \\d+ bytes \\d+ drop`));
    expect(table).not.toContain(IF.hostA);
    expect(table).not.toContain(IF.hostB);
    process.stdout.write(`roaming: gateway change resumed in ${gatewayResume} ms, uplink change in ${uplinkResume} ms (agent reaction ${engine.roams.map((r) => r.tookMs).join(' / ')} ms)\n`);
    expect(gatewayResume).toBeLessThan(1_000);
    expect(uplinkResume).toBeLessThan(1_000);

    // The kill switch followed: on the new uplink only the server flow leaves.
    const capture = await lab.capture(lab.ns.host, IF.hostB);
    await lab.probe(lab.ns.host, [`udp:${ADDR.server}:9999`, `tcp:${ADDR.server}:80`]);
    await lab.probe(lab.ns.vm, [`udp:${ADDR.server}:5353`]);
    const seen = sentBy(capture, await capture.stop());
    expect(seen.some((p) => p.protocol === 'udp' && p.dst === ADDR.server && p.dstPort === ADDR.port)).toBe(true); // the VM's flow, now on wtmhb
    const offenders = seen.filter((p) => p.family !== 'arp' && !isNdp(p) && !(p.protocol === 'udp' && p.dst === ADDR.server && p.dstPort === ADDR.port));
    expect(offenders.map((p) => p.line)).toEqual([]);
    expect((await engine.status()).healthy).toBe(true);

    // 3. No uplink at all: fail-closed, the kill switch stays; it comes back on its own.
    await lab.host.run(['ip', 'route', 'del', 'default', 'via', ADDR.gwB, 'dev', IF.hostB]);
    await waitFor('the agent to notice', () => engine.journal().uplinkLost);
    const lost = await engine.status();
    expect(lost.killSwitch).toMatchObject({ loaded: true, interface: IF.hostB, problems: [] });
    expect(lost.healthy).toBe(false);
    expect(lost.reasons.join(' ')).toMatch(/uplink: no default route/);
    await lab.host.run(['ip', 'route', 'add', 'default', 'via', ADDR.gwB, 'dev', IF.hostB]);
    await waitFor('the uplink to come back', () => !engine.journal().uplinkLost);
    expect((await engine.status()).healthy).toBe(true);

    // Put the lab back for the other tests.
    await engine.down({}, () => undefined);
    await lab.host.run(['ip', 'route', 'del', 'default', 'via', ADDR.gwB, 'dev', IF.hostB]);
    await lab.host.run(['ip', 'link', 'set', IF.hostA, 'up']);
    await lab.host.run(['ip', 'addr', 'replace', `${ADDR.hostA6}/64`, 'dev', IF.hostA, 'nodad']); // IPv6 addresses go with the link
    await lab.host.run(['ip', 'route', 'replace', 'default', 'via', ADDR.gwA, 'dev', IF.hostA]);
    await lab.host.run(['ip', '-6', 'route', 'replace', 'default', 'via', ADDR.gwA6, 'dev', IF.hostA]);
  });

  it('IPv6 route mode: ::/1 and 8000::/1 via the VM when it has IPv6 on the vnic; IPv6 still never leaves the uplink', async () => {
    await enableVmIpv6(lab);
    engine = newEngine();
    const steps: StepRecord[] = [];
    expect(await engine.up(intent({ vmAddress6: ADDR.vm6 }), {}, (s) => steps.push(s))).toMatchObject({ ok: true });
    expect(steps.find((s) => s.step === 'ipv6' && s.state === 'done')?.message).toBe(`::/1 and 8000::/1 via ${ADDR.vm6} dev ${IF.hostV}`);
    const routes6 = await routeLines(lab, '-6');
    expect(routes6).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`^::/1 via ${ADDR.vm6} dev ${IF.hostV}`)), expect.stringMatching(new RegExp(`^8000::/1 via ${ADDR.vm6} dev ${IF.hostV}`))]));
    const [route] = parseIpRouteJson((await lab.host.run(['ip', '-j', '-6', 'route', 'get', ADDR.server6])).stdout, 'inet6');
    expect(route).toMatchObject({ gateway: ADDR.vm6, dev: IF.hostV });
    // The VM gets the IPv6 traffic; the uplink sees none of it.
    const uplink = await lab.capture(lab.ns.host, IF.hostA);
    const vnic = await lab.capture(lab.ns.host, IF.hostV);
    await lab.probe(lab.ns.host, [`udp:[${ADDR.server6}]:443`]);
    expect(sentBy(uplink, await uplink.stop()).filter((p) => p.family === 'ip6' && !isNdp(p)).map((p) => p.line)).toEqual([]);
    expect(sentBy(vnic, await vnic.stop()).some((p) => p.family === 'ip6' && p.dst === ADDR.server6 && p.dstPort === 443)).toBe(true);
    expect((await engine.status()).healthy).toBe(true);

    // Back to block mode: the IPv6 routes of the earlier Up are removed as stale.
    const again: StepRecord[] = [];
    expect(await engine.up(intent({ ipv6: 'block' }), {}, (s) => again.push(s))).toMatchObject({ ok: true });
    expect(again.filter((s) => s.step === 'remove-stale').map((s) => s.state)).toEqual(['started', 'done']);
    expect((await routeLines(lab, '-6')).filter((l) => /^(::|8000::)\/1 /.test(l))).toEqual([]);
  });

  it('dry run: shows the commands, changes nothing; a failing Up rolls back everything it did', async () => {
    engine = newEngine();
    const before = await routeLines(lab);
    const dry: StepRecord[] = [];
    expect(await engine.up(intent(), { dryRun: true }, (s) => dry.push(s))).toMatchObject({ ok: true });
    const planned = dry.flatMap((s) => s.commands.filter((c) => c.dryRun).map((c) => c.argv.join(' ')));
    expect(planned).toEqual(expect.arrayContaining(['nft -f -', `ip route add ${ADDR.server}/32 via ${ADDR.gwA} dev ${IF.hostA}`, `ip route add 0.0.0.0/1 via ${ADDR.vm} dev ${IF.hostV}`]));
    expect(await routeLines(lab)).toEqual(before);
    expect((await lab.host.run(['nft', 'list', 'tables'])).stdout).not.toContain('wgctl');
    expect(engine.journal().phase).toBe('down');

    // Someone else's 128.0.0.0/1 is in the way: Up fails at split-routes and undoes the rest.
    await lab.host.run(['ip', 'route', 'add', '128.0.0.0/1', 'via', ADDR.gwA, 'dev', IF.hostA]);
    const steps: StepRecord[] = [];
    const outcome = await engine.up(intent(), {}, (s) => steps.push(s));
    expect(outcome).toMatchObject({ ok: false, failedStep: 'split-routes' });
    expect(outcome.error).toMatch(/a different route is in the way: 128.0.0.0\/1 via 192.0.2.1 dev wtmha .*\(rolled back\)/);
    expect(steps.filter((s) => s.step.startsWith('rollback-') && s.state === 'done').map((s) => s.step)).toEqual(
      expect.arrayContaining(['rollback-remove-routes', 'rollback-unload-kill-switch']),
    );
    expect(new Set(await routeLines(lab))).toEqual(new Set([...before, `128.0.0.0/1 via ${ADDR.gwA} dev ${IF.hostA}`]));
    expect((await lab.host.run(['nft', 'list', 'tables'])).stdout).not.toContain('wgctl');
    expect(readFileSync(resolvPath(), 'utf8')).toBe(ORIGINAL_RESOLV);
    await lab.host.run(['ip', 'route', 'del', '128.0.0.0/1', 'via', ADDR.gwA, 'dev', IF.hostA]);

    // A VM address that is not on a directly connected network is refused before any change.
    const refused = await engine.up(intent({ vmAddress: '203.0.113.99' }), {}, () => undefined);
    expect(refused).toMatchObject({ ok: false, failedStep: 'discover' });
    expect(refused.error).toMatch(/not on a directly connected network/);
    expect(await routeLines(lab)).toEqual(before);
  });
});
