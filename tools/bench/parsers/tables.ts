/**
 * Large, realistic inputs for the parser benchmark, generated from a seeded PRNG (the same
 * text every run): `wg show wg0 dump` with 10,000 peers (and as `wg show all dump`, for the
 * whole `wgctl debug parse` process), `netstat -rn` in the Big Sur+ and the
 * Mojave layouts, `pfctl -sr` plain and `-v`, `ip -j route`, `iptables -S`.
 */

/** mulberry32: small, fast, deterministic. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rand = () => number;
const int = (rand: Rand, n: number) => Math.floor(rand() * n);
const pick = <T>(rand: Rand, list: readonly T[]): T => list[int(rand, list.length)];
const hex = (rand: Rand, max = 0xffff) => int(rand, max + 1).toString(16);

/** A WireGuard key: 32 random bytes in base64 (44 characters ending in '='). */
function wgKey(rand: Rand): string {
  const bytes = Buffer.alloc(32);
  for (let i = 0; i < 32; i++) bytes[i] = int(rand, 256);
  return bytes.toString('base64');
}

export function wgDump(peers: number, seed = 1): string {
  const rand = prng(seed);
  const lines = [`${wgKey(rand)}\t${wgKey(rand)}\t51820\toff`];
  for (let i = 0; i < peers; i++) {
    const v6 = rand() < 0.3;
    const endpoint =
      rand() < 0.05
        ? '(none)'
        : v6
          ? `[2001:db8:${hex(rand)}:${hex(rand)}::${hex(rand)}]:${1024 + int(rand, 60000)}`
          : `203.0.113.${int(rand, 256)}:${1024 + int(rand, 60000)}`;
    const allowed = [`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}/32`, `fd00:${hex(rand)}::${hex(rand)}/128`];
    for (let extra = int(rand, 4); extra > 0; extra--) allowed.push(`198.51.${int(rand, 256)}.0/24`);
    const handshake = rand() < 0.2 ? '0' : String(1_700_000_000 + int(rand, 10_000_000));
    const psk = rand() < 0.5 ? wgKey(rand) : '(none)';
    const keepalive = rand() < 0.5 ? 'off' : '25';
    lines.push(
      [wgKey(rand), psk, endpoint, allowed.join(','), handshake, String(int(rand, 2 ** 40)), String(int(rand, 2 ** 40)), keepalive].join('\t'),
    );
  }
  return lines.join('\n') + '\n';
}

/** `wg show all dump`: the same table for interface wg0, each line led by the interface name. */
export function wgDumpAll(peers: number, seed = 1): string {
  return wgDump(peers, seed).replace(/^(?=.)/gm, 'wg0\t');
}

function mac(rand: Rand): string {
  // netstat prints MAC bytes without leading zeros.
  return Array.from({ length: 6 }, () => int(rand, 256).toString(16)).join(':');
}

/** One IPv4 row's fields: destination, gateway, flags, netif, expire ('' when none). */
function netstatInetRow(rand: Rand, i: number): [string, string, string, string, string] {
  const kind = i === 0 ? 0 : 1 + int(rand, 5);
  switch (kind) {
    case 0:
      return ['default', '192.0.2.1', 'UGScg', 'en0', ''];
    case 1: // ARP entries of the LAN
      return [`192.0.2.${int(rand, 256)}`, mac(rand), 'UHLWIi', 'en0', String(int(rand, 1200))];
    case 2: // host routes through the gateway
      return [`203.0.113.${int(rand, 256)}/32`, '192.0.2.1', 'UGSc', 'en0', ''];
    case 3: // classful-abbreviated networks on links
      return [`10.${int(rand, 256)}.${int(rand, 256)}/24`, `link#${1 + int(rand, 30)}`, 'UCS', pick(rand, ['en0', 'bridge100', 'vnic0']), ''];
    case 4: // routes via tunnels
      return [`198.51.${int(rand, 256)}/24`, pick(rand, ['utun3', 'utun4']), 'USc', pick(rand, ['utun3', 'utun4']), ''];
    default: // interface-scoped duplicates
      return [`172.16.${int(rand, 256)}.${int(rand, 256)}`, '192.0.2.1', 'UGHSI', 'en0', ''];
  }
}

function netstatInet6Row(rand: Rand, i: number): [string, string, string, string, string] {
  if (i === 0) return ['default', 'fe80::1%en0', 'UGcg', 'en0', ''];
  if (rand() < 0.5) return [`2001:db8:c1::${hex(rand)}`, mac(rand), 'UHLWI', 'en0', ''];
  const u = `utun${int(rand, 8)}`;
  return [`fe80::%${u}/64`, `fe80::${hex(rand)}:${hex(rand)}%${u}`, 'UcI', u, ''];
}

/**
 * `netstat -rn` with `rows` routes (80% IPv4, 20% IPv6). `modern`: Big Sur and later (no
 * Refs/Use); otherwise the Mojave layout with Refs and Use.
 */
export function netstatRn(rows: number, modern: boolean, seed = 2): string {
  const rand = prng(seed);
  const v4 = Math.round(rows * 0.8);
  const out = ['Routing tables', '', 'Internet:'];
  out.push(
    modern
      ? `${'Destination'.padEnd(19)}${'Gateway'.padEnd(19)}${'Flags'.padEnd(13)}Netif Expire`
      : `${'Destination'.padEnd(19)}${'Gateway'.padEnd(19)}${'Flags'.padEnd(13)}Refs      Use   Netif Expire`,
  );
  const format = (f: [string, string, string, string, string], destWidth: number, gwWidth: number) => {
    const [dest, gw, flags, netif, expire] = f;
    const counters = modern ? '' : `${String(int(rand, 100)).padStart(4)} ${String(int(rand, 100000)).padStart(8)} `;
    return `${dest.padEnd(destWidth - 1)} ${gw.padEnd(gwWidth - 1)} ${flags.padEnd(11)} ${counters}${netif.padStart(6)}${expire ? expire.padStart(7) : ''}`;
  };
  for (let i = 0; i < v4; i++) out.push(format(netstatInetRow(rand, i), 19, 19));
  out.push('', 'Internet6:');
  out.push(`${'Destination'.padEnd(40)}${'Gateway'.padEnd(32)}${'Flags'.padEnd(14)}Netif Expire`);
  for (let i = 0; i < rows - v4; i++) {
    const [dest, gw, flags, netif] = netstatInet6Row(rand, i);
    out.push(`${dest.padEnd(39)} ${gw.padEnd(31)} ${flags.padEnd(13)} ${netif.padStart(6)}`);
  }
  return out.join('\n') + '\n';
}

function pfRule(rand: Rand, i: number): string {
  switch (i === 0 ? 0 : 1 + int(rand, 6)) {
    case 0:
      return 'scrub-anchor "com.apple/*" all fragment reassemble';
    case 1:
      return `pass out quick on en0 inet proto udp from any to 203.0.113.${int(rand, 256)} port = ${1024 + int(rand, 60000)} keep state`;
    case 2:
      return `pass out quick on en0 inet proto tcp from 192.0.2.100 to 198.51.100.${int(rand, 256)} port = 443 flags S/SA keep state`;
    case 3:
      return `pass quick on ${pick(rand, ['lo0', 'bridge100', 'vnic0'])} all flags S/SA keep state`;
    case 4:
      return `block drop out quick on en0 inet6 from any to 2001:db8:${hex(rand)}::/48`;
    case 5:
      return `pass out quick on en0 inet proto udp from any port = 68 to any port = 67 keep state`;
    default:
      return `anchor "com.wgctl/${i}" all`;
  }
}

/** `pfctl -sr` (or `-v -sr`, with counter lines under each rule) with `rules` rules. */
export function pfctlRules(rules: number, verbose: boolean, seed = 3): string {
  const rand = prng(seed);
  const out = ['No ALTQ support in kernel', 'ALTQ related functions disabled'];
  for (let i = 0; i < rules; i++) {
    out.push(pfRule(rand, i));
    if (verbose) {
      out.push(
        `  [ Evaluations: ${String(int(rand, 1e6)).padEnd(9)} Packets: ${String(int(rand, 1e6)).padEnd(9)} Bytes: ${String(int(rand, 1e9)).padEnd(11)} States: ${String(int(rand, 100)).padEnd(5)} ]`,
      );
      out.push(`  [ Inserted: uid 0 pid ${int(rand, 99999)} State Creations: ${int(rand, 1000)}     ]`);
    }
  }
  return out.join('\n') + '\n';
}

/** `ip -j route show` with `rows` routes. */
export function ipRouteJson(rows: number, seed = 4): string {
  const rand = prng(seed);
  const routes: Record<string, unknown>[] = [{ dst: 'default', gateway: '192.0.2.1', dev: 'eth0', protocol: 'dhcp', metric: 100, flags: [] }];
  for (let i = 1; i < rows; i++) {
    if (rand() < 0.5) {
      routes.push({ dst: `10.${int(rand, 256)}.${int(rand, 256)}.0/24`, gateway: '192.0.2.1', dev: 'eth0', flags: [] });
    } else {
      routes.push({ dst: `203.0.113.${int(rand, 256)}`, dev: pick(rand, ['eth0', 'wg0']), protocol: 'kernel', scope: 'link', flags: ['onlink'] });
    }
  }
  return JSON.stringify(routes);
}

/** `iptables -S` with `rules` rules in FORWARD and a user chain. */
export function iptablesS(rules: number, seed = 5): string {
  const rand = prng(seed);
  const out = ['-P INPUT ACCEPT', '-P FORWARD DROP', '-P OUTPUT ACCEPT', '-N WGCTL-FWD'];
  for (let i = 0; i < rules; i++) {
    out.push(
      rand() < 0.5
        ? `-A WGCTL-FWD -s 198.51.100.${int(rand, 256)}/32 -i eth0 -o wg0 -m comment --comment "wgctl forward ${i}" -j ACCEPT`
        : `-A FORWARD -d 10.${int(rand, 256)}.${int(rand, 256)}.0/24 -i wg0 -o eth0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
    );
  }
  return out.join('\n') + '\n';
}
