/**
 * macOS `ifconfig` (all interfaces, or one). An interface starts at column 0
 * (`en0: flags=8863<UP,…> mtu 1500`); its details are indented (a TAB on a real Mac, spaces in
 * some quoted captures). Netmasks are hex (`0xffffff00`). The hypervisors' host side shows as
 * `bridge100` (vmnet shared, with `member: vmenet0`), `bridge101` (host-only) or, for legacy
 * Parallels, `vnic0`/`vnic1`.
 */
import { ParseError } from '../errors';
import { addressInSubnet, canonicalIpv6, intToIpv4, ipv4MaskToPrefix, ipv4ToInt, isIpv4, isIpv6, splitScope } from './addresses';

const KIND = 'ifconfig';

export interface IfconfigInet {
  address: string;
  prefixLength: number;
  /** Dotted form of the netmask. */
  netmask: string;
  broadcast?: string;
  /** Point-to-point peer (`inet 10.0.0.1 --> 10.0.0.2`). */
  peer?: string;
}

export interface IfconfigInet6 {
  address: string;
  /** Zone of a link-local address (`fe80::1%en0` → `en0`). */
  scope?: string;
  prefixLength: number;
  /** `autoconf`, `secured`, `temporary`, `dynamic`, `deprecated`, `detached`… */
  flags: string[];
  scopeId?: number;
}

export interface IfconfigMember {
  name: string;
  flags: string[];
}

export interface IfconfigInterface {
  name: string;
  flags: string[];
  /** The numeric flags word (hex in the output). */
  flagsValue: number;
  mtu?: number;
  index?: number;
  options: string[];
  ether?: string;
  inet: IfconfigInet[];
  inet6: IfconfigInet6[];
  /** Bridge members (`member: vmenet0 flags=3<LEARNING,DISCOVER>`). */
  members: IfconfigMember[];
  media?: string;
  /** `active`, `inactive`… */
  status?: string;
  up: boolean;
}

function bitList(text: string | undefined): string[] {
  return text ? text.split(',').filter((f) => f !== '') : [];
}

function parseNetmask(text: string, lineNo: number): { prefix: number; dotted: string } {
  let value: number;
  if (/^0x[0-9a-fA-F]{1,8}$/.test(text)) value = parseInt(text.slice(2), 16);
  else if (isIpv4(text)) value = ipv4ToInt(text);
  else throw new ParseError(KIND, `bad netmask "${text}"`, lineNo);
  const prefix = ipv4MaskToPrefix(value);
  if (prefix === undefined) throw new ParseError(KIND, `non-contiguous netmask "${text}"`, lineNo);
  return { prefix, dotted: intToIpv4(value) };
}

function parseInet(words: string[], lineNo: number): IfconfigInet {
  const address = words[1];
  if (!isIpv4(address ?? '')) throw new ParseError(KIND, `bad inet address "${address}"`, lineNo);
  const entry: IfconfigInet = { address, prefixLength: 32, netmask: '255.255.255.255' };
  for (let i = 2; i < words.length; i++) {
    const word = words[i];
    const value = words[i + 1];
    if (word === 'netmask' && value) {
      const mask = parseNetmask(value, lineNo);
      entry.prefixLength = mask.prefix;
      entry.netmask = mask.dotted;
      i++;
    } else if (word === 'broadcast' && value) {
      entry.broadcast = value;
      i++;
    } else if (word === '-->' && value) {
      entry.peer = value;
      i++;
    }
  }
  return entry;
}

function parseInet6(words: string[], lineNo: number): IfconfigInet6 {
  const { address, scope } = splitScope(words[1] ?? '');
  if (!isIpv6(address)) throw new ParseError(KIND, `bad inet6 address "${words[1]}"`, lineNo);
  const entry: IfconfigInet6 = { address: canonicalIpv6(address), prefixLength: 128, flags: [] };
  if (scope) entry.scope = scope;
  for (let i = 2; i < words.length; i++) {
    const word = words[i];
    const value = words[i + 1];
    if (word === 'prefixlen' && value && /^\d{1,3}$/.test(value)) {
      entry.prefixLength = Number(value);
      i++;
    } else if (word === 'scopeid' && value && /^0x[0-9a-fA-F]+$/.test(value)) {
      entry.scopeId = parseInt(value.slice(2), 16);
      i++;
    } else if (word === '-->' || word === 'vltime' || word === 'pltime') {
      i++;
    } else {
      entry.flags.push(word);
    }
  }
  return entry;
}

const HEADER = /^([A-Za-z0-9_.-]+): flags=([0-9a-fA-F]+)<([^>]*)>(?:\s+mtu (\d+))?(?:\s+index (\d+))?/;

/** Parses macOS `ifconfig` / `ifconfig IFACE` output. */
export function parseIfconfig(text: string): IfconfigInterface[] {
  const interfaces: IfconfigInterface[] = [];
  let current: IfconfigInterface | undefined;
  let detailIndent = -1;
  text.split(/\r?\n/).forEach((raw, index) => {
    const lineNo = index + 1;
    const line = raw.trimEnd();
    if (line.trim() === '') return;
    if (!/^\s/.test(line)) {
      const header = HEADER.exec(line);
      if (!header) throw new ParseError(KIND, `not an interface header: "${line}"`, lineNo);
      const flags = bitList(header[3]);
      current = {
        name: header[1],
        flags,
        flagsValue: parseInt(header[2], 16),
        options: [],
        inet: [],
        inet6: [],
        members: [],
        up: flags.includes('UP'),
      };
      if (header[4]) current.mtu = Number(header[4]);
      if (header[5]) current.index = Number(header[5]);
      interfaces.push(current);
      detailIndent = -1;
      return;
    }
    if (!current) throw new ParseError(KIND, 'detail line before any interface', lineNo);
    const indent = line.length - line.trimStart().length;
    if (detailIndent < 0) detailIndent = indent;
    // Deeper lines belong to a sub-block (bridge `Configuration:`, a member's port details).
    if (indent > detailIndent) return;
    const words = line.trim().split(/\s+/);
    switch (words[0]) {
      case 'inet':
        current.inet.push(parseInet(words, lineNo));
        break;
      case 'inet6':
        current.inet6.push(parseInet6(words, lineNo));
        break;
      case 'ether':
        current.ether = words[1];
        break;
      default: {
        const options = /^options=[0-9a-fA-F]+<([^>]*)>/.exec(line.trim());
        if (options) {
          current.options = bitList(options[1]);
          break;
        }
        const member = /^member: (\S+)(?: flags=[0-9a-fA-F]+<([^>]*)>)?/.exec(line.trim());
        if (member) {
          current.members.push({ name: member[1], flags: bitList(member[2]) });
          break;
        }
        const media = /^media: (.*?)(?:\s+status: (\S+))?$/.exec(line.trim());
        if (media) {
          current.media = media[1];
          if (media[2]) current.status = media[2];
          break;
        }
        const status = /^status: (.+)$/.exec(line.trim());
        if (status) current.status = status[1];
        // Everything else (nd6 options, Configuration:, supported media, type, agent…) is not needed.
      }
    }
  });
  return interfaces;
}

/**
 * The interface whose IPv4 subnet contains `address` (the VM's vnic IP → bridge100/vnic0),
 * and our address on it. Loopback and point-to-point links are never it.
 */
export function findIfconfigInterfaceForAddress(
  interfaces: readonly IfconfigInterface[],
  address: string,
): { interface: IfconfigInterface; inet: IfconfigInet } | null {
  for (const candidate of interfaces) {
    if (candidate.flags.includes('LOOPBACK') || candidate.flags.includes('POINTOPOINT')) continue;
    for (const inet of candidate.inet) {
      if (inet.address !== address && addressInSubnet(address, inet.address, inet.prefixLength)) {
        return { interface: candidate, inet };
      }
    }
  }
  return null;
}
