/**
 * The normaliser: a PF rule as we write it → the rule(s) `pfctl -sr` prints for it, so that
 * status can compare the desired rules with the live ones (parsed by pf-rules.ts).
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
import {
  NORMALIZE_KIND,
  PROTOCOLS,
  normalizeFlags,
  normalizeIcmpCode,
  normalizeIcmpType,
  normalizeStateOptions,
  portNumber,
} from './pf-print-tables';

const OPERATORS = new Set(['=', '!=', '<', '<=', '>', '>=']);

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

/** A filter rule's words, as read (before pfctl's defaults and printing order apply). */
interface FilterWords {
  action: string;
  head: string[];
  direction?: string;
  log?: string;
  quick: boolean;
  on?: string;
  route?: string;
  af?: string;
  proto?: string;
  src: HostSpec;
  dst: HostSpec;
  os?: string;
  ugid: string[];
  flags?: string;
  icmp?: string;
  tos?: string;
  state?: string;
  stateOptions?: string;
  label?: string;
  trailing: string[];
}

/** The action and how a block blocks (`block` alone is `block drop`). */
function readAction(c: Cursor, rule: string): { action: string; head: string[] } {
  const action = c.next('an action');
  const head: string[] = [action];
  if (action !== 'block') return { action, head };
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
  return { action, head };
}

/** One keyword of a filter rule (and its operands) into `w`. Over 80 lines: one short case per PF keyword, kept together as the grammar's single list. */
function readFilterWord(c: Cursor, word: string, w: FilterWords, rule: string): void {
  switch (word) {
    case 'in':
    case 'out':
      w.direction = word;
      break;
    case 'log':
      w.log = c.peek()?.startsWith('(') ? `log ${c.next('')}` : 'log';
      break;
    case 'quick':
      w.quick = true;
      break;
    case 'on': {
      const negate = c.peek() === '!' ? (c.i++, '! ') : '';
      w.on = `on ${negate}${c.next('an interface')}`;
      break;
    }
    case 'route-to':
    case 'reply-to':
    case 'dup-to':
    case 'fastroute':
      w.route = word === 'fastroute' ? word : `${word} ${c.next('a route target')}`;
      break;
    case 'inet':
    case 'inet6':
      w.af = word;
      break;
    case 'proto': {
      const p = c.next('a protocol');
      w.proto = PROTOCOLS[p] ?? p;
      break;
    }
    case 'all':
      break;
    case 'from':
      w.src = parseHostSpec(c);
      if (c.peek() === 'os') {
        c.i++;
        w.os = `os ${c.next('a fingerprint')}`;
      }
      break;
    case 'to':
      w.dst = parseHostSpec(c);
      break;
    case 'user':
    case 'group':
      w.ugid.push(parseUgid(word, c));
      break;
    case 'flags': {
      const value = c.next('tcp flags');
      w.flags = value === 'any' ? 'any' : normalizeFlags(value, rule);
      break;
    }
    case 'icmp-type':
    case 'icmp6-type': {
      const type = normalizeIcmpType(word, c.next('an icmp type'), rule);
      w.icmp = `${word} ${type.name}`;
      if (c.peek() === 'code') {
        c.i++;
        w.icmp += ` code ${normalizeIcmpCode(word, type.number, c.next('an icmp code'), rule)}`;
      }
      break;
    }
    case 'tos':
      w.tos = `tos ${c.next('a tos')}`;
      break;
    case 'no':
      if (c.next('"state"') !== 'state') throw new ParseError(NORMALIZE_KIND, `expected "no state" in "${rule}"`);
      w.state = 'no state';
      break;
    case 'keep':
    case 'modulate':
    case 'synproxy':
      if (c.next('"state"') !== 'state') throw new ParseError(NORMALIZE_KIND, `expected "${word} state" in "${rule}"`);
      w.state = `${word} state`;
      if (c.peek()?.startsWith('(')) w.stateOptions = normalizeStateOptions(c.next(''), rule);
      break;
    default:
      if (word === 'label') w.label = `label ${c.next('a label')}`;
      else if (TRAILING_WITH_VALUE.has(word)) w.trailing.push(`${word} ${c.next(`a ${word} value`)}`);
      else if (TRAILING_BARE.has(word)) w.trailing.push(word);
      else throw new ParseError(NORMALIZE_KIND, `unsupported word "${word}" in "${rule}"`);
  }
}

function readFilterRule(tokens: string[], rule: string): FilterWords {
  const c = new Cursor(tokens, rule);
  const w: FilterWords = { ...readAction(c, rule), quick: false, src: { negated: false, host: 'any' }, dst: { negated: false, host: 'any' }, ugid: [], trailing: [] };
  while (!c.done()) readFilterWord(c, c.next('a keyword'), w, rule);
  return w;
}

/**
 * The words as pfctl prints them: its defaults (keep state, flags S/SA), what expand_rule drops
 * for non-tcp protocols, print_rule's order. Undefined when the addresses' families cannot meet
 * (pfctl skips that combination).
 */
function printFilterRule(w: FilterWords): string | undefined {
  const { action, head, direction, log, quick, on, route, proto, src, dst, os, ugid, icmp, tos, stateOptions, label, trailing } = w;
  let { af, state, flags } = w;
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

/** One expanded rule as pfctl prints it; undefined when its addresses' families cannot meet (pfctl skips it). */
function normalizeFilterRule(tokens: string[], rule: string): string | undefined {
  return printFilterRule(readFilterRule(tokens, rule));
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
