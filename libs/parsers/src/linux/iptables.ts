/**
 * Parsers for iptables' own listing formats, identical for the nf_tables and legacy backends:
 *
 * - `iptables [-t T] -S [CHAIN]`:  `-P CHAIN POLICY`, `-N CHAIN`, `-A CHAIN <rule args>`
 * - `iptables-save [-c]`:          `*table`, `:CHAIN POLICY [pkts:bytes]`, `[pkts:bytes] -A …`, `COMMIT`, `# comments`
 * - `iptables --version`:          `iptables v1.8.9 (nf_tables)` / `(legacy)` / bare `v1.6.1` (legacy)
 *
 * Rule arguments come back as tokens exactly as iptables prints them (canonical order:
 * -s -d -i -o -p, matches, -j), with the double quotes around comments removed, so a rule
 * can be compared token-for-token with the argv that created it.
 */
import { ParseError } from '../errors';

export interface IptablesRule {
  chain: string;
  /** Tokens after `-A CHAIN`, unquoted. */
  args: string[];
  /** The `-j`/`-g` target, when present. */
  target?: string;
  /** The `-m comment --comment` text, when present. */
  comment?: string;
  /** Packet/byte counters (iptables-save -c only). */
  counters?: { packets: string; bytes: string };
  /** 1-based line in the parsed text. */
  line: number;
}

export interface IptablesChain {
  name: string;
  /** Policy of a built-in chain; null for a user-defined chain. */
  policy: string | null;
  builtin: boolean;
}

export interface IptablesRuleset {
  chains: IptablesChain[];
  rules: IptablesRule[];
}

export interface IptablesSaveTable extends IptablesRuleset {
  name: string;
}

export type IptablesBackend = 'nft' | 'legacy';

/**
 * Splits one iptables line into tokens: whitespace separated, double-quoted strings with
 * `\"` and `\\` escapes (as iptables prints comments) become one token without the quotes.
 */
export function tokenizeIptablesLine(line: string, lineNo?: number): string[] {
  const tokens: string[] = [];
  let i = 0;
  const n = line.length;
  while (i < n) {
    while (i < n && (line[i] === ' ' || line[i] === '\t')) i++;
    if (i >= n) break;
    let token = '';
    let quoted = false;
    while (i < n && line[i] !== ' ' && line[i] !== '\t') {
      if (line[i] === '"') {
        quoted = true;
        i++;
        while (i < n && line[i] !== '"') {
          if (line[i] === '\\' && i + 1 < n) i++;
          token += line[i++];
        }
        if (i >= n) throw new ParseError('iptables', 'unterminated double quote', lineNo);
        i++; // closing quote
      } else {
        token += line[i++];
      }
    }
    if (token !== '' || quoted) tokens.push(token);
  }
  return tokens;
}

function describeRule(chain: string, args: string[], line: number, counters?: IptablesRule['counters']): IptablesRule {
  const rule: IptablesRule = { chain, args, line };
  for (let i = 0; i < args.length - 1; i++) {
    const a = args[i];
    if ((a === '-j' || a === '-g' || a === '--jump' || a === '--goto') && rule.target === undefined) rule.target = args[i + 1];
    else if (a === '--comment' && rule.comment === undefined) rule.comment = args[i + 1];
  }
  if (counters) rule.counters = counters;
  return rule;
}

/** Parses `iptables [-t TABLE] -S [CHAIN]` output. */
export function parseIptablesRules(text: string): IptablesRuleset {
  const chains: IptablesChain[] = [];
  const rules: IptablesRule[] = [];
  const rows = text.split('\n');
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i].trim();
    if (row === '' || row.startsWith('#')) continue;
    const tokens = tokenizeIptablesLine(row, i + 1);
    const [op, chain] = tokens;
    if (!chain) throw new ParseError('iptables -S', `"${op}" without a chain name`, i + 1);
    if (op === '-P') {
      if (tokens.length !== 3) throw new ParseError('iptables -S', 'expected "-P CHAIN POLICY"', i + 1);
      chains.push({ name: chain, policy: tokens[2], builtin: true });
    } else if (op === '-N') {
      chains.push({ name: chain, policy: null, builtin: false });
    } else if (op === '-A') {
      rules.push(describeRule(chain, tokens.slice(2), i + 1));
    } else {
      throw new ParseError('iptables -S', `unexpected line start "${op}"`, i + 1);
    }
  }
  return { chains, rules };
}

/** Parses `iptables-save [-c]` output into its tables (in output order). */
export function parseIptablesSave(text: string): IptablesSaveTable[] {
  const tables: IptablesSaveTable[] = [];
  let current: IptablesSaveTable | undefined;
  const rows = text.split('\n');
  for (let i = 0; i < rows.length; i++) {
    const lineNo = i + 1;
    const row = rows[i].trim();
    if (row === '' || row.startsWith('#')) continue;
    if (row.startsWith('*')) {
      if (current) throw new ParseError('iptables-save', `table ${row.slice(1)} starts before COMMIT of ${current.name}`, lineNo);
      current = { name: row.slice(1), chains: [], rules: [] };
      continue;
    }
    if (!current) throw new ParseError('iptables-save', `"${row.slice(0, 40)}" outside of a *table … COMMIT block`, lineNo);
    if (row === 'COMMIT') {
      tables.push(current);
      current = undefined;
    } else if (row.startsWith(':')) {
      const m = /^:(\S+)\s+(\S+)(?:\s+\[(\d+):(\d+)\])?$/.exec(row);
      if (!m) throw new ParseError('iptables-save', `bad chain line "${row}"`, lineNo);
      const policy = m[2] === '-' ? null : m[2];
      current.chains.push({ name: m[1], policy, builtin: policy !== null });
    } else {
      let counters: IptablesRule['counters'];
      let body = row;
      const c = /^\[(\d+):(\d+)\]\s+/.exec(row);
      if (c) {
        counters = { packets: c[1], bytes: c[2] };
        body = row.slice(c[0].length);
      }
      const tokens = tokenizeIptablesLine(body, lineNo);
      if (tokens[0] !== '-A' || !tokens[1]) throw new ParseError('iptables-save', `expected "-A CHAIN …", got "${body.slice(0, 40)}"`, lineNo);
      current.rules.push(describeRule(tokens[1], tokens.slice(2), lineNo, counters));
    }
  }
  if (current) throw new ParseError('iptables-save', `table ${current.name} has no COMMIT`);
  return tables;
}

/** Parses `iptables --version`. Versions before 1.8 had only the legacy backend and print no suffix. */
export function parseIptablesVersion(text: string): { version: string; backend: IptablesBackend } {
  const m = /^(?:ip6?tables\S*)\s+v(\d+(?:\.\d+)*)(?:\s+\((nf_tables|legacy)\))?/m.exec(text.trim());
  if (!m) throw new ParseError('iptables --version', `unrecognised output "${text.trim().slice(0, 60)}"`);
  return { version: m[1], backend: m[2] === 'nf_tables' ? 'nft' : 'legacy' };
}
