/**
 * A leak no kill switch can stop: frames written straight onto an interface through a packet
 * socket (AF_PACKET on Linux, as BPF writes on macOS) never meet nftables/PF. The verify tests
 * use it to put the Mac's own traffic outside the tunnel on its uplink while the agent's
 * self-healing keeps the kill switch in place. python3 (the standard library) builds the frames:
 * node has no packet sockets.
 */
import { inNamespace, resolveNamespace, type Lab } from '../lab/src';
import { ExecRunner, type RunResult } from '@wgctl/runner';

/** argv: iface src-mac dst-mac src-ip dst-ip kind(icmp|mdns) count interval-s */
const INJECT_PY = String.raw`
import socket, struct, sys, time
iface, smac, dmac, sip, dip, kind, count, interval = sys.argv[1:9]
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return (~s) & 0xffff
def ip4(proto, payload, ttl):
    h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), 7, 0, ttl, proto, 0, socket.inet_aton(sip), socket.inet_aton(dip))
    return h[:10] + struct.pack('!H', csum(h)) + h[12:] + payload
def frame(seq):
    if kind == 'icmp':
        body = b'wgctl-verify-leak'
        icmp = struct.pack('!BBHHH', 8, 0, 0, 0x4c4b, seq) + body
        icmp = icmp[:2] + struct.pack('!H', csum(icmp)) + icmp[4:]
        payload = ip4(1, icmp, 64)
    else:
        q = b'\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x04_ipp\x04_tcp\x05local\x00\x00\x0c\x00\x01'
        payload = ip4(17, struct.pack('!HHHH', 5353, 5353, 8 + len(q), 0) + q, 255)
    mac = lambda m: bytes(int(x, 16) for x in m.split(':'))
    return mac(dmac) + mac(smac) + b'\x08\x00' + payload
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
for i in range(int(count)):
    s.send(frame(i + 1))
    time.sleep(float(interval))
`;

export interface InjectOptions {
  iface: string;
  srcMac: string;
  dstMac: string;
  srcIp: string;
  dstIp: string;
  kind: 'icmp' | 'mdns';
  count: number;
  intervalS: number;
}

/** Writes `count` IPv4 frames onto `iface` inside the lab namespace, bypassing its firewall. */
export function injectFrames(lab: Lab, ns: string, o: InjectOptions): Promise<RunResult> {
  const argv = ['python3', '-c', INJECT_PY, o.iface, o.srcMac, o.dstMac, o.srcIp, o.dstIp, o.kind, String(o.count), String(o.intervalS)];
  return new ExecRunner().run(inNamespace(resolveNamespace(lab, ns), argv), { timeoutMs: 30_000 });
}

/** An interface's MAC inside a lab namespace. */
export async function linkAddress(lab: Lab, ns: string, iface: string): Promise<string> {
  const r = await new ExecRunner().run(['ip', '-n', resolveNamespace(lab, ns), '-j', 'link', 'show', 'dev', iface], { readOnly: true });
  return (JSON.parse(r.stdout) as { address: string }[])[0].address;
}
