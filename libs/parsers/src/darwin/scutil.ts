/**
 * `scutil --nwi` (configd's network information): per family, the interfaces in primary
 * order, then `Network interfaces: en0 …` (primary first). Useful to cross-check the uplink.
 */
import { ParseError } from '../errors';

export interface ScutilNwiInterface {
  interface: string;
  /** `IPv4`, `IPv6`, `DNS`… from `flags : 0x7 (IPv4,IPv6,DNS)`. */
  flags: string[];
  address?: string;
  vpnServer?: string;
  reach?: string;
}

export interface ScutilNwi {
  ipv4: ScutilNwiInterface[];
  ipv6: ScutilNwiInterface[];
  /** `Network interfaces:` in order, primary first. */
  interfaces: string[];
}

export function parseScutilNwi(text: string): ScutilNwi {
  const kind = 'scutil --nwi';
  const result: ScutilNwi = { ipv4: [], ipv6: [], interfaces: [] };
  let family: ScutilNwiInterface[] | undefined;
  let current: ScutilNwiInterface | undefined;
  let sawTitle = false;
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '') return;
    if (line === 'Network information') {
      sawTitle = true;
      return;
    }
    const section = /^(IPv4|IPv6) network interface information$/.exec(line);
    if (section) {
      family = section[1] === 'IPv4' ? result.ipv4 : result.ipv6;
      current = undefined;
      return;
    }
    const list = /^Network interfaces:\s*(.*)$/.exec(line);
    if (list) {
      result.interfaces = list[1].split(/\s+/).filter((n) => n !== '');
      family = undefined;
      return;
    }
    if (/^No IPv[46] states found$/.test(line) || /^REACH : /.test(line)) return;
    const head = /^(\S+) : flags\s+: 0x[0-9a-fA-F]+(?: \(([^)]*)\))?$/.exec(line);
    if (head && family) {
      current = { interface: head[1], flags: head[2] ? head[2].split(',') : [] };
      family.push(current);
      return;
    }
    const field = /^(address|VPN server|reach)\s+: (.*)$/.exec(line);
    if (field && current) {
      if (field[1] === 'address') current.address = field[2];
      else if (field[1] === 'VPN server') current.vpnServer = field[2];
      else current.reach = field[2];
      return;
    }
    throw new ParseError(kind, `unexpected line "${line}"`, index + 1);
  });
  if (!sawTitle) throw new ParseError(kind, 'missing "Network information" title');
  return result;
}
