/**
 * The tests' own instruments, independent of the product: tcpdump in a namespace, ping, and
 * a snapshot of everything an agent may change in a namespace (routes, rules, firewall,
 * sysctls, links, resolv.conf) to compare before and after.
 */
import { readFileSync } from 'node:fs';
import { parseTcpdumpLine, type TcpdumpPacket } from '@wgctl/parsers';
import { ExecRunner, spawnStreaming, type StreamingProcess } from '@wgctl/runner';
import { labExec, resolveNamespace, type Lab } from '../lab/src';
import { inNamespace } from '../lab/src/plan';

export interface RunningCapture {
  readonly interface: string;
  /** Stops tcpdump and returns every packet it printed. */
  stop(): Promise<TcpdumpPacket[]>;
}

/** tcpdump -nn -l -p --immediate-mode -i IF in a lab namespace; resolves once it listens. */
export async function startCapture(lab: Lab, ns: string, iface: string, filter: string[] = []): Promise<RunningCapture> {
  const packets: TcpdumpPacket[] = [];
  let listening: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (listening = resolve));
  const proc: StreamingProcess = spawnStreaming(inNamespace(resolveNamespace(lab, ns), ['tcpdump', '-nn', '-l', '-p', '--immediate-mode', '-i', iface, ...filter]), {
    onLine: (line) => {
      const p = parseTcpdumpLine(line);
      if (p) packets.push(p);
    },
    onStderrLine: (line) => {
      if (/^listening on /.test(line)) listening();
    },
  });
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    ready.then(() => 'ready' as const),
    proc.exited.then(() => 'exited' as const),
    new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), 5000))),
  ]);
  clearTimeout(timer);
  if (outcome !== 'ready') {
    await proc.stop(500);
    throw new Error(`tcpdump on ${ns}/${iface} did not start (${outcome}): ${proc.stderrTail().join(' | ')}`);
  }
  return {
    interface: iface,
    async stop() {
      await proc.stop(1000);
      return packets;
    },
  };
}

export function formatPacket(p: TcpdumpPacket): string {
  return p.line.replace(/^\S+\s+/, '');
}

export interface PingResult {
  ok: boolean;
  transmitted: number;
  received: number;
  output: string;
}

/** ping from a lab namespace; `ok` means at least one reply. */
export async function ping(lab: Lab, ns: string, target: string, options: { count?: number; intervalS?: number; waitS?: number } = {}): Promise<PingResult> {
  const count = options.count ?? 3;
  const r = await labExec(lab, ns, ['ping', '-n', '-c', String(count), '-i', String(options.intervalS ?? 0.2), '-W', String(options.waitS ?? 1), target], {
    allowFailure: true,
    timeoutMs: 30_000,
  });
  const summary = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  const transmitted = summary ? Number(summary[1]) : 0;
  const received = summary ? Number(summary[2]) : 0;
  return { ok: received > 0, transmitted, received, output: `${r.stdout}${r.stderr}`.trim() };
}

/** What an agent may change in a namespace, normalised so that only real changes differ. */
export type NetworkSnapshot = Record<string, string>;

const SNAPSHOT_COMMANDS: Record<string, string[]> = {
  'ip route': ['ip', 'route', 'show', 'table', 'all'],
  'ip -6 route': ['ip', '-6', 'route', 'show', 'table', 'all'],
  'ip rule': ['ip', 'rule'],
  'ip -6 rule': ['ip', '-6', 'rule'],
  'nft list ruleset': ['nft', 'list', 'ruleset'],
  'iptables-save': ['iptables-save'],
  'ip6tables-save': ['ip6tables-save'],
  links: ['ip', '-br', 'link'],
  sysctls: ['sysctl', 'net.ipv4.ip_forward', 'net.ipv6.conf.all.forwarding', 'net.ipv4.conf.all.src_valid_mark'],
};

function normalise(name: string, text: string): string {
  const lines = text
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'))
    // Packet counters move with traffic; they are not state an agent leaves behind.
    .map((line) => line.replace(/\[\d+:\d+\]/g, '[0:0]').replace(/counter packets \d+ bytes \d+/g, 'counter'))
    // Link state words (UP/LOWER_UP, carrier) follow traffic and roaming, names do not.
    .map((line) => (name === 'links' ? line.split(/\s+/)[0] : line.trimEnd()));
  return lines.sort().join('\n');
}

export async function snapshotNetwork(lab: Lab, roles: string[] = ['mac', 'vm']): Promise<NetworkSnapshot> {
  const runner = new ExecRunner();
  const snapshot: NetworkSnapshot = {};
  for (const role of roles) {
    for (const [name, argv] of Object.entries(SNAPSHOT_COMMANDS)) {
      const r = await labExec(lab, role, argv, { runner, readOnly: true, allowFailure: true });
      snapshot[`${role}: ${name}`] = r.exitCode === 0 ? normalise(name, r.stdout) : `(exit ${r.exitCode}) ${r.stderr.trim()}`;
    }
    if (role === 'mac') snapshot['mac: resolv.conf'] = readFileSync(lab.paths.resolvConf.mac, 'utf8');
  }
  return snapshot;
}

/** The entries that differ, as "key:\n- before\n+ after" blocks (empty when equal). */
export function diffSnapshots(before: NetworkSnapshot, after: NetworkSnapshot): string[] {
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])];
  return keys
    .filter((k) => before[k] !== after[k])
    .map((k) => {
      const a = new Set((before[k] ?? '').split('\n'));
      const b = new Set((after[k] ?? '').split('\n'));
      const removed = [...a].filter((l) => !b.has(l)).map((l) => `- ${l}`);
      const added = [...b].filter((l) => !a.has(l)).map((l) => `+ ${l}`);
      return `${k}:\n${[...removed, ...added].join('\n')}`;
    });
}

/** Polls until `check` returns a truthy value; returns it, or throws naming `what`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined | null | false>, timeoutMs: number, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined | null | false;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
