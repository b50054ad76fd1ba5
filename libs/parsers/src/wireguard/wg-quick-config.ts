/**
 * Parser for wg-quick(8) configuration files (/etc/wireguard/<if>.conf): the [Interface]
 * section with wg-quick's own keys (Address, DNS, MTU, Table, Pre/PostUp/Down, SaveConfig)
 * and wg(8)'s (PrivateKey, ListenPort, FwMark), and every [Peer].
 *
 * Follows wg-quick's reading rules: keys are case-insensitive, `#` starts a comment anywhere,
 * list values are comma separated and may repeat over several lines. Stricter than wg-quick
 * where wg(8) would reject the file anyway (unknown keys, bad keys, bad endpoints), so errors
 * surface with a line number before anything is run.
 *
 * Keys come back as WgSecret (prints "[REDACTED]"); host names in Endpoint are kept as
 * written — resolving them is I/O and belongs to the caller.
 */
import ipaddr from 'ipaddr.js';
import { ParseError } from '../errors';
import { WgSecret, isWgKey } from './secret';

const KIND = 'wg-quick config';

export interface WgEndpoint {
  /** As written, without brackets: an IPv4/IPv6 literal or a host name. */
  host: string;
  port: number;
  /** 4 or 6 for an address literal, 'name' for a host name that needs resolving. */
  family: 4 | 6 | 'name';
}

export interface WgQuickInterface {
  /** Address entries as written (CIDR or bare address), in order. */
  addresses: string[];
  privateKey?: WgSecret;
  listenPort?: number;
  /** 0 = off. */
  fwMark?: number;
  mtu?: number;
  /** 'off', 'auto' or a routing table number/name, as written. */
  table?: string;
  /** Name servers (IP literals). */
  dns: string[];
  /** DNS search domains (the non-IP entries of DNS=). */
  dnsSearch: string[];
  preUp: string[];
  postUp: string[];
  preDown: string[];
  postDown: string[];
  saveConfig: boolean;
}

export interface WgQuickPeer {
  publicKey: string;
  presharedKey?: WgSecret;
  endpoint?: WgEndpoint;
  allowedIps: string[];
  /** Seconds; 0 = off. */
  persistentKeepalive: number;
  /** 1-based line of the [Peer] header, for messages. */
  line: number;
}

export interface WgQuickConfig {
  interface: WgQuickInterface;
  peers: WgQuickPeer[];
}

/** The interface wg-quick derives from a config path (`/etc/wireguard/wg0.conf` → `wg0`), or undefined. */
export function wgQuickInterfaceFromPath(path: string): string | undefined {
  const match = /(?:^|\/)([a-zA-Z0-9_=+.-]{1,15})\.conf$/.exec(path);
  return match ? match[1] : undefined;
}

function isIpLiteral(value: string): boolean {
  return ipaddr.IPv4.isValidFourPartDecimal(value) || (ipaddr.IPv6.isValid(value) && !value.includes('%'));
}

/** 'ADDR' or 'ADDR/PREFIX' with a prefix valid for the family. */
function isWgCidrOrAddress(value: string): boolean {
  const slash = value.indexOf('/');
  const address = slash < 0 ? value : value.slice(0, slash);
  if (!isIpLiteral(address)) return false;
  if (slash < 0) return true;
  const prefixText = value.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) return false;
  return Number(prefixText) <= (address.includes(':') ? 128 : 32);
}

const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/** Parses `host:port` / `[v6]:port` as wg(8) accepts it; undefined when malformed. */
export function parseWgEndpoint(text: string): WgEndpoint | undefined {
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') return undefined;
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    const bare = host.split('%')[0];
    if (!ipaddr.IPv6.isValid(bare)) return undefined;
  } else {
    const colon = text.lastIndexOf(':');
    if (colon <= 0) return undefined;
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) return undefined; // IPv6 needs brackets
    if (!ipaddr.IPv4.isValidFourPartDecimal(host) && (!HOST_NAME.test(host) || /^[0-9.]+$/.test(host))) return undefined;
  }
  if (!/^[0-9]{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65535) return undefined;
  const family = host.includes(':') ? 6 : ipaddr.IPv4.isValidFourPartDecimal(host) ? 4 : 'name';
  return { host, port, family };
}

/**
 * Text of the file as shown in an error message. A run of 20+ base64 characters with an
 * upper-case letter, '+' or '/' could be (part of) a PrivateKey or PresharedKey written on the
 * wrong line or without its '=': it is masked, so no error ever carries a secret. Host names
 * and addresses (lower case, dots, colons) stay readable.
 */
function shownInError(text: string): string {
  return text.replace(/[A-Za-z0-9+/]{20,}={0,2}/g, (run) => (/[A-Z+/]/.test(run) ? `[${run.length} characters hidden]` : run));
}

function splitList(value: string): string[] {
  return value
    .split(/[,\s]+/)
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

function parseUint(value: string, max: number, what: string, line: number): number {
  if (!/^[0-9]+$/.test(value) || Number(value) > max) {
    throw new ParseError(KIND, `${what} must be an integer 0–${max}, got "${shownInError(value)}"`, line);
  }
  return Number(value);
}

function parseBool(value: string, what: string, line: number): boolean {
  const v = value.toLowerCase();
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new ParseError(KIND, `${what} must be true or false, got "${shownInError(value)}"`, line);
}

function requireKey(value: string, what: string, line: number): string {
  if (!isWgKey(value)) throw new ParseError(KIND, `${what} is not a WireGuard key (44 characters of base64 ending in "=")`, line);
  return value;
}

function emptyInterface(): WgQuickInterface {
  return { addresses: [], dns: [], dnsSearch: [], preUp: [], postUp: [], preDown: [], postDown: [], saveConfig: false };
}

/** A [Peer] being read: PublicKey may still be missing. */
type PeerDraft = Partial<WgQuickPeer> & { allowedIps: string[]; line: number };

/** One `Key = Value` line, key lower-cased for matching and as written for messages. */
interface KeyLine {
  key: string;
  keyWritten: string;
  value: string;
  lineNo: number;
}

const REPEATABLE_KEYS = ['address', 'dns', 'allowedips', 'preup', 'postup', 'predown', 'postdown'];

/** Splits `Key = Value` (comment already stripped). */
function splitKeyLine(stripped: string, lineNo: number): KeyLine {
  const eq = stripped.indexOf('=');
  if (eq <= 0) throw new ParseError(KIND, `expected "Key = Value", got "${shownInError(stripped)}"`, lineNo);
  const keyWritten = stripped.slice(0, eq).trim();
  return { key: keyWritten.toLowerCase(), keyWritten, value: stripped.slice(eq + 1).trim(), lineNo };
}

function parseFwMark(value: string, lineNo: number): number {
  if (value.toLowerCase() === 'off') return 0;
  if (/^0x[0-9a-f]{1,8}$/i.test(value)) return Number.parseInt(value.slice(2), 16);
  return parseUint(value, 0xffffffff, 'FwMark', lineNo);
}

function addDnsEntries(iface: WgQuickInterface, value: string, lineNo: number): void {
  for (const v of splitList(value)) {
    // wg-quick's own test: digits-and-dots or anything with a colon is a server.
    if (/^[0-9.]+$/.test(v) || v.includes(':')) {
      if (!isIpLiteral(v)) throw new ParseError(KIND, `DNS server "${shownInError(v)}" is not an IP address`, lineNo);
      iface.dns.push(v);
    } else {
      iface.dnsSearch.push(v);
    }
  }
}

/** Applies one [Interface] key. */
function applyInterfaceKey(iface: WgQuickInterface, { key, keyWritten, value, lineNo }: KeyLine): void {
  switch (key) {
    case 'address':
      for (const a of splitList(value)) {
        if (!isWgCidrOrAddress(a)) throw new ParseError(KIND, `Address "${shownInError(a)}" is not an IP address or CIDR`, lineNo);
        iface.addresses.push(a);
      }
      break;
    case 'privatekey':
      iface.privateKey = new WgSecret(requireKey(value, 'PrivateKey', lineNo));
      break;
    case 'listenport':
      iface.listenPort = parseUint(value, 65535, 'ListenPort', lineNo);
      break;
    case 'fwmark':
      iface.fwMark = parseFwMark(value, lineNo);
      break;
    case 'mtu':
      iface.mtu = parseUint(value, 65535, 'MTU', lineNo);
      if (iface.mtu < 576) throw new ParseError(KIND, `MTU ${iface.mtu} is below the minimum of 576`, lineNo);
      break;
    case 'table':
      if (value === '') throw new ParseError(KIND, 'Table is empty', lineNo);
      iface.table = value;
      break;
    case 'dns':
      addDnsEntries(iface, value, lineNo);
      break;
    case 'preup':
      iface.preUp.push(value);
      break;
    case 'postup':
      iface.postUp.push(value);
      break;
    case 'predown':
      iface.preDown.push(value);
      break;
    case 'postdown':
      iface.postDown.push(value);
      break;
    case 'saveconfig':
      iface.saveConfig = parseBool(value, 'SaveConfig', lineNo);
      break;
    default:
      throw new ParseError(KIND, `unknown [Interface] key ${shownInError(keyWritten)}`, lineNo);
  }
}

/** Applies one [Peer] key. */
function applyPeerKey(peer: PeerDraft, { key, keyWritten, value, lineNo }: KeyLine): void {
  switch (key) {
    case 'publickey':
      peer.publicKey = requireKey(value, 'PublicKey', lineNo);
      break;
    case 'presharedkey':
      peer.presharedKey = new WgSecret(requireKey(value, 'PresharedKey', lineNo));
      break;
    case 'endpoint': {
      const endpoint = parseWgEndpoint(value);
      if (!endpoint) {
        throw new ParseError(KIND, `Endpoint "${shownInError(value)}" is not HOST:PORT or [IPV6]:PORT`, lineNo);
      }
      peer.endpoint = endpoint;
      break;
    }
    case 'allowedips':
      for (const a of splitList(value)) {
        if (!isWgCidrOrAddress(a)) throw new ParseError(KIND, `AllowedIPs entry "${shownInError(a)}" is not an IP address or CIDR`, lineNo);
        peer.allowedIps.push(a);
      }
      break;
    case 'persistentkeepalive':
      peer.persistentKeepalive = value.toLowerCase() === 'off' ? 0 : parseUint(value, 65535, 'PersistentKeepalive', lineNo);
      break;
    default:
      throw new ParseError(KIND, `unknown [Peer] key ${shownInError(keyWritten)}`, lineNo);
  }
}

/** Checks a finished [Peer] (PublicKey present, not a duplicate) and appends it to peers. */
function finishPeer(peer: PeerDraft, peers: WgQuickPeer[]): void {
  if (!peer.publicKey) throw new ParseError(KIND, '[Peer] has no PublicKey', peer.line);
  if (peers.some((p) => p.publicKey === peer.publicKey)) {
    throw new ParseError(KIND, `duplicate [Peer] with PublicKey ${peer.publicKey}`, peer.line);
  }
  peers.push({
    publicKey: peer.publicKey,
    presharedKey: peer.presharedKey,
    endpoint: peer.endpoint,
    allowedIps: peer.allowedIps,
    persistentKeepalive: peer.persistentKeepalive ?? 0,
    line: peer.line,
  });
}

/** Parses the text of a wg-quick config file. Throws ParseError (with the line) on anything wg-quick/wg would reject. */
export function parseWgQuickConfig(text: string): WgQuickConfig {
  let iface: WgQuickInterface | undefined;
  const peers: WgQuickPeer[] = [];
  let section: 'none' | 'interface' | 'peer' = 'none';
  let peer: PeerDraft | undefined;
  const seenKeys = new Set<string>();

  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const stripped = lines[i].replace(/#.*$/, '').trim();
    if (stripped === '') continue;
    if (stripped.startsWith('[')) {
      const name = stripped.toLowerCase();
      if (peer) finishPeer(peer, peers);
      peer = undefined;
      seenKeys.clear();
      if (name === '[interface]') {
        if (iface) throw new ParseError(KIND, 'a second [Interface] section', lineNo);
        iface = emptyInterface();
        section = 'interface';
      } else if (name === '[peer]') {
        peer = { allowedIps: [], line: lineNo };
        section = 'peer';
      } else {
        throw new ParseError(KIND, `unknown section ${shownInError(stripped)}`, lineNo);
      }
      continue;
    }
    const keyLine = splitKeyLine(stripped, lineNo);
    const { key, keyWritten } = keyLine;
    if (!REPEATABLE_KEYS.includes(key) && seenKeys.has(key)) {
      throw new ParseError(KIND, `${shownInError(keyWritten)} is set twice in one section`, lineNo);
    }
    seenKeys.add(key);

    if (section === 'interface' && iface) applyInterfaceKey(iface, keyLine);
    else if (section === 'peer' && peer) applyPeerKey(peer, keyLine);
    else throw new ParseError(KIND, `${shownInError(keyWritten)} appears before any [Interface] or [Peer] section`, lineNo);
  }
  if (peer) finishPeer(peer, peers);
  if (!iface) throw new ParseError(KIND, 'no [Interface] section');
  return { interface: iface, peers };
}
