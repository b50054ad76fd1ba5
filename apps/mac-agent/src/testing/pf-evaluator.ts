/**
 * A small PF filter evaluator for tests: which verdict PF gives a packet, given filter rules AS
 * PFCTL PRINTS THEM (`pfctl -sr`, or shared/tools/pfctl-grammar's check.sh output) — not as we
 * write them, since what pfctl prints is what the kernel holds (implicit `flags S/SA keep
 * state`, lists expanded).
 *
 * The semantics are xnu's bsd/net/pf.c (apple/darwin-xnu), not our renderer's intentions:
 * - pf_test / pf_test6: an existing state is looked up first (pf_test_state_tcp/_udp/_icmp,
 *   through pf_find_state); a packet of a flow with a state passes without any rule, and the
 *   rules (pf_test_rule) run only when no state was found. States are floating unless the
 *   rule that made them is if-bound (BOUND_IFACE: kif = pfi_all), so they hold on any
 *   interface. pf_find_state matches the creating direction as is and the other one reversed
 *   (lan_ext tree for out, ext_gwy for in; no NAT here, so lan = gwy).
 * - pf_test_rule: rules in order from the main ruleset, each tested like its loop
 *   (pfi_kif_match vs r->ifnot, r->direction, r->af, r->proto, PF_MISMATCHAW for src/dst with
 *   `!`, pf_match_port for tcp/udp ports, r->type/r->code, PFRULE_FRAGMENT,
 *   `(r->flagset & th->th_flags) != r->flags` for tcp); the last matching rule wins, a `quick`
 *   one ends the walk; no match leaves pf_default_rule (pass, no state).
 * - Anchors (pf_step_into_anchor / pf_step_out_of_anchor): an anchor rule that matches runs
 *   the anchor's ruleset; `NAME/*` runs each DIRECT child of NAME in name order (RB tree of
 *   paths); a quick match inside ends everything; a quick anchor ends the walk after its
 *   rulesets if anything in them matched. Names are relative to the ruleset holding the rule
 *   unless they start with `/` (pf_ruleset.c pf_anchor_setup).
 * - A passing rule creates a state when it keeps state and the packet is not an ICMP error
 *   (`!state_icmp && r->keep_state`).
 *
 * Not modelled, and refused rather than guessed: tables, interface addresses `(if)`, NAT,
 * user/group, tags, route-to, probabilities, tos; ICMP errors (pf matches them to the state of
 * the packet they carry); ICMP states. An existing TCP state is assumed in-window
 * (pf_test_state_tcp's sequence checks can still drop a packet of a known flow).
 */
import ipaddr from 'ipaddr.js';
import { PFCTL_NOISE, pfIcmpCodeNumber, pfIcmpTypeNumber } from '@wgctl/parsers';

export type PfDirection = 'in' | 'out';
export type PfFamily = 'inet' | 'inet6';
export type PfProtocol = 'tcp' | 'udp' | 'icmp' | 'ipv6-icmp';

export interface PfPacket {
  direction: PfDirection;
  interface: string;
  af: PfFamily;
  proto: PfProtocol;
  src: string;
  dst: string;
  srcPort?: number;
  dstPort?: number;
  /** TCP flags set, in any order: `S`, `A`, `PA`, `SA`, `FA`… */
  tcpFlags?: string;
  /** ICMP(v6) type: pfctl's name (`neighbrsol`) or the number. */
  icmpType?: string | number;
  icmpCode?: number;
}

/** A PF state (tcp/udp): the flow as its first packet saw it. */
export interface PfState {
  af: PfFamily;
  proto: 'tcp' | 'udp';
  /** Direction of the packet that created it. */
  direction: PfDirection;
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
  /** Only for states of if-bound rules; absent = floating (pfi_all). */
  interface?: string;
}

export interface PfVerdict {
  action: 'pass' | 'block';
  decidedBy: 'state' | 'rule' | 'default';
  /** The deciding rule as printed (for `rule`). */
  rule?: string;
  /** Path of the ruleset holding that rule ('' = main). */
  anchor?: string;
  stateCreated: boolean;
  /** The state that passed the packet, or the one the rule created (tcp/udp). */
  state?: PfState;
}

/** Filter rulesets by anchor path ('' = the main ruleset), each as pfctl prints it. */
export type PfRulesets = Record<string, readonly string[]>;

interface PortMatch {
  op: '=' | '!=' | '<' | '<=' | '>' | '>=' | '><' | '<>' | ':';
  a: number;
  b: number;
}

interface AddressMatch {
  negated: boolean;
  network?: [ipaddr.IPv4 | ipaddr.IPv6, number]; // absent: `any`
  port?: PortMatch;
}

interface ParsedRule {
  text: string;
  action: 'pass' | 'block' | 'anchor';
  anchor?: { path: string; wildcard: boolean };
  direction?: PfDirection;
  quick: boolean;
  on?: { name: string; not: boolean };
  af?: PfFamily;
  proto?: string;
  src: AddressMatch;
  dst: AddressMatch;
  flags: number;
  flagset: number;
  icmpType?: number;
  icmpCode?: number;
  fragment: boolean;
  keepState: boolean;
  ifBound: boolean;
}

const TCP_FLAGS = 'FSRPAUEW'; // bit i = 1 << i: TH_FIN, TH_SYN, TH_RST, TH_PUSH, TH_ACK, TH_URG, TH_ECE, TH_CWR
/** Rulesets of other kinds that `pfctl -sr` lists with the filter rules (pf_test_rule never walks them). */
const NOT_FILTER = /^(scrub|no scrub|scrub-anchor|nat-anchor|rdr-anchor|binat-anchor|dummynet-anchor)\b/;
/** State options that change nothing about which packets pass (limits, timeouts, pfsync). */
const HARMLESS_STATE_OPTION = /^(max \d+|no-sync|sloppy|(tcp|udp|icmp|other)\.[a-z]+ \d+|frag \d+|interval \d+|adaptive\.(start|end) \d+)$/;

function tcpFlagBits(letters: string, context: string): number {
  let bits = 0;
  for (const letter of letters) {
    const index = TCP_FLAGS.indexOf(letter);
    if (index < 0) throw new Error(`pf evaluator: bad TCP flag "${letter}" in "${context}"`);
    bits |= 1 << index;
  }
  return bits;
}

function portMatches(m: PortMatch, port: number): boolean {
  // pf_match: IRG ><, XRG <>, RRG :
  switch (m.op) {
    case '=': return port === m.a;
    case '!=': return port !== m.a;
    case '<': return port < m.a;
    case '<=': return port <= m.a;
    case '>': return port > m.a;
    case '>=': return port >= m.a;
    case '><': return port > m.a && port < m.b;
    case '<>': return port < m.a || port > m.b;
    case ':': return port >= m.a && port <= m.b;
  }
}

/** PF_MISMATCHAW for an address/mask: `any` (zero mask) always matches, before `!` is applied. */
function addressMismatch(m: AddressMatch, address: string): boolean {
  const matches = m.network === undefined || ipaddr.parse(address).match(m.network);
  return !matches !== m.negated;
}

class Words {
  private i = 0;
  constructor(
    private readonly words: string[],
    readonly text: string,
  ) {}
  peek(): string | undefined {
    return this.words[this.i];
  }
  take(expected?: string): string {
    const word = this.words[this.i++];
    if (word === undefined) throw new Error(`pf evaluator: expected ${expected ?? 'more'} at the end of "${this.text}"`);
    if (expected !== undefined && word !== expected) this.refuse(word);
    return word;
  }
  takeIf(word: string): boolean {
    if (this.peek() !== word) return false;
    this.i++;
    return true;
  }
  done(): boolean {
    return this.i >= this.words.length;
  }
  refuse(word: string): never {
    throw new Error(`pf evaluator: does not understand "${word}" in "${this.text}"`);
  }
}

function parsePort(w: Words): PortMatch {
  const first = w.take();
  const number = (text: string) => {
    if (!/^\d+$/.test(text) || Number(text) > 65535) w.refuse(text);
    return Number(text);
  };
  if (['=', '!=', '<', '<=', '>', '>='].includes(first)) return { op: first as PortMatch['op'], a: number(w.take()), b: 0 };
  const range = /^(\d+):(\d+)$/.exec(first);
  if (range) return { op: ':', a: number(range[1]), b: number(range[2]) };
  const op = w.take();
  if (op !== '><' && op !== '<>') w.refuse(`${first} ${op}`);
  return { op, a: number(first), b: number(w.take()) };
}

function parseAddress(w: Words): AddressMatch {
  const negated = w.takeIf('!');
  const text = w.take();
  const match: AddressMatch = { negated };
  if (text !== 'any') {
    const [address, length] = text.split('/');
    if (!ipaddr.isValid(address) || (length !== undefined && !/^\d+$/.test(length))) w.refuse(text); // tables, (if), self, no-route…
    const parsed = ipaddr.parse(address);
    match.network = [parsed, length === undefined ? (parsed.kind() === 'ipv4' ? 32 : 128) : Number(length)];
  }
  if (w.takeIf('port')) match.port = parsePort(w);
  return match;
}

function parseIcmp(w: Words, rule: ParsedRule, family: PfFamily): void {
  const typeText = w.take();
  const type = /^\d+$/.test(typeText) ? Number(typeText) : pfIcmpTypeNumber(family, typeText);
  if (type === undefined) w.refuse(typeText);
  rule.icmpType = type;
  if (w.takeIf('code')) {
    const codeText = w.take();
    const code = /^\d+$/.test(codeText) ? Number(codeText) : pfIcmpCodeNumber(family, type, codeText);
    if (code === undefined) w.refuse(codeText);
    rule.icmpCode = code;
  }
}

/** Resolves an anchor call as pf_anchor_setup does: `/x` absolute, else relative to `from`. */
function anchorPath(name: string, from: string, w: Words): { path: string; wildcard: boolean } {
  if (name.startsWith('../')) w.refuse(name);
  let path = name.startsWith('/') ? name.slice(1) : from ? `${from}/${name}` : name;
  const wildcard = path === '*' || path.endsWith('/*');
  if (wildcard) path = path.slice(0, Math.max(0, path.length - 2));
  return { path, wildcard };
}

/** The words after the addresses (flags, icmp type, state, fragment, label); anything else is refused. */
function parseTrailingWords(w: Words, rule: ParsedRule): { stateWord: string | undefined; flagsPrinted: boolean } {
  let stateWord: string | undefined;
  let flagsPrinted = false;
  while (!w.done()) {
    const word = w.take();
    if (word === 'flags') {
      flagsPrinted = true;
      const value = w.take();
      if (value !== 'any') {
        const [set, mask] = value.split('/');
        if (mask === undefined) w.refuse(value);
        rule.flags = tcpFlagBits(set, rule.text);
        rule.flagset = tcpFlagBits(mask, rule.text);
      }
    } else if (word === 'icmp-type' || word === 'icmp6-type') {
      parseIcmp(w, rule, word === 'icmp-type' ? 'inet' : 'inet6');
    } else if (word === 'no' && w.peek() === 'state') {
      w.take();
      stateWord = 'no state';
    } else if (['keep', 'modulate', 'synproxy'].includes(word) && w.peek() === 'state') {
      w.take();
      stateWord = `${word} state`;
      rule.keepState = true;
      if (w.peek()?.startsWith('(')) {
        for (const option of w.take().slice(1, -1).split(',').map((o) => o.trim())) {
          if (option === 'if-bound') rule.ifBound = true;
          else if (!HARMLESS_STATE_OPTION.test(option)) w.refuse(option);
        }
      }
    } else if (word === 'fragment') {
      rule.fragment = true;
    } else if (word === 'label') {
      w.take(); // a name for counters
    } else {
      w.refuse(word);
    }
  }
  return { stateWord, flagsPrinted };
}

/** One rule as pfctl prints it (print_rule's word order); anything else is refused. */
export function parsePrintedPfRule(text: string, rulesetPath = ''): ParsedRule {
  const words = text.trim().match(/"[^"]*"|[^\s(]*\([^)]*\)|\S+/g) ?? [];
  const w = new Words(words, text.trim());
  const rule: ParsedRule = {
    text: text.trim(), action: 'pass', quick: false, src: { negated: false }, dst: { negated: false },
    flags: 0, flagset: 0, fragment: false, keepState: false, ifBound: false,
  };
  const action = w.take();
  if (action === 'anchor') {
    const name = w.take();
    if (!/^"[^"]*"$/.test(name)) w.refuse(name);
    rule.action = 'anchor';
    rule.anchor = anchorPath(name.slice(1, -1), rulesetPath, w);
  } else if (action === 'block') {
    rule.action = 'block';
    const how = w.take();
    if (!/^(drop|return|return-rst(\(ttl \d+\))?|return-icmp6?\([^)]*\))$/.test(how)) w.refuse(how); // all drop the packet
  } else if (action !== 'pass') w.refuse(action);

  if (w.peek() === 'in' || w.peek() === 'out') rule.direction = w.take() as PfDirection;
  if (w.takeIf('log') && w.peek()?.startsWith('(')) w.take(); // logging changes no verdict
  rule.quick = w.takeIf('quick');
  if (w.takeIf('on')) rule.on = w.takeIf('!') ? { name: w.take(), not: true } : { name: w.take(), not: false };
  if (w.peek() === 'inet' || w.peek() === 'inet6') rule.af = w.take() as PfFamily;
  if (w.takeIf('proto')) {
    rule.proto = w.take();
    if (!/^[a-z][a-z0-9-]*$/.test(rule.proto)) w.refuse(rule.proto);
  }
  if (!w.takeIf('all')) {
    w.take('from');
    rule.src = parseAddress(w);
    w.take('to');
    rule.dst = parseAddress(w);
  }
  const { stateWord, flagsPrinted } = parseTrailingWords(w, rule);
  // print_rule always shows a pass rule's state, and a stateful pass rule that can see TCP its
  // flags: a text without them was not printed by pfctl (e.g. a rule as written), and reading
  // it as "no flags check" would be wrong.
  if (rule.action === 'pass') {
    if (stateWord === undefined) throw new Error(`pf evaluator: "${rule.text}" is not as pfctl prints it (no state word)`);
    const seesTcp = rule.proto === undefined || rule.proto === 'tcp';
    if (rule.keepState && seesTcp && !rule.fragment && !flagsPrinted) {
      throw new Error(`pf evaluator: "${rule.text}" is not as pfctl prints it (a stateful pass rule shows its flags)`);
    }
  }
  return rule;
}

const ICMP_ERROR_TYPES: Record<PfFamily, number[]> = { inet: [3, 4, 5, 11, 12], inet6: [1, 2, 3, 4] }; // ICMP_ERRORTYPE, ICMP6_ERRORTYPE

function checkPacket(p: PfPacket): { tcpFlags: number; icmpType: number; icmpCode: number } {
  const where = `${p.direction} on ${p.interface} ${p.proto} ${p.src} -> ${p.dst}`;
  for (const address of [p.src, p.dst]) {
    if (!ipaddr.isValid(address) || (ipaddr.parse(address).kind() === 'ipv4') !== (p.af === 'inet')) {
      throw new Error(`pf evaluator: "${address}" is not an ${p.af} address (${where})`);
    }
  }
  if ((p.proto === 'tcp' || p.proto === 'udp') && (p.srcPort === undefined || p.dstPort === undefined)) throw new Error(`pf evaluator: ports needed (${where})`);
  if (p.proto === 'tcp' && !p.tcpFlags) throw new Error(`pf evaluator: TCP flags needed (${where})`);
  let icmpType = 0;
  let icmpCode = 0;
  // pf_test_rule reads a type only from icmp over inet and ipv6-icmp over inet6.
  if ((p.proto === 'icmp' && p.af === 'inet') || (p.proto === 'ipv6-icmp' && p.af === 'inet6')) {
    const type = typeof p.icmpType === 'number' ? p.icmpType : p.icmpType === undefined ? undefined : pfIcmpTypeNumber(p.af, p.icmpType);
    if (type === undefined) throw new Error(`pf evaluator: ICMP type needed (${where})`);
    if (ICMP_ERROR_TYPES[p.af].includes(type)) throw new Error(`pf evaluator: ICMP errors are matched to the state they carry: not modelled (${where})`);
    icmpType = type;
    icmpCode = p.icmpCode ?? 0;
  }
  return { tcpFlags: p.proto === 'tcp' ? tcpFlagBits(p.tcpFlags ?? '', where) : 0, icmpType, icmpCode };
}

/** pf_find_state: same direction as the creating packet = same orientation; the other = reversed. */
function findState(states: readonly PfState[], p: PfPacket): PfState | undefined {
  const same = (a: string, b: string) => ipaddr.parse(a).toNormalizedString() === ipaddr.parse(b).toNormalizedString();
  return states.find((s) => {
    if (s.af !== p.af || s.proto !== p.proto || (s.interface !== undefined && s.interface !== p.interface)) return false;
    const [src, srcPort, dst, dstPort] = s.direction === p.direction ? [s.src, s.srcPort, s.dst, s.dstPort] : [s.dst, s.dstPort, s.src, s.srcPort];
    return same(src, p.src) && srcPort === p.srcPort && same(dst, p.dst) && dstPort === p.dstPort;
  });
}

/** The tests of pf_test_rule's loop, in its order, for one rule. */
function ruleMatches(r: ParsedRule, p: PfPacket, seen: { tcpFlags: number; icmpType: number; icmpCode: number }): boolean {
  const onMatches = r.on === undefined || r.on.name === p.interface; // pfi_kif_match: exact name (xnu has no groups here)
  if (onMatches === (r.on?.not ?? false)) return false;
  if (r.direction && r.direction !== p.direction) return false;
  if (r.af && r.af !== p.af) return false;
  if (r.proto && r.proto !== p.proto) return false;
  if (addressMismatch(r.src, p.src)) return false;
  const portsApply = r.proto === p.proto && (p.proto === 'tcp' || p.proto === 'udp');
  if (portsApply && r.src.port && !portMatches(r.src.port, p.srcPort!)) return false;
  if (addressMismatch(r.dst, p.dst)) return false;
  if (portsApply && r.dst.port && !portMatches(r.dst.port, p.dstPort!)) return false;
  if (r.icmpType !== undefined && r.icmpType !== seen.icmpType) return false;
  if (r.icmpCode !== undefined && r.icmpCode !== seen.icmpCode) return false;
  if (r.fragment) return false; // our packets are not fragments
  if (p.proto === 'tcp' && (r.flagset & seen.tcpFlags) !== r.flags) return false;
  return true;
}

/**
 * The verdict PF gives `packet`, with `rulesets` loaded ('' = main ruleset; each an anchor's
 * rules as printed) and `states` in the state table.
 */
export function evaluatePf(rulesets: PfRulesets, packet: PfPacket, states: readonly PfState[] = []): PfVerdict {
  const parsed = new Map<string, ParsedRule[]>();
  for (const [path, lines] of Object.entries(rulesets)) {
    const rules = lines.map((l) => l.trim()).filter((l) => l !== '' && !PFCTL_NOISE.test(l) && !NOT_FILTER.test(l));
    parsed.set(path, rules.map((l) => parsePrintedPfRule(l, path)));
  }
  const seen = checkPacket(packet);

  const existing = packet.proto === 'tcp' || packet.proto === 'udp' ? findState(states, packet) : undefined;
  if (existing) return { action: 'pass', decidedBy: 'state', stateCreated: false, state: existing };

  // Every anchor that exists: the loaded ones and their parents (pf_find_or_create_ruleset).
  const paths = new Set<string>();
  for (const path of parsed.keys()) {
    const parts = path.split('/');
    for (let n = 1; n <= parts.length; n++) paths.add(parts.slice(0, n).join('/'));
  }
  const parentOf = (path: string) => path.slice(0, Math.max(0, path.lastIndexOf('/')));
  // `NAME/*`: NAME's direct children, in the order of their paths (pf_anchor_compare: strcmp).
  const children = (parent: string) => [...paths].filter((c) => c !== '' && c !== parent && parentOf(c) === parent).sort();

  let last: { rule: ParsedRule; anchor: string } | undefined;
  /** Walks one ruleset; true when a quick match ended the whole evaluation. */
  const walk = (path: string): { stop: boolean; matched: boolean } => {
    let matched = false;
    for (const rule of parsed.get(path) ?? []) {
      if (!ruleMatches(rule, packet, seen)) continue;
      if (rule.anchor) {
        let inner = false;
        for (const child of rule.anchor.wildcard ? children(rule.anchor.path) : [rule.anchor.path]) {
          const result = walk(child);
          if (result.stop) return result;
          inner ||= result.matched;
        }
        matched ||= inner;
        if (rule.quick && inner) return { stop: true, matched: true };
        continue;
      }
      last = { rule, anchor: path };
      matched = true;
      if (rule.quick) return { stop: true, matched };
    }
    return { stop: false, matched };
  };
  walk('');

  if (!last) return { action: 'pass', decidedBy: 'default', stateCreated: false }; // pf_default_rule: pass, no state
  const verdict: PfVerdict = { action: last.rule.action === 'block' ? 'block' : 'pass', decidedBy: 'rule', rule: last.rule.text, anchor: last.anchor, stateCreated: false };
  if (verdict.action === 'pass' && last.rule.keepState) {
    verdict.stateCreated = true; // ICMP errors (state_icmp) were refused above
    if (packet.proto === 'tcp' || packet.proto === 'udp') {
      verdict.state = {
        af: packet.af, proto: packet.proto, direction: packet.direction,
        src: packet.src, srcPort: packet.srcPort!, dst: packet.dst, dstPort: packet.dstPort!,
        ...(last.rule.ifBound ? { interface: packet.interface } : {}),
      };
    }
  }
  return verdict;
}
