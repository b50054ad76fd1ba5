/**
 * `route -n monitor` (network_cmds route.tproj `print_rtmsg`/`pmsg_addrs`).
 *
 * A message is: a blank line, `got message of size N on <ctime>`, then
 *   RTM_DELETE: Delete Route: len 164, pid: 62, seq 262, errno 0, [ifscope 6, ][ifref, ]flags:<…>
 *   locks:  inits:
 *   sockaddrs: <DST,GATEWAY,NETMASK,IFP,IFA>
 *    default 172.20.10.1 default en5:40.a5.ef.41.9f.fb 172.20.10.3
 * IFINFO prints `if# N, flags:<…>` and usually nothing else; NEWADDR/DELADDR print
 * `metric N, flags:<…>` and a `<NETMASK,IFP,IFA,BRD>` list. Each value is printed as
 * `" %s"`, so an empty IFP leaves a double space; network_cmds 705+ prints link addresses as
 * `index: 6 en0:a4.83.e7.12.34.56` (spaces inside one value), and sockaddrs of an unknown
 * family as `(255) ffff ff`.
 */
import { ParseError } from '../errors';
import { type DarwinFamily, canonicalIpv6, ipv4MaskToPrefix, ipv4ToInt, ipv6MaskToPrefix, isIpv4, isIpv6, splitScope } from './addresses';

const KIND = 'route -n monitor';

export type RouteMonitorSockaddr = 'DST' | 'GATEWAY' | 'NETMASK' | 'GENMASK' | 'IFP' | 'IFA' | 'AUTHOR' | 'BRD';
const SOCKADDR_NAMES = new Set<string>(['DST', 'GATEWAY', 'NETMASK', 'GENMASK', 'IFP', 'IFA', 'AUTHOR', 'BRD']);

export interface RouteMonitorInterface {
  index?: number;
  name?: string;
  /** Link-layer address as route prints it (`a4.83.e7.12.34.56`). */
  linkAddress?: string;
}

export interface RouteMonitorMessage {
  /** `RTM_ADD`, `RTM_DELETE`, `RTM_CHANGE`, `RTM_GET`, `RTM_MISS`, `RTM_IFINFO`, `RTM_NEWADDR`… */
  type: string;
  /** `Add Route`, `iface status change`… */
  description: string;
  /** From `got message of size N on <ctime>` when present. */
  size?: number;
  receivedAt?: string;
  len?: number;
  pid?: number;
  seq?: number;
  errno?: number;
  ifscope?: number;
  ifref?: boolean;
  /** RTM_IFINFO: `if# N`. */
  ifIndex?: number;
  /** RTM_NEWADDR/DELADDR: `metric N`. */
  metric?: number;
  /** Route flags (`UP`, `GATEWAY`, `IFSCOPE`, `CONDEMNED`…) or, for IFINFO, interface flags. */
  flags: string[];
  /** Sockaddr names in printed order. */
  sockaddrs: RouteMonitorSockaddr[];
  /** Each sockaddr's printed value (IFP may be `''`). */
  addresses: Partial<Record<RouteMonitorSockaddr, string>>;
  /** IFP decoded. */
  ifp?: RouteMonitorInterface;
  /** 1-based line of the RTM_ header. */
  line: number;
  /** The message's lines. */
  text: string;
}

interface Draft extends RouteMonitorMessage {
  awaitingValues: boolean;
  hasFlags: boolean;
  lines: string[];
}

function parseHeader(draft: Draft, header: string): void {
  const number = (re: RegExp): number | undefined => {
    const m = re.exec(header);
    return m ? Number(m[1]) : undefined;
  };
  const fields: [keyof RouteMonitorMessage, RegExp][] = [
    ['len', /\blen (\d+)/],
    ['pid', /\bpid: (\d+)/],
    ['seq', /\bseq (\d+)/],
    ['errno', /\berrno (\d+)/],
    ['ifscope', /\bifscope (\d+)/],
    ['ifIndex', /\bif# (\d+)/],
    ['metric', /\bmetric (-?\d+)/],
  ];
  for (const [key, re] of fields) {
    const value = number(re);
    if (value !== undefined) (draft as unknown as Record<string, number>)[key] = value;
  }
  if (/\bifref,/.test(header)) draft.ifref = true;
  parseFlags(draft, header);
}

function parseFlags(draft: Draft, text: string): void {
  const m = /\bflags:(?:<([^>]*)>)?/.exec(text);
  if (!m) return;
  draft.hasFlags = true;
  draft.flags = m[1] ? m[1].split(',').filter((f) => f !== '') : [];
}

/** Splits a values line into one value per sockaddr name (see the module comment). */
function splitValues(line: string, count: number, lineNo: number): string[] {
  const tokens = line.slice(1).split(' ');
  const values: string[] = [];
  for (let j = 0; j < tokens.length; j++) {
    const token = tokens[j];
    if (token === 'index:' && /^\d+$/.test(tokens[j + 1] ?? '')) {
      values.push(`index: ${tokens[j + 1]} ${tokens[j + 2] ?? ''}`.trimEnd());
      j += 2;
    } else if (/^\(\d+\)$/.test(token)) {
      const parts = [token];
      while (j + 1 < tokens.length && /^[0-9a-f]{1,4}$/.test(tokens[j + 1])) parts.push(tokens[++j]);
      values.push(parts.join(' '));
    } else {
      values.push(token);
    }
  }
  while (values.length > count && values[values.length - 1] === '') values.pop();
  if (values.length !== count) {
    throw new ParseError(KIND, `expected ${count} sockaddr value(s), found ${values.length}: "${line.trim()}"`, lineNo);
  }
  return values;
}

function parseRouteMonitorInterface(value: string): RouteMonitorInterface {
  const out: RouteMonitorInterface = {};
  let rest = value;
  const indexed = /^index: (\d+) ?(.*)$/.exec(rest);
  if (indexed) {
    out.index = Number(indexed[1]);
    rest = indexed[2];
  }
  const named = /^([A-Za-z][A-Za-z0-9]*\d)(?::(.*))?$/.exec(rest);
  if (named) {
    out.name = named[1];
    if (named[2]) out.linkAddress = named[2];
  } else if (rest !== '') {
    out.linkAddress = rest;
  }
  return out;
}

const GOT = /^got message of size (\d+) on (.*)$/;
const RTM = /(RTM_[A-Z0-9_]+): ([^:]*?):\s/;

/**
 * Splits monitor output into messages. Lines that belong to no message (e.g. the text route
 * prints after `route -v add`) are a ParseError, and so is text with no RTM_ message at all.
 */
export function parseRouteMonitor(text: string): RouteMonitorMessage[] {
  const messages: RouteMonitorMessage[] = [];
  let current: Draft | undefined;
  let pending: { size: number; receivedAt: string } | undefined;

  const finish = (): void => {
    if (!current) return;
    const { awaitingValues, hasFlags, lines, ...message } = current;
    void awaitingValues;
    void hasFlags;
    messages.push({ ...message, text: lines.join('\n') });
    current = undefined;
  };

  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const lineNo = index + 1;
    const line = raw.trimEnd();
    if (line.trim() === '') return;
    const got = GOT.exec(line.trim());
    if (got) {
      finish();
      pending = { size: Number(got[1]), receivedAt: got[2] };
      return;
    }
    const rtm = RTM.exec(line + ' ');
    if (rtm) {
      finish();
      const header = (line + ' ').slice(rtm.index);
      current = {
        type: rtm[1],
        description: rtm[2],
        flags: [],
        sockaddrs: [],
        addresses: {},
        line: lineNo,
        text: '',
        awaitingValues: false,
        hasFlags: false,
        lines: [...(pending ? [`got message of size ${pending.size} on ${pending.receivedAt}`] : []), line],
        ...(pending ? { size: pending.size, receivedAt: pending.receivedAt } : {}),
      };
      pending = undefined;
      parseHeader(current, header);
      return;
    }
    if (!current) throw new ParseError(KIND, `line outside any RTM_ message: "${line.trim()}"`, lineNo);
    current.lines.push(line);
    const trimmed = line.trim();
    if (current.awaitingValues && line.startsWith(' ')) {
      const values = splitValues(line, current.sockaddrs.length, lineNo);
      current.sockaddrs.forEach((name, i) => {
        current!.addresses[name] = values[i];
      });
      if (current.addresses.IFP !== undefined) current.ifp = parseRouteMonitorInterface(current.addresses.IFP);
      current.awaitingValues = false;
      return;
    }
    if (/^flags:/.test(trimmed) && !current.hasFlags) {
      // A header wrapped before its flags (seen in quoted captures).
      parseFlags(current, trimmed);
      return;
    }
    if (/^locks:/.test(trimmed)) return;
    const sockaddrs = /^sockaddrs: <([^>]*)>$/.exec(trimmed);
    if (sockaddrs) {
      const names = sockaddrs[1].split(',').filter((n) => n !== '');
      const unknown = names.find((n) => !SOCKADDR_NAMES.has(n));
      if (unknown) throw new ParseError(KIND, `unknown sockaddr "${unknown}"`, lineNo);
      current.sockaddrs = names as RouteMonitorSockaddr[];
      current.awaitingValues = names.length > 0;
      return;
    }
    throw new ParseError(KIND, `unexpected line in ${current.type}: "${trimmed}"`, lineNo);
  });
  finish();
  if (messages.length === 0 && text.trim() !== '') throw new ParseError(KIND, 'no RTM_ message found');
  return messages;
}

export type RouteMonitorRelevance = 'default-changed' | 'link-changed' | 'other';

export interface RouteMonitorClassification {
  kind: RouteMonitorRelevance;
  /** Why, in a few words (for logs and `wgctl debug parse`). */
  reason: string;
  family?: DarwinFamily;
}

export interface RouteMonitorClassifyOptions {
  /** Writers whose messages are our own (routing-socket pid). */
  ownPids?: readonly number[];
  /** Interfaces whose default routes never matter (the VM's bridge100 when a VM starts). */
  ignoreInterfaces?: readonly string[];
}

const ZERO = new Set(['default', '0.0.0.0', '::']);
const SPLIT_MASKS = new Set(['128.0.0.0', '8000::']);
const ROUTE_CHANGES = new Set(['RTM_ADD', 'RTM_DELETE', 'RTM_CHANGE', 'RTM_OLDADD', 'RTM_OLDDEL']);
const LINK_CHANGES = new Set(['RTM_IFINFO', 'RTM_NEWADDR', 'RTM_DELADDR']);

function familyOfMessage(message: RouteMonitorMessage): DarwinFamily | undefined {
  for (const key of ['GATEWAY', 'IFA', 'DST', 'NETMASK'] as const) {
    const value = message.addresses[key];
    if (!value || value === 'default') continue;
    if (/^\d+\.\d+\.\d+\.\d+$/.test(value)) return 'inet';
    if (value.includes(':') && !value.includes(' ') && !/^[A-Za-z]+\d*:/.test(value)) return 'inet6';
  }
  return undefined;
}

/**
 * Is this message a change of the default route we must react to? Ignored: failed requests
 * (errno ≠ 0), our own pids, scoped default adds (every interface gets one), our own split
 * routes (`route add 0.0.0.0/1` echoes as ` default 10.211.55.5 128.0.0.0`), non-default
 * routes, and defaults on ignored interfaces. Interface and address changes are `link-changed`.
 */
export function classifyRouteMonitorMessage(
  message: RouteMonitorMessage,
  options: RouteMonitorClassifyOptions = {},
): RouteMonitorClassification {
  const family = familyOfMessage(message);
  const withFamily = (kind: RouteMonitorRelevance, reason: string): RouteMonitorClassification =>
    family ? { kind, reason, family } : { kind, reason };
  const ignored = new Set(options.ignoreInterfaces ?? []);
  const ifName = message.ifp?.name;

  if (LINK_CHANGES.has(message.type)) {
    if (ifName && ignored.has(ifName)) return withFamily('other', `${message.type} on ignored interface ${ifName}`);
    if (message.type === 'RTM_IFINFO') return withFamily('link-changed', `interface #${message.ifIndex ?? '?'} status changed`);
    return withFamily('link-changed', `address ${message.type === 'RTM_NEWADDR' ? 'added to' : 'removed from'} ${ifName ?? 'an interface'}`);
  }
  if (!ROUTE_CHANGES.has(message.type)) return withFamily('other', `${message.type} is not a route change`);
  if ((message.errno ?? 0) !== 0) return withFamily('other', `failed request (errno ${message.errno})`);
  if (message.pid !== undefined && options.ownPids?.includes(message.pid)) return withFamily('other', 'our own change');
  const dst = message.addresses.DST;
  if (dst === undefined || !ZERO.has(dst)) return withFamily('other', 'not a default route');
  const mask = message.addresses.NETMASK;
  if (mask !== undefined && SPLIT_MASKS.has(mask)) return withFamily('other', 'one of our split routes (/1)');
  if (mask !== undefined && !ZERO.has(mask) && !mask.startsWith('(')) return withFamily('other', `not a default route (mask ${mask})`);
  const scoped = message.flags.includes('IFSCOPE') || message.ifscope !== undefined;
  if (scoped && (message.type === 'RTM_ADD' || message.type === 'RTM_OLDADD')) {
    return withFamily('other', 'scoped default added');
  }
  if (ifName && ignored.has(ifName)) return withFamily('other', `default on ignored interface ${ifName}`);
  const verb = message.type === 'RTM_DELETE' || message.type === 'RTM_OLDDEL' ? 'removed' : message.type === 'RTM_CHANGE' ? 'changed' : 'added';
  const via = message.addresses.GATEWAY ? ` via ${message.addresses.GATEWAY}` : '';
  return withFamily('default-changed', `${scoped ? 'scoped ' : ''}default route ${verb}${via}`);
}

/**
 * The route a route message is about, as CIDR (`default` + `128.0.0.0` → `0.0.0.0/1`; no
 * NETMASK → host route /32 or /128). Undefined for messages without a readable DST/NETMASK.
 */
export function routeMonitorDestination(message: RouteMonitorMessage): string | undefined {
  const dst = message.addresses.DST;
  if (dst === undefined) return undefined;
  const mask = message.addresses.NETMASK;
  const v6 = dst === '::' || (dst !== 'default' && dst.includes(':')) || (mask !== undefined && mask.includes(':'));
  const address = dst === 'default' ? (v6 ? '::' : '0.0.0.0') : splitScope(dst).address;
  if (v6 ? !isIpv6(address) : !isIpv4(address)) return undefined;
  let prefix: number | undefined;
  if (mask === undefined) prefix = v6 ? 128 : 32;
  else if (ZERO.has(mask)) prefix = 0;
  else if (v6) prefix = ipv6MaskToPrefix(mask);
  else if (isIpv4(mask)) prefix = ipv4MaskToPrefix(ipv4ToInt(mask));
  if (prefix === undefined) return undefined;
  return `${v6 ? canonicalIpv6(address) : address}/${prefix}`;
}
