/**
 * What pfctl's printer (pfctl_parser.c `print_rule`, which macOS's pfctl inherited) does with
 * numbers and names: protocol numbers, ICMP type and code names (the first name of a number),
 * services, TCP flag order, state options. Checked against the real printer
 * (shared/tools/pfctl-grammar).
 */
import { ParseError } from '../errors';

export const NORMALIZE_KIND = 'pf rule';

export const PROTOCOLS: Record<string, string> = { '1': 'icmp', '6': 'tcp', '17': 'udp', '58': 'ipv6-icmp', icmp6: 'ipv6-icmp' };

/**
 * pfctl_parser.c's ICMP tables, in its order: pfctl stores a number and prints the FIRST name
 * listed for it (so `listqry` comes back as `groupqry`, `fqdnreq` as `wrureq`).
 */
const ICMP_TYPE_TABLE: [string, number][] = [
  ['echoreq', 8], ['echorep', 0], ['unreach', 3], ['squench', 4], ['redir', 5], ['althost', 6], ['routeradv', 9], ['routersol', 10],
  ['timex', 11], ['paramprob', 12], ['timereq', 13], ['timerep', 14], ['inforeq', 15], ['inforep', 16], ['maskreq', 17], ['maskrep', 18],
  ['trace', 30], ['dataconv', 31], ['mobredir', 32], ['ipv6-where', 33], ['ipv6-here', 34], ['mobregreq', 35], ['mobregrep', 36],
  ['skip', 39], ['photuris', 40],
];
const ICMP6_TYPE_TABLE: [string, number][] = [
  ['unreach', 1], ['toobig', 2], ['timex', 3], ['paramprob', 4], ['echoreq', 128], ['echorep', 129], ['groupqry', 130], ['listqry', 130],
  ['grouprep', 131], ['listenrep', 131], ['groupterm', 132], ['listendone', 132], ['routersol', 133], ['routeradv', 134],
  ['neighbrsol', 135], ['neighbradv', 136], ['redir', 137], ['routrrenum', 138], ['wrureq', 139], ['wrurep', 140], ['fqdnreq', 139],
  ['fqdnrep', 140], ['niqry', 139], ['nirep', 140], ['mtraceresp', 200], ['mtrace', 201],
];
/** [name, type, code] */
const ICMP_CODE_TABLE: [string, number, number][] = [
  ['net-unr', 3, 0], ['host-unr', 3, 1], ['proto-unr', 3, 2], ['port-unr', 3, 3], ['needfrag', 3, 4], ['srcfail', 3, 5], ['net-unk', 3, 6],
  ['host-unk', 3, 7], ['isolate', 3, 8], ['net-prohib', 3, 9], ['host-prohib', 3, 10], ['net-tos', 3, 11], ['host-tos', 3, 12],
  ['filter-prohib', 3, 13], ['host-preced', 3, 14], ['cutoff-preced', 3, 15], ['redir-net', 5, 0], ['redir-host', 5, 1],
  ['redir-tos-net', 5, 2], ['redir-tos-host', 5, 3], ['normal-adv', 9, 0], ['common-adv', 9, 16], ['transit', 11, 0], ['reassemb', 11, 1],
  ['badhead', 12, 0], ['optmiss', 12, 1], ['badlen', 12, 2], ['unknown-ind', 40, 1], ['auth-fail', 40, 2], ['decrypt-fail', 40, 3],
];
const ICMP6_CODE_TABLE: [string, number, number][] = [
  ['admin-unr', 1, 1], ['noroute-unr', 1, 0], ['notnbr-unr', 1, 2], ['beyond-unr', 1, 2], ['addr-unr', 1, 3], ['port-unr', 1, 4],
  ['transit', 3, 0], ['reassemb', 3, 1], ['badhead', 4, 0], ['nxthdr', 4, 1], ['redironlink', 137, 0], ['redirrouter', 137, 1],
];

/** An icmp(6)-type (name or number) as pfctl prints it: the first name of its number, else the number. */
export function normalizeIcmpType(word: 'icmp-type' | 'icmp6-type', text: string, rule: string): { name: string; number: number } {
  const table = word === 'icmp-type' ? ICMP_TYPE_TABLE : ICMP6_TYPE_TABLE;
  const number = /^\d+$/.test(text) ? Number(text) : table.find(([name]) => name === text)?.[1];
  if (number === undefined || number > 255) throw new ParseError(NORMALIZE_KIND, `unknown ${word} "${text}" in "${rule}"`);
  return { name: table.find(([, n]) => n === number)?.[0] ?? String(number), number };
}

export function normalizeIcmpCode(word: 'icmp-type' | 'icmp6-type', type: number, text: string, rule: string): string {
  const table = word === 'icmp-type' ? ICMP_CODE_TABLE : ICMP6_CODE_TABLE;
  const number = /^\d+$/.test(text) ? Number(text) : table.find(([name, t]) => name === text && t === type)?.[2];
  if (number === undefined || number > 255) throw new ParseError(NORMALIZE_KIND, `unknown icmp code "${text}" in "${rule}"`);
  return table.find(([, t, c]) => t === type && c === number)?.[0] ?? String(number);
}

/** The number of an ICMP (inet) or ICMPv6 (inet6) type name as pfctl's tables have it; undefined if unknown. */
export function pfIcmpTypeNumber(family: 'inet' | 'inet6', name: string): number | undefined {
  return (family === 'inet' ? ICMP_TYPE_TABLE : ICMP6_TYPE_TABLE).find(([n]) => n === name)?.[1];
}

/** The number of an ICMP(v6) code name for `type` as pfctl's tables have it; undefined if unknown. */
export function pfIcmpCodeNumber(family: 'inet' | 'inet6', type: number, name: string): number | undefined {
  return (family === 'inet' ? ICMP_CODE_TABLE : ICMP6_CODE_TABLE).find(([n, t]) => n === name && t === type)?.[2];
}

/** Service names pfctl would look up in /etc/services (the same on macOS for these); others are refused. */
const SERVICES: Record<string, number> = {
  ssh: 22, domain: 53, bootps: 67, bootpc: 68, http: 80, www: 80, ntp: 123, https: 443, 'dhcpv6-client': 546, 'dhcpv6-server': 547,
};

export function portNumber(text: string, rule: string): string {
  if (/^\d+$/.test(text)) return text;
  const known = SERVICES[text];
  if (known === undefined) throw new ParseError(NORMALIZE_KIND, `unknown port "${text}" in "${rule}" (write the number)`);
  return String(known);
}

const TCP_FLAG_ORDER = 'FSRPAUEW';

/** `S/SA`, `/SA`: each side in pfctl's print order (FSRPAUEW); a letter outside it is refused. */
export function normalizeFlags(text: string, rule: string): string {
  const [set, mask, extra] = text.split('/');
  if (mask === undefined || extra !== undefined) throw new ParseError(NORMALIZE_KIND, `bad flags "${text}" in "${rule}"`);
  const ordered = (side: string) => {
    for (const letter of side) if (!TCP_FLAG_ORDER.includes(letter)) throw new ParseError(NORMALIZE_KIND, `bad flags "${text}" in "${rule}"`);
    return [...TCP_FLAG_ORDER].filter((letter) => side.includes(letter)).join('');
  };
  const [flags, flagset] = [ordered(set), ordered(mask)];
  if ([...flags].some((letter) => !flagset.includes(letter))) throw new ParseError(NORMALIZE_KIND, `flags always false: "${text}" in "${rule}"`);
  return `${flags}/${flagset}`;
}

/** Timeouts in the order of xnu's PFTM_* enum (which is how print_rule walks them). */
const STATE_TIMEOUTS = [
  'tcp.first', 'tcp.opening', 'tcp.established', 'tcp.closing', 'tcp.finwait', 'tcp.closed', 'udp.first', 'udp.single', 'udp.multiple',
  'icmp.first', 'icmp.error', 'other.first', 'other.single', 'other.multiple', 'frag', 'interval', 'adaptive.start', 'adaptive.end',
  'src.track', 'tcp.tsdiff',
];

/**
 * `keep state (…)` options in print_rule's order: max, no-sync, if-bound, sloppy, then timeouts.
 * parse.y gives a rule with `max N` and no adaptive timeouts `adaptive.start` (N/10)*6 and
 * `adaptive.end` (N/10)*12; zero values are not printed; `floating` is the default (not printed).
 * Source tracking (its defaults are intricate) is refused rather than guessed.
 */
export function normalizeStateOptions(options: string, rule: string): string | undefined {
  const items = options
    .slice(1, -1)
    .split(',')
    .map((item) => item.trim().split(/\s+/))
    .filter((item) => item[0] !== '');
  let max: number | undefined;
  const flags = new Set<string>();
  const timeouts = new Map<string, number>();
  const number = (value: string | undefined) => {
    if (value === undefined || !/^\d+$/.test(value)) throw new ParseError(NORMALIZE_KIND, `bad state option value in "${rule}"`);
    return Number(value);
  };
  for (const [name, value, ...rest] of items) {
    if (rest.length > 0) throw new ParseError(NORMALIZE_KIND, `unsupported state option "${[name, value, ...rest].join(' ')}" in "${rule}"`);
    if (name === 'max') max = number(value);
    else if (['no-sync', 'if-bound', 'sloppy', 'floating'].includes(name) && value === undefined) flags.add(name);
    else if (STATE_TIMEOUTS.includes(name)) timeouts.set(name, number(value));
    else throw new ParseError(NORMALIZE_KIND, `unsupported state option "${name}" in "${rule}"`);
  }
  if (max && !timeouts.has('adaptive.start') && !timeouts.has('adaptive.end')) {
    timeouts.set('adaptive.start', Math.floor(max / 10) * 6);
    timeouts.set('adaptive.end', Math.floor(max / 10) * 12);
  }
  const printed = [
    max ? `max ${max}` : undefined,
    ...['no-sync', 'if-bound', 'sloppy'].filter((f) => flags.has(f)),
    ...STATE_TIMEOUTS.filter((t) => timeouts.get(t)).map((t) => `${t} ${timeouts.get(t)}`),
  ].filter((p): p is string => p !== undefined);
  return printed.length > 0 ? `(${printed.join(', ')})` : undefined;
}
