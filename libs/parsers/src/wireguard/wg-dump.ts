/**
 * Parsers for `wg show <if> dump`, `wg show all dump` and the small `wg show <if> <field>`
 * outputs (src/show.c in wireguard-tools). Tab separated, one record per line:
 *
 *   interface: private-key public-key listen-port fwmark                       (4 fields)
 *   peer:      public-key preshared-key endpoint allowed-ips latest-handshake
 *              rx-bytes tx-bytes persistent-keepalive                         (8 fields)
 *   `all`:     the same, each line prefixed by the interface name             (5 / 9 fields)
 *
 * Sentinels: `(none)` for a missing key/endpoint/allowed-ips, `off` for fwmark 0 and no
 * keepalive, handshake `0` = never. rx/tx are uint64: kept as decimal strings (BigInt-safe).
 *
 * The dump carries the interface private key and peer preshared keys: they never leave this
 * module (only `hasPrivateKey` / `hasPresharedKey`), and no error message quotes a key field.
 * Peer order in the dump is not stable: callers key peers by public key.
 */
import { ParseError } from '../errors';

const KIND = 'wg show dump';
const NONE = '(none)';

export interface WgDumpEndpoint {
  /** Address without brackets (an IPv6 link-local keeps its %zone). */
  host: string;
  port: number;
  family: 4 | 6;
}

export interface WgDumpPeer {
  publicKey: string;
  hasPresharedKey: boolean;
  /** The endpoint as printed (`[2001:db8::1]:51820`), or null for (none). */
  endpointText: string | null;
  /** Parsed endpoint; null for (none) or when wg printed a resolver error instead of an address. */
  endpoint: WgDumpEndpoint | null;
  allowedIps: string[];
  /** Unix seconds; 0 = never. */
  latestHandshake: number;
  /** uint64 as a decimal string. */
  rxBytes: string;
  txBytes: string;
  /** Seconds; 0 = off. */
  persistentKeepalive: number;
}

export interface WgDumpInterface {
  /** Set by parseWgDumpAll (the line prefix); the caller knows it for a single-interface dump. */
  name?: string;
  /** null when the interface has no private key yet. */
  publicKey: string | null;
  hasPrivateKey: boolean;
  listenPort: number;
  /** 0 = off. */
  fwmark: number;
  peers: WgDumpPeer[];
}

function isDigits(s: string): boolean {
  if (s.length === 0 || s.length > 20) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** Quotes a bad value for an error message, unless it is long enough to be a key. */
function quote(s: string): string {
  return s.length <= 20 ? `"${s}"` : `(${s.length} characters)`;
}

/**
 * Value of a decimal string of at most 15 digits, or -1. A hand loop rather than Number():
 * under jest's vm sandbox every global lookup is slow, and this runs 30,000 times per 10k peers.
 */
function digitsValue(s: string): number {
  if (s.length === 0 || s.length > 15) return -1;
  let v = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}

function uint(s: string, what: string, line: number): number {
  const v = digitsValue(s);
  if (v < 0) throw new ParseError(KIND, `${what} is not a number: ${quote(s)}`, line);
  return v;
}

/** Shape check only (44 chars ending in '='); the dump comes from wg itself. */
function key(s: string, what: string, line: number): string {
  if (s.length !== 44 || s.charCodeAt(43) !== 61 /* = */) throw new ParseError(KIND, `${what} is not a WireGuard key`, line);
  return s;
}

/** Parses the endpoint column: `a.b.c.d:port`, `[v6]:port`, `[fe80::1%eth0]:port`. */
export function parseWgDumpEndpoint(text: string): WgDumpEndpoint | null {
  if (text === NONE) return null;
  const colon = text.lastIndexOf(':');
  if (colon <= 0) return null;
  const portText = text.slice(colon + 1);
  const port = digitsValue(portText);
  if (port < 0 || port > 65535) return null;
  if (text.charCodeAt(0) === 91 /* [ */) {
    if (text.charCodeAt(colon - 1) !== 93 /* ] */) return null;
    return { host: text.slice(1, colon - 1), port, family: 6 };
  }
  const host = text.slice(0, colon);
  return /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) ? { host, port, family: 4 } : null;
}

function parseInterfaceFields(f: string[], o: number, line: number, name?: string): WgDumpInterface {
  const priv = f[o];
  const pub = f[o + 1];
  const fw = f[o + 3];
  return {
    name,
    hasPrivateKey: priv !== NONE && (key(priv, 'private key', line), true),
    publicKey: pub === NONE ? null : key(pub, 'public key', line),
    listenPort: uint(f[o + 2], 'listen-port', line),
    fwmark: fw === 'off' ? 0 : fw.startsWith('0x') ? Number.parseInt(fw.slice(2), 16) : uint(fw, 'fwmark', line),
    peers: [],
  };
}

function parsePeerFields(f: string[], o: number, line: number): WgDumpPeer {
  const endpointText = f[o + 2];
  const allowed = f[o + 3];
  const ka = f[o + 7];
  const rx = f[o + 5];
  const tx = f[o + 6];
  if (!isDigits(rx)) throw new ParseError(KIND, `rx-bytes is not a number: ${quote(rx)}`, line);
  if (!isDigits(tx)) throw new ParseError(KIND, `tx-bytes is not a number: ${quote(tx)}`, line);
  return {
    publicKey: key(f[o], 'peer public key', line),
    hasPresharedKey: f[o + 1] !== NONE,
    endpointText: endpointText === NONE ? null : endpointText,
    endpoint: parseWgDumpEndpoint(endpointText),
    allowedIps: allowed === NONE || allowed === '' ? [] : allowed.split(','),
    latestHandshake: uint(f[o + 4], 'latest-handshake', line),
    rxBytes: rx,
    txBytes: tx,
    persistentKeepalive: ka === 'off' ? 0 : uint(ka, 'persistent-keepalive', line),
  };
}

function lines(text: string): string[] {
  const all = text.split('\n');
  if (all.length > 0 && all[all.length - 1] === '') all.pop();
  return all;
}

/**
 * Splits `text[start, end)` on tabs into `out` (reused between lines: no per-line array
 * allocation — this is what keeps a 10,000-peer dump within a few milliseconds).
 */
function splitTabs(text: string, start: number, end: number, out: string[]): number {
  let n = 0;
  let pos = start;
  while (n < 10) {
    const tab = text.indexOf('\t', pos);
    if (tab < 0 || tab >= end) {
      out[n++] = text.slice(pos, end);
      return n;
    }
    out[n++] = text.slice(pos, tab);
    pos = tab + 1;
  }
  return n + 1; // more than 10 fields: reported as a bad count
}

/** Parses `wg show <if> dump`. */
export function parseWgDump(text: string): WgDumpInterface {
  const f: string[] = new Array(10);
  let lineStart = 0;
  let lineNo = 0;
  let iface: WgDumpInterface | undefined;
  while (lineStart < text.length) {
    let lineEnd = text.indexOf('\n', lineStart);
    if (lineEnd < 0) lineEnd = text.length;
    lineNo++;
    const count = splitTabs(text, lineStart, lineEnd, f);
    lineStart = lineEnd + 1;
    if (!iface) {
      if (count === 5) throw new ParseError(KIND, '5 fields on line 1: this is `wg show all dump`, use parseWgDumpAll', 1);
      if (count !== 4) throw new ParseError(KIND, `interface line has ${count} fields, expected 4`, 1);
      iface = parseInterfaceFields(f, 0, 1);
      continue;
    }
    if (count !== 8) throw new ParseError(KIND, `peer line has ${count} fields, expected 8`, lineNo);
    iface.peers.push(parsePeerFields(f, 0, lineNo));
  }
  if (!iface) throw new ParseError(KIND, 'empty output (expected the interface line)');
  return iface;
}

/** Parses `wg show all dump` (every line prefixed by the interface name). Empty output = no interfaces. */
export function parseWgDumpAll(text: string): WgDumpInterface[] {
  const rows = lines(text);
  const byName = new Map<string, WgDumpInterface>();
  for (let i = 0; i < rows.length; i++) {
    const f = rows[i].split('\t');
    const name = f[0];
    if (f.length === 5) {
      if (byName.has(name)) throw new ParseError(KIND, `second interface line for ${name}`, i + 1);
      byName.set(name, parseInterfaceFields(f, 1, i + 1, name));
    } else if (f.length === 9) {
      const iface = byName.get(name);
      if (!iface) throw new ParseError(KIND, `peer line for ${name} before its interface line`, i + 1);
      iface.peers.push(parsePeerFields(f, 1, i + 1));
    } else {
      throw new ParseError(KIND, `${f.length} fields, expected 5 (interface) or 9 (peer)`, i + 1);
    }
  }
  return [...byName.values()];
}

/** Parses `wg show <if> latest-handshakes`: public key → unix seconds (0 = never). */
export function parseWgLatestHandshakes(text: string): Map<string, number> {
  const out = new Map<string, number>();
  lines(text).forEach((row, i) => {
    const f = row.split('\t');
    if (f.length !== 2) throw new ParseError('wg show latest-handshakes', `${f.length} fields, expected 2`, i + 1);
    out.set(key(f[0], 'public key', i + 1), uint(f[1], 'latest-handshake', i + 1));
  });
  return out;
}

/** Parses `wg show <if> transfer`: public key → rx/tx bytes (decimal strings). */
export function parseWgTransfer(text: string): Map<string, { rxBytes: string; txBytes: string }> {
  const out = new Map<string, { rxBytes: string; txBytes: string }>();
  lines(text).forEach((row, i) => {
    const f = row.split('\t');
    if (f.length !== 3 || !isDigits(f[1]) || !isDigits(f[2])) {
      throw new ParseError('wg show transfer', 'expected "public-key<TAB>rx<TAB>tx"', i + 1);
    }
    out.set(key(f[0], 'public key', i + 1), { rxBytes: f[1], txBytes: f[2] });
  });
  return out;
}

/** Seconds since the handshake at `nowMs`, or -1 for never (0). Never negative for a past handshake. */
export function wgHandshakeAgeSeconds(latestHandshake: number, nowMs: number): number {
  if (latestHandshake === 0) return -1;
  return Math.max(0, Math.floor(nowMs / 1000) - latestHandshake);
}
