/**
 * A small self-contained network for the mac-agent's Linux tests, in namespaces named
 * `wtm-<role>-<id>` (documentation prefixes only):
 *
 *   wtm-host (the "Mac")                      wtm-lan (router)                wtm-srv ("WireGuard server")
 *     wtmha 192.0.2.2/26  2001:db8:a::2 ───── wtmla 192.0.2.1 (+ .3)  ─┐
 *     wtmhb 192.0.2.66/26 ───────────────── wtmlb 192.0.2.65          ├─ wtmls 203.0.113.1 ── wtmss 203.0.113.10
 *     wtmhv 192.0.2.129/29 2001:db8:c::1                               │   2001:db8:f::1        2001:db8:f::10
 *        │                                                             │                        198.51.100.10 ("the internet")
 *   wtm-vm: wtmvv 192.0.2.130/29 2001:db8:c::2 (default via the host)
 *
 * The host masquerades the VM's network on whatever leaves another interface (what a
 * hypervisor's NAT does), in a table of the lab's own (`ip wtm_lab_nat`). The host's
 * default route starts on wtmha via 192.0.2.1; wtmhb is a second network to roam to.
 */
import { randomBytes } from 'node:crypto';
import { ExecRunner, spawnStreaming, type RunOptions, type RunResult, type Runner, type StreamingOptions, type StreamingProcess } from '@wgctl/runner';
import { parseTcpdumpLine, type TcpdumpPacket } from '@wgctl/parsers';

/** Prefixes every command with `ip netns exec NS`. */
export class NetnsRunner implements Runner {
  constructor(
    readonly namespace: string,
    private readonly inner: Runner = new ExecRunner(),
  ) {}

  run(argv: readonly string[], options?: RunOptions): Promise<RunResult> {
    return this.inner.run(['ip', 'netns', 'exec', this.namespace, ...argv], options);
  }
}

export function netnsSpawner(namespace: string) {
  return (argv: readonly string[], options: StreamingOptions): StreamingProcess => spawnStreaming(['ip', 'netns', 'exec', namespace, ...argv], options);
}

export const ADDR = {
  hostA: '192.0.2.2',
  gwA: '192.0.2.1',
  gwAlt: '192.0.2.3',
  hostB: '192.0.2.66',
  gwB: '192.0.2.65',
  hostV: '192.0.2.129',
  vm: '192.0.2.130',
  hostA6: '2001:db8:a::2',
  gwA6: '2001:db8:a::1',
  hostV6: '2001:db8:c::1',
  vm6: '2001:db8:c::2',
  server: '203.0.113.10',
  server6: '2001:db8:f::10',
  internet: '198.51.100.10',
  port: 51820,
} as const;

export const IF = { hostA: 'wtmha', hostB: 'wtmhb', hostV: 'wtmhv', vm: 'wtmvv', lanA: 'wtmla', lanB: 'wtmlb', lanS: 'wtmls', srv: 'wtmss' } as const;

/** UDP echo on the server: answers every datagram on ADDR.port (v4 and v6). */
const ECHO_SERVER = `
const dgram = require('dgram');
for (const [type, host] of [['udp4', process.argv[1]], ['udp6', process.argv[2]]]) {
  const s = dgram.createSocket({ type, ipv6Only: type === 'udp6' });
  s.on('message', (m, r) => { s.send(m, r.port, r.address); console.log('rx ' + r.address + ' ' + r.port + ' ' + m.toString()); });
  s.bind(Number(process.argv[3]), host, () => console.log('listening ' + host));
}`;

/** Sends a numbered datagram every N ms from one socket; prints each echo with timestamps. */
const PINGER = `
const dgram = require('dgram');
const [host, port, every] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
let seq = 0;
s.on('message', (m) => { const [n, t] = m.toString().split(' '); console.log('echo ' + n + ' ' + t + ' ' + Date.now()); });
s.on('error', () => undefined);
s.bind(0, () => { console.log('ready'); setInterval(() => s.send(Buffer.from((seq++) + ' ' + Date.now()), port, host, () => undefined), every); });`;

/**
 * One-shot probes: each arg is proto:host:port (udp, tcp) or icmp is done with ping.
 * Never waits long: blocked packets are simply not answered.
 */
const PROBES = `
const dgram = require('dgram'); const net = require('net');
const jobs = process.argv.slice(1).map((spec) => {
  const i = spec.indexOf(':'); const proto = spec.slice(0, i); const rest = spec.slice(i + 1);
  const j = rest.lastIndexOf(':'); const host = rest.slice(0, j).replace(/^\\[|\\]$/g, ''); const port = Number(rest.slice(j + 1));
  return new Promise((done) => {
    if (proto === 'udp') {
      const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
      s.on('error', (e) => { console.log(spec + ' error ' + e.code); s.close(); done(); });
      s.send('probe', port, host, () => setTimeout(() => { try { s.close(); } catch {} ; done(); }, 50));
    } else {
      const c = net.connect({ host, port, timeout: 300 });
      const end = (r) => { console.log(spec + ' ' + r); c.destroy(); done(); };
      c.on('connect', () => end('connected')); c.on('timeout', () => end('timeout')); c.on('error', (e) => end('error ' + e.code));
    }
  });
});
Promise.all(jobs).then(() => process.exit(0));`;

export interface Lab {
  id: string;
  ns: { host: string; lan: string; vm: string; srv: string };
  root: Runner;
  host: NetnsRunner;
  in(ns: string): NetnsRunner;
  destroy(): Promise<void>;
  /** node with a script (from this file) inside a namespace, streamed. */
  node(ns: string, script: 'echo-server' | 'pinger', args: string[], onLine: (line: string) => void): StreamingProcess;
  /** Runs one-shot probes in a namespace (udp:HOST:PORT, tcp:HOST:PORT). */
  probe(ns: string, specs: string[]): Promise<string>;
  ping(ns: string, target: string): Promise<boolean>;
  capture(ns: string, iface: string): Promise<Capture>;
}

export interface Capture {
  packets: TcpdumpPacket[];
  /** Everything seen, both directions. */
  stop(): Promise<TcpdumpPacket[]>;
  /** The MAC of the captured interface: packets with this source MAC were sent by its namespace. */
  mac: string;
}

/**
 * tcpdump on `iface` in namespace `ns`, started and listening when this resolves; the process
 * is tracked in `processes` (for clean-up after a failed test) until `stop`.
 */
export async function startNetnsCapture(ns: string, iface: string, processes: Set<StreamingProcess>): Promise<Capture> {
  const links = await new ExecRunner().run(['ip', '-n', ns, '-j', 'link', 'show', 'dev', iface]);
  const [link] = JSON.parse(links.stdout) as { address: string }[];
  const packets: TcpdumpPacket[] = [];
  let ready!: () => void;
  const listening = new Promise<void>((resolve) => (ready = resolve));
  const proc = spawnStreaming(['ip', 'netns', 'exec', ns, 'tcpdump', '-nn', '-l', '-U', '-e', '-i', iface], {
    onLine: (line) => {
      const p = parseTcpdumpLine(line);
      if (p) packets.push(p);
    },
    onStderrLine: (line) => {
      if (line.startsWith('listening on')) ready();
    },
    onExit: () => ready(),
  });
  processes.add(proc);
  await listening;
  return {
    packets,
    mac: link.address,
    async stop() {
      await new Promise((r) => setTimeout(r, 150)); // let the last packets through
      await proc.stop(1_000);
      processes.delete(proc);
      return packets;
    },
  };
}

/** Only what the namespace sent (tcpdump also shows what arrives, before any filtering). */
export function sentBy(capture: Capture, packets: TcpdumpPacket[]): TcpdumpPacket[] {
  return packets.filter((p) => p.srcMac === capture.mac);
}

const SCRIPTS = { 'echo-server': ECHO_SERVER, pinger: PINGER } as const;

/** The four namespaces and their links, up. Over 80 lines: the Lab's methods and the wiring are one script over the same namespaces, in order. */
export async function createLab(prefix = 'wtm'): Promise<Lab> {
  const id = randomBytes(2).toString('hex');
  // A suite's own prefix keeps its namespaces apart from other suites' (and their clean-up).
  const ns = { host: `${prefix}-host-${id}`, lan: `${prefix}-lan-${id}`, vm: `${prefix}-vm-${id}`, srv: `${prefix}-srv-${id}` };
  const root = new ExecRunner();
  const processes = new Set<StreamingProcess>();
  const inNs = (name: string) => new NetnsRunner(name, root);
  const sh = (name: string, ...argv: string[]) => inNs(name).run(argv);

  const lab: Lab = {
    id,
    ns,
    root,
    host: inNs(ns.host),
    in: inNs,
    async destroy() {
      await Promise.all([...processes].map((p) => p.stop(500)));
      for (const name of Object.values(ns)) await root.run(['ip', 'netns', 'del', name], { allowFailure: true });
    },
    node(name, script, args, onLine) {
      const proc = spawnStreaming(['ip', 'netns', 'exec', name, process.execPath, '-e', SCRIPTS[script], ...args], { onLine });
      processes.add(proc);
      void proc.exited.then(() => processes.delete(proc));
      return proc;
    },
    async probe(name, specs) {
      return (await inNs(name).run([process.execPath, '-e', PROBES, ...specs], { timeoutMs: 5_000 })).stdout;
    },
    async ping(name, target) {
      const r = await inNs(name).run(['ping', '-n', '-c', '1', '-W', '0.5', target], { allowFailure: true, timeoutMs: 5_000 });
      return r.exitCode === 0;
    },
    capture: (name, iface) => startNetnsCapture(name, iface, processes),
  };

  try {
    for (const name of Object.values(ns)) {
      await root.run(['ip', 'netns', 'add', name]);
      await sh(name, 'ip', 'link', 'set', 'lo', 'up');
    }
    const veth = async (a: string, nsA: string, b: string, nsB: string) => {
      await root.run(['ip', 'link', 'add', a, 'netns', nsA, 'type', 'veth', 'peer', 'name', b, 'netns', nsB]);
    };
    await veth(IF.hostA, ns.host, IF.lanA, ns.lan);
    await veth(IF.hostB, ns.host, IF.lanB, ns.lan);
    await veth(IF.hostV, ns.host, IF.vm, ns.vm);
    await veth(IF.lanS, ns.lan, IF.srv, ns.srv);

    const addr = (name: string, dev: string, cidr: string) =>
      sh(name, 'ip', 'addr', 'add', cidr, 'dev', dev, ...(cidr.includes(':') ? ['nodad'] : []));
    // router
    await addr(ns.lan, IF.lanA, '192.0.2.1/26');
    await addr(ns.lan, IF.lanA, '192.0.2.3/26');
    await addr(ns.lan, IF.lanA, '2001:db8:a::1/64');
    await addr(ns.lan, IF.lanB, '192.0.2.65/26');
    await addr(ns.lan, IF.lanS, '203.0.113.1/24');
    await addr(ns.lan, IF.lanS, '2001:db8:f::1/64');
    // host
    await addr(ns.host, IF.hostA, '192.0.2.2/26');
    await addr(ns.host, IF.hostA, '2001:db8:a::2/64');
    await addr(ns.host, IF.hostB, '192.0.2.66/26');
    await addr(ns.host, IF.hostV, '192.0.2.129/29');
    // vm: IPv6 is added by tests that route IPv6 (see enableVmIpv6)
    await addr(ns.vm, IF.vm, '192.0.2.130/29');
    // server
    await addr(ns.srv, IF.srv, '203.0.113.10/24');
    await addr(ns.srv, IF.srv, '198.51.100.10/32');
    await addr(ns.srv, IF.srv, '2001:db8:f::10/64');
    for (const [name, devs] of [
      [ns.lan, [IF.lanA, IF.lanB, IF.lanS]],
      [ns.host, [IF.hostA, IF.hostB, IF.hostV]],
      [ns.vm, [IF.vm]],
      [ns.srv, [IF.srv]],
    ] as const) {
      for (const dev of devs) await sh(name, 'ip', 'link', 'set', dev, 'up');
    }
    await sh(ns.lan, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1');
    await sh(ns.lan, 'ip', 'route', 'add', '198.51.100.0/24', 'via', ADDR.server);
    await sh(ns.host, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    await sh(ns.host, 'ip', 'route', 'add', 'default', 'via', ADDR.gwA, 'dev', IF.hostA);
    await sh(ns.host, 'ip', '-6', 'route', 'add', 'default', 'via', ADDR.gwA6, 'dev', IF.hostA);
    await inNs(ns.host).run(['nft', '-f', '-'], {
      input: `table ip wtm_lab_nat {\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\tip saddr 192.0.2.128/29 oifname != "${IF.hostV}" masquerade\n\t}\n}\n`,
    });
    await sh(ns.vm, 'ip', 'route', 'add', 'default', 'via', ADDR.hostV);
    await sh(ns.srv, 'ip', 'route', 'add', 'default', 'via', '203.0.113.1');
    await sh(ns.srv, 'ip', '-6', 'route', 'add', 'default', 'via', '2001:db8:f::1');
  } catch (e) {
    await lab.destroy();
    throw e;
  }
  return lab;
}

/** Gives the VM (and the host's vnic) IPv6, for the IPv6 route mode. */
export async function enableVmIpv6(lab: Lab): Promise<void> {
  await lab.host.run(['ip', 'addr', 'add', '2001:db8:c::1/64', 'dev', IF.hostV, 'nodad']);
  await lab.in(lab.ns.vm).run(['ip', 'addr', 'add', '2001:db8:c::2/64', 'dev', IF.vm, 'nodad']);
  await lab.in(lab.ns.vm).run(['ip', '-6', 'route', 'add', 'default', 'via', ADDR.hostV6]);
}

/** Tests that need root and namespaces skip only when not root and not in CI. */
export function netnsTestsEnabled(): boolean {
  return (typeof process.getuid === 'function' && process.getuid() === 0) || process.env.CI === 'true';
}
