/**
 * PF rules as `pfctl -sr` / `pfctl -a ANCHOR -sr` print them (also `-v`/`-vv` and nested
 * `{ … }` blocks). The normaliser that turns a rule as we write it into that printed form is
 * pf-normalize.ts.
 */
import { ParseError } from '../errors';

const RULES_KIND = 'pfctl -sr';

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
