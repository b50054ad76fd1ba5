/**
 * PF rules as `pfctl -sr` / `pfctl -a ANCHOR -sr` print them, and the normaliser that turns
 * a rule as we write it into that printed form (so status can compare desired with live).
 *
 * What pfctl changes when it prints a rule (see /work/shared/notes/macos.md §2):
 * `block` → `block drop`; `port 30003` → `port = 30003` (ranges `67:68`, `><`, `<>` kept);
 * `inet`/`inet6` inserted when an address implies the family; `{a, b}` lists expanded into one
 * rule per element (left to right); pass rules get `keep state` unless `no state`, and tcp or
 * protocol-less pass rules get `flags S/SA`; options are printed in a fixed order
 * (… flags, icmp-type, tos, state, state options, fragment, label, tag …); `from any to any`
 * becomes `all`; `/32` and `/128` are dropped and host bits masked off.
 *
 * Checked against the real printer (shared/tools/pfctl-grammar: OpenBSD's pfctl_parser.c
 * `print_rule`, which macOS's pfctl inherited), which also: prints TCP flags in the order
 * FSRPAUEW; drops `flags` and demotes `modulate`/`synproxy state` to `keep state` on rules
 * (or list elements) of a protocol other than tcp; prints `flags any` only on stateful pass
 * rules that can see TCP; prints ICMP types and codes by the first name its table has for the
 * number; prints `0.0.0.0/0` and `::/0` as `any`, a range `80:80` as `= 80`, uids as numbers;
 * orders state options (`max` first) and adds `adaptive.start/end` (60%/120% of `max`).
 */
import ipaddr from 'ipaddr.js';
import { ParseError } from '../errors';
import { isIpv4, isIpv6 } from './addresses';

const RULES_KIND = 'pfctl -sr';
const NORMALIZE_KIND = 'pf rule';

/** Lines pfctl prints on macOS on (nearly) every invocation; never part of an answer. */
export const PFCTL_NOISE = /^(No ALTQ support in kernel|ALTQ related functions disabled)\s*$/;

export interface PfRule {
  /** The rule as printed, whitespace collapsed, without the `-vv` `@N ` prefix or ` {`. */
  text: string;
  /** `-vv` rule number. */
  number?: number;
  /** `pass`, `block`, `scrub`, `no scrub`, `nat`, `no nat`, `rdr`, `anchor`, `scrub-anchor`… */
  action: string;
  /** Anchor name for anchor-type rules (`anchor "com.wgctl" all` → `com.wgctl`). */
  anchor?: string;
  /** Nesting inside `anchor "x/*" all { … }` blocks (0 = top level). */
  depth: number;
  /** `-v` counters (`Evaluations`, `Packets`, `Bytes`, `States`, `State Creations`, `uid`, `pid`). */
  counters?: Record<string, number>;
  line: number;
}

const RULE_START =
  /^(pass|block|match|scrub|no (?:scrub|nat|rdr|binat)|nat|rdr|binat|anchor|scrub-anchor|nat-anchor|rdr-anchor|binat-anchor|dummynet|no dummynet|dummynet-anchor|table|antispoof|action\(\d+\))(?=\s|$)/;

function parseCounters(body: string): Record<string, number> {
  const counters: Record<string, number> = {};
  const inserted = /Inserted:\s+uid\s+(\d+)\s+pid\s+(\d+)/.exec(body);
  if (inserted) {
    counters.uid = Number(inserted[1]);
    counters.pid = Number(inserted[2]);
  }
  for (const m of body.matchAll(/([A-Z][A-Za-z]*(?: [A-Z][a-z]+)*):\s+(\d+)/g)) counters[m[1]] = Number(m[2]);
  return counters;
}

/** Parses `pfctl [-a ANCHOR] -s rules` output (also `-v`/`-vv`, and nested `{ … }` blocks). */
export function parsePfRules(text: string): PfRule[] {
  const rules: PfRule[] = [];
  let depth = 0;
  text.split(/\r?\n/).forEach((raw, index) => {
    const lineNo = index + 1;
    const line = raw.trim();
    // `pfctl -sa` prints section titles (FILTER RULES:, TRANSLATION RULES:…) between rule lists.
    if (line === '' || PFCTL_NOISE.test(line) || /^[A-Z][A-Z ]*:$/.test(line)) return;
    if (line.startsWith('pfctl:')) throw new ParseError(RULES_KIND, `pfctl reported an error: ${line.slice(6).trim()}`, lineNo);
    const counters = /^\[(.*)\]$/.exec(line);
    if (counters) {
      const previous = rules[rules.length - 1];
      if (!previous) throw new ParseError(RULES_KIND, 'counters before any rule', lineNo);
      previous.counters = { ...previous.counters, ...parseCounters(counters[1]) };
      return;
    }
    if (line === '}') {
      if (depth === 0) throw new ParseError(RULES_KIND, 'unbalanced "}"', lineNo);
      depth--;
      return;
    }
    let body = line.replace(/\s+/g, ' ');
    let number: number | undefined;
    const numbered = /^@(\d+) (.*)$/.exec(body);
    if (numbered) {
      number = Number(numbered[1]);
      body = numbered[2];
    }
    const opensBlock = body.endsWith(' {');
    if (opensBlock) body = body.slice(0, -2);
    const start = RULE_START.exec(body);
    if (!start) throw new ParseError(RULES_KIND, `not a pf rule: "${line}"`, lineNo);
    const rule: PfRule = { text: body, action: start[1], depth, line: lineNo };
    if (number !== undefined) rule.number = number;
    const anchor = /^(?:[a-z]+-)?anchor "([^"]*)"/.exec(body);
    if (anchor) rule.anchor = anchor[1];
    rules.push(rule);
    if (opensBlock) depth++;
  });
  if (depth !== 0) throw new ParseError(RULES_KIND, 'unterminated anchor block');
  return rules;
}

/** Parses `pfctl [-v] -s Anchors`: one anchor path per line. */
export function parsePfAnchors(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !PFCTL_NOISE.test(l))
    .map((l, index) => {
      if (l.startsWith('pfctl:')) throw new ParseError('pfctl -s Anchors', `pfctl reported an error: ${l.slice(6).trim()}`, index + 1);
      if (!/^[A-Za-z0-9_.*/-]+$/.test(l)) throw new ParseError('pfctl -s Anchors', `not an anchor path: "${l}"`, index + 1);
      return l;
    });
}

/** Whether the top level of a ruleset has `anchor "NAME"` (what makes an anchor's rules run). */
export function pfRulesReferenceAnchor(rules: readonly PfRule[], name: string): boolean {
  return rules.some((r) => r.depth === 0 && r.action === 'anchor' && r.anchor === name);
}

// ---------------------------------------------------------------------------------------------
// Normalisation: our rule text → what pfctl prints.

function tokenize(rule: string): string[] {
  const tokens: string[] = [];
  const s = rule;
  let i = 0;
  const isWordChar = (c: string): boolean => !/[\s{},()"#=<>!]/.test(c);
  while (i < s.length) {
    const c = s[i];
    if (/\s/.test(c)) {
      i++;
    } else if (c === '#') {
      break;
    } else if (c === '"') {
      const end = s.indexOf('"', i + 1);
      if (end < 0) throw new ParseError(NORMALIZE_KIND, `unterminated quote in "${rule}"`);
      tokens.push(s.slice(i, end + 1));
      i = end + 1;
    } else if (c === '{' || c === '}' || c === ',') {
      tokens.push(c);
      i++;
    } else if (c === '(') {
      let depth = 0;
      let j = i;
      for (; j < s.length; j++) {
        if (s[j] === '(') depth++;
        else if (s[j] === ')' && --depth === 0) break;
      }
      if (j >= s.length) throw new ParseError(NORMALIZE_KIND, `unbalanced "(" in "${rule}"`);
      const inner = s
        .slice(i + 1, j)
        .replace(/\s*,\s*/g, ', ')
        .replace(/\s+/g, ' ')
        .trim();
      tokens.push(`(${inner})`);
      i = j + 1;
    } else if (s.startsWith('->', i)) {
      tokens.push('->'); // translation target (nat/rdr)
      i += 2;
    } else if (c === '<' && /^<[^\s<>=]+>/.test(s.slice(i))) {
      const end = s.indexOf('>', i);
      tokens.push(s.slice(i, end + 1)); // a <table>
      i = end + 1;
    } else if ('!=<>'.includes(c)) {
      const two = s.slice(i, i + 2);
      if (['!=', '<=', '>=', '<>', '><'].includes(two)) {
        tokens.push(two);
        i += 2;
      } else {
        tokens.push(c);
        i++;
      }
    } else {
      let j = i;
      while (j < s.length && isWordChar(s[j])) j++;
      if (j === i) throw new ParseError(NORMALIZE_KIND, `unexpected "${c}" in "${rule}"`);
      tokens.push(s.slice(i, j));
      i = j;
    }
  }
  return tokens;
}

const OPERATORS = new Set(['=', '!=', '<', '<=', '>', '>=']);

/** Elements of a `{ … }` list: comma-separated, or whitespace-separated with `!`/operators glued on. */
function listElements(inner: string[]): string[][] {
  const elements: string[][] = [];
  if (inner.includes(',')) {
    let current: string[] = [];
    for (const token of inner) {
      if (token === ',') {
        elements.push(current);
        current = [];
      } else current.push(token);
    }
    elements.push(current);
    return elements.filter((e) => e.length > 0);
  }
  let pending: string[] = [];
  for (const token of inner) {
    pending.push(token);
    if (token !== '!' && !OPERATORS.has(token)) {
      elements.push(pending);
      pending = [];
    }
  }
  if (pending.length > 0) elements.push(pending);
  return elements;
}

function expandLists(tokens: string[]): string[][] {
  const open = tokens.indexOf('{');
  if (open < 0) {
    if (tokens.includes('}')) throw new ParseError(NORMALIZE_KIND, 'unbalanced "}"');
    return [tokens];
  }
  let depth = 0;
  let close = -1;
  for (let j = open; j < tokens.length; j++) {
    if (tokens[j] === '{') depth++;
    else if (tokens[j] === '}' && --depth === 0) {
      close = j;
      break;
    }
  }
  if (close < 0) throw new ParseError(NORMALIZE_KIND, 'unbalanced "{"');
  const before = tokens.slice(0, open);
  const after = tokens.slice(close + 1);
  const elements = listElements(tokens.slice(open + 1, close));
  if (elements.length === 0) throw new ParseError(NORMALIZE_KIND, 'empty { } list');
  return elements.flatMap((element) => expandLists([...before, ...element, ...after]));
}

const PROTOCOLS: Record<string, string> = { '1': 'icmp', '6': 'tcp', '17': 'udp', '58': 'ipv6-icmp', icmp6: 'ipv6-icmp' };

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
function normalizeIcmpType(word: 'icmp-type' | 'icmp6-type', text: string, rule: string): { name: string; number: number } {
  const table = word === 'icmp-type' ? ICMP_TYPE_TABLE : ICMP6_TYPE_TABLE;
  const number = /^\d+$/.test(text) ? Number(text) : table.find(([name]) => name === text)?.[1];
  if (number === undefined || number > 255) throw new ParseError(NORMALIZE_KIND, `unknown ${word} "${text}" in "${rule}"`);
  return { name: table.find(([, n]) => n === number)?.[0] ?? String(number), number };
}

function normalizeIcmpCode(word: 'icmp-type' | 'icmp6-type', type: number, text: string, rule: string): string {
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

function portNumber(text: string, rule: string): string {
  if (/^\d+$/.test(text)) return text;
  const known = SERVICES[text];
  if (known === undefined) throw new ParseError(NORMALIZE_KIND, `unknown port "${text}" in "${rule}" (write the number)`);
  return String(known);
}

const TCP_FLAG_ORDER = 'FSRPAUEW';

/** `S/SA`, `/SA`: each side in pfctl's print order (FSRPAUEW); a letter outside it is refused. */
function normalizeFlags(text: string, rule: string): string {
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
function normalizeStateOptions(options: string, rule: string): string | undefined {
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

interface HostSpec {
  negated: boolean;
  host: string;
  port?: string;
  family?: 'inet' | 'inet6';
}

function normalizeHost(text: string): { host: string; family?: 'inet' | 'inet6' } {
  const slash = text.indexOf('/');
  const address = slash >= 0 ? text.slice(0, slash) : text;
  const lengthText = slash >= 0 ? text.slice(slash + 1) : undefined;
  const v4 = isIpv4(address);
  const v6 = !v4 && isIpv6(address);
  if (!v4 && !v6) return { host: text };
  const max = v4 ? 32 : 128;
  const length = lengthText === undefined ? max : Number(lengthText);
  if (lengthText !== undefined && (!/^\d{1,3}$/.test(lengthText) || length > max)) {
    throw new ParseError(NORMALIZE_KIND, `bad prefix length in "${text}"`);
  }
  const family = v4 ? 'inet' : 'inet6';
  if (length === max) return { host: ipaddr.parse(address).toString(), family };
  if (length === 0) return { host: 'any', family }; // print_addr: a zero address and mask print as `any`
  const network = v4 ? ipaddr.IPv4.networkAddressFromCIDR(`${address}/${length}`) : ipaddr.IPv6.networkAddressFromCIDR(`${address}/${length}`);
  return { host: `${network.toString()}/${length}`, family };
}

class Cursor {
  i = 0;
  constructor(
    readonly tokens: string[],
    readonly rule: string,
  ) {}
  peek(offset = 0): string | undefined {
    return this.tokens[this.i + offset];
  }
  next(what: string): string {
    const token = this.tokens[this.i++];
    if (token === undefined) throw new ParseError(NORMALIZE_KIND, `expected ${what} at the end of "${this.rule}"`);
    return token;
  }
  done(): boolean {
    return this.i >= this.tokens.length;
  }
}

function parsePort(cursor: Cursor): string {
  const first = cursor.next('a port');
  if (OPERATORS.has(first)) return `port ${first} ${portNumber(cursor.next('a port'), cursor.rule)}`;
  const following = cursor.peek();
  if (following === '><' || following === '<>') {
    cursor.i++;
    return `port ${portNumber(first, cursor.rule)} ${following} ${portNumber(cursor.next('a port'), cursor.rule)}`;
  }
  const range = /^(\d+):(\d+)$/.exec(first);
  if (range) return range[1] === range[2] ? `port = ${range[1]}` : `port ${first}`; // parse.y: a one-port range is `=`
  return `port = ${portNumber(first, cursor.rule)}`;
}

/** `user`/`group` operands: pfctl stores ids and prints numbers; of the names only root (uid 0) is known here. */
function parseUgid(word: 'user' | 'group', cursor: Cursor): string {
  const id = (text: string) => {
    if (/^\d+$/.test(text)) return text;
    if (word === 'user' && text === 'root') return '0';
    throw new ParseError(NORMALIZE_KIND, `${word} "${text}": write the numeric id (pfctl prints ids, resolved on the Mac)`);
  };
  const first = cursor.next(`a ${word}`);
  if (OPERATORS.has(first)) return `${word} ${first} ${id(cursor.next(`a ${word}`))}`;
  const following = cursor.peek();
  if (following === '><' || following === '<>') {
    cursor.i++;
    return `${word} ${id(first)} ${following} ${id(cursor.next(`a ${word}`))}`;
  }
  return `${word} = ${id(first)}`;
}

function parseHostSpec(cursor: Cursor): HostSpec {
  let negated = false;
  if (cursor.peek() === '!') {
    negated = true;
    cursor.i++;
  }
  const { host, family } = normalizeHost(cursor.next('an address'));
  const spec: HostSpec = { negated, host, ...(family ? { family } : {}) };
  if (cursor.peek() === 'port') {
    cursor.i++;
    spec.port = parsePort(cursor);
  }
  return spec;
}

function formatHost(spec: HostSpec): string {
  return `${spec.negated ? '! ' : ''}${spec.host}${spec.port ? ` ${spec.port}` : ''}`;
}

const TRAILING_WITH_VALUE = new Set(['tag', 'tagged', 'queue', 'rtable', 'probability', 'max-mss', 'min-ttl', 'set-tos', 'prio']);
const TRAILING_BARE = new Set(['fragment', 'allow-opts', 'no-df', 'random-id']);

/** One expanded rule as pfctl prints it; undefined when its addresses' families cannot meet (pfctl skips it). */
function normalizeFilterRule(tokens: string[], rule: string): string | undefined {
  const c = new Cursor(tokens, rule);
  const action = c.next('an action');
  const head: string[] = [action];
  if (action === 'block') {
    const how = c.peek();
    if (how && /^return-icmp6?$/.test(how)) {
      // print_rule prints the ICMP code pair by address family, from tables this host's build does not share with the Mac.
      throw new ParseError(NORMALIZE_KIND, `unsupported "${how}" in "${rule}"`);
    }
    if (how && /^(drop|return|return-rst)$/.test(how)) {
      c.i++;
      const arg = c.peek()?.startsWith('(') && how === 'return-rst' ? c.next('') : '';
      head.push(how + arg);
    } else head.push('drop');
  }
  let direction: string | undefined;
  let log: string | undefined;
  let quick = false;
  let on: string | undefined;
  let route: string | undefined;
  let af: string | undefined;
  let proto: string | undefined;
  let src: HostSpec = { negated: false, host: 'any' };
  let dst: HostSpec = { negated: false, host: 'any' };
  let os: string | undefined;
  const ugid: string[] = [];
  let flags: string | undefined;
  let icmp: string | undefined;
  let tos: string | undefined;
  let state: string | undefined;
  let stateOptions: string | undefined;
  let label: string | undefined;
  const trailing: string[] = [];

  while (!c.done()) {
    const word = c.next('a keyword');
    switch (word) {
      case 'in':
      case 'out':
        direction = word;
        break;
      case 'log':
        log = c.peek()?.startsWith('(') ? `log ${c.next('')}` : 'log';
        break;
      case 'quick':
        quick = true;
        break;
      case 'on': {
        const negate = c.peek() === '!' ? (c.i++, '! ') : '';
        on = `on ${negate}${c.next('an interface')}`;
        break;
      }
      case 'route-to':
      case 'reply-to':
      case 'dup-to':
      case 'fastroute':
        route = word === 'fastroute' ? word : `${word} ${c.next('a route target')}`;
        break;
      case 'inet':
      case 'inet6':
        af = word;
        break;
      case 'proto': {
        const p = c.next('a protocol');
        proto = PROTOCOLS[p] ?? p;
        break;
      }
      case 'all':
        break;
      case 'from':
        src = parseHostSpec(c);
        if (c.peek() === 'os') {
          c.i++;
          os = `os ${c.next('a fingerprint')}`;
        }
        break;
      case 'to':
        dst = parseHostSpec(c);
        break;
      case 'user':
      case 'group':
        ugid.push(parseUgid(word, c));
        break;
      case 'flags': {
        const value = c.next('tcp flags');
        flags = value === 'any' ? 'any' : normalizeFlags(value, rule);
        break;
      }
      case 'icmp-type':
      case 'icmp6-type': {
        const type = normalizeIcmpType(word, c.next('an icmp type'), rule);
        icmp = `${word} ${type.name}`;
        if (c.peek() === 'code') {
          c.i++;
          icmp += ` code ${normalizeIcmpCode(word, type.number, c.next('an icmp code'), rule)}`;
        }
        break;
      }
      case 'tos':
        tos = `tos ${c.next('a tos')}`;
        break;
      case 'no':
        if (c.next('"state"') !== 'state') throw new ParseError(NORMALIZE_KIND, `expected "no state" in "${rule}"`);
        state = 'no state';
        break;
      case 'keep':
      case 'modulate':
      case 'synproxy':
        if (c.next('"state"') !== 'state') throw new ParseError(NORMALIZE_KIND, `expected "${word} state" in "${rule}"`);
        state = `${word} state`;
        if (c.peek()?.startsWith('(')) stateOptions = normalizeStateOptions(c.next(''), rule);
        break;
      default:
        if (word === 'label') label = `label ${c.next('a label')}`;
        else if (TRAILING_WITH_VALUE.has(word)) trailing.push(`${word} ${c.next(`a ${word} value`)}`);
        else if (TRAILING_BARE.has(word)) trailing.push(word);
        else throw new ParseError(NORMALIZE_KIND, `unsupported word "${word}" in "${rule}"`);
    }
  }

  // expand_rule skips a combination whose families differ (rule af, source, destination).
  const families = [af, src.family, dst.family].filter((f) => f !== undefined);
  if (families.some((f) => f !== families[0])) return undefined;
  if (!af) af = src.family ?? dst.family;
  const isPass = action === 'pass';
  if (isPass && state === undefined) state = 'keep state';
  const fragment = trailing.includes('fragment');
  const tcpCapable = !proto || proto === 'tcp';
  // expand_rule: modulate/synproxy only exist for tcp; other protocols get a plain state.
  if (!tcpCapable && (state === 'modulate state' || state === 'synproxy state')) state = 'keep state';
  const stateful = state !== undefined && state !== 'no state';
  // parse.y: stateful pass rules default to S/SA; expand_rule clears flags on non-tcp protocols.
  if (isPass && flags === undefined && stateful && !fragment) flags = 'S/SA';
  if (!tcpCapable) flags = undefined;
  // print_rule: `flags any` (no flags) is shown only where pf would otherwise have added S/SA.
  let printedFlags: string | undefined;
  if (flags !== undefined && flags !== 'any' && flags !== '/') printedFlags = `flags ${flags}`;
  else if (isPass && tcpCapable && !fragment && stateful) printedFlags = 'flags any';
  const everything = !src.negated && !dst.negated && src.host === 'any' && dst.host === 'any' && !src.port && !dst.port && !os;
  const parts = [
    ...head,
    direction,
    log,
    quick ? 'quick' : undefined,
    on,
    route,
    af,
    proto ? `proto ${proto}` : undefined,
    everything ? 'all' : `from ${formatHost(src)}${os ? ` ${os}` : ''} to ${formatHost(dst)}`,
    ...ugid,
    printedFlags,
    icmp,
    tos,
    state,
    stateOptions,
    ...trailing.filter((t) => !t.startsWith('tag') && !t.startsWith('queue') && !t.startsWith('rtable')),
    label,
    ...trailing.filter((t) => t.startsWith('queue')),
    ...trailing.filter((t) => t.startsWith('tag ')),
    ...trailing.filter((t) => t.startsWith('tagged')),
    ...trailing.filter((t) => t.startsWith('rtable')),
  ];
  return parts.filter((p): p is string => p !== undefined && p !== '').join(' ');
}

function normalizeOtherRule(tokens: string[]): string {
  let text = tokens.join(' ').replace(/ , /g, ', ');
  const bareAnchor = /^(anchor|nat-anchor|rdr-anchor|binat-anchor|dummynet-anchor) "[^"]*"$/.exec(text);
  if (bareAnchor) text += ' all';
  if (/^scrub-anchor "[^"]*"$/.test(text)) text += ' all fragment reassemble';
  return text;
}

/**
 * A rule as we write it → the rule(s) pfctl prints for it (lists expand to several).
 * Comments and blank lines give []. Macros (`$x`) are refused: we never write them.
 */
export function normalizePfRule(rule: string): string[] {
  if (rule.includes('$')) throw new ParseError(NORMALIZE_KIND, `macros are not supported: "${rule.trim()}"`);
  const tokens = tokenize(rule);
  if (tokens.length === 0) return [];
  if (tokens.some((t, i) => t === '!' && tokens[i + 1] === '{')) {
    throw new ParseError(NORMALIZE_KIND, `"! { … }" is a syntax error for pfctl (negate each element) in "${rule.trim()}"`);
  }
  const printed = expandLists(tokens).map((expanded) =>
    /^(pass|block|match)$/.test(expanded[0]) ? normalizeFilterRule(expanded, rule.trim()) : normalizeOtherRule(expanded),
  );
  const valid = printed.filter((p): p is string => p !== undefined);
  if (valid.length === 0) throw new ParseError(NORMALIZE_KIND, `rule expands to no valid combination (address families differ): "${rule.trim()}"`);
  return valid;
}

const MACRO_DEFINITION = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?:"([^"]*)"|(\S+))\s*(?:#.*)?$/;

/**
 * Every rule of a pf.conf-style text (one rule per line), normalised and expanded. Macro
 * definitions (`INTF = "en0"`) are expanded as pfctl does; an undefined macro is an error.
 */
export function normalizePfRuleset(text: string): string[] {
  const macros = new Map<string, string>();
  return text.split(/\r?\n/).flatMap((line, index) => {
    const definition = MACRO_DEFINITION.exec(line);
    if (definition) {
      macros.set(definition[1], definition[2] ?? definition[3]);
      return [];
    }
    const expanded = line.replace(/\$([A-Za-z_][A-Za-z0-9_]*)/g, (_, name: string) => {
      const value = macros.get(name);
      if (value === undefined) throw new ParseError(NORMALIZE_KIND, `undefined macro $${name}`, index + 1);
      return value;
    });
    return normalizePfRule(expanded);
  });
}
