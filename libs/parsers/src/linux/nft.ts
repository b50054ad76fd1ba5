/**
 * `nft -j list table <family> <name>` / `nft -j list ruleset` (libnftables JSON schema 1).
 *
 * Enough to read a kill switch back: tables, chains (with hook, priority, policy) and rules,
 * each rule also rendered as the text `nft list` would print for it (counter values left
 * out), so a caller can compare the live rules with the ones it loaded, line by line.
 */
import { ParseError } from '../errors';
import { parseToolJson } from './json';

export interface NftTable {
  family: string;
  name: string;
  handle?: number;
}

export interface NftChain {
  family: string;
  table: string;
  name: string;
  handle?: number;
  type?: string;
  hook?: string;
  prio?: number;
  policy?: string;
}

export interface NftRule {
  family: string;
  table: string;
  chain: string;
  handle?: number;
  comment?: string;
  expr: unknown[];
  /** `oifname "eth0" ip daddr 203.0.113.10 udp dport 51820 accept` (no comment, no counter values). */
  text: string;
}

export interface NftRuleset {
  version?: string;
  tables: NftTable[];
  chains: NftChain[];
  rules: NftRule[];
}

const KIND = 'nft -j';
// Meta keys nft prints without the `meta` prefix.
const UNQUALIFIED_META = new Set(['iif', 'oif', 'iifname', 'oifname', 'iifgroup', 'oifgroup', 'iiftype', 'oiftype', 'mark', 'skuid', 'skgid', 'rtclassid']);
const NAME_KEYS = new Set(['iifname', 'oifname', 'ibrname', 'obrname', 'ibriport', 'obriport']);
const VERDICTS = new Set(['accept', 'drop', 'continue', 'return', 'queue']);

function quoteIfName(value: unknown, quote: boolean): string {
  if (quote && typeof value === 'string') return `"${value}"`;
  return renderValue(value, quote);
}

function renderValue(value: unknown, quoteStrings = false): string {
  if (typeof value === 'string') return quoteStrings ? `"${value}"` : value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return value.map((v) => renderValue(v, quoteStrings)).join(',');
  if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if ('set' in o) {
      const items = Array.isArray(o.set) ? o.set : [o.set];
      return `{ ${items.map((v) => renderValue(v, quoteStrings)).join(', ')} }`;
    }
    if ('prefix' in o) {
      const p = fields(o.prefix);
      return `${renderValue(p.addr)}/${renderValue(p.len)}`;
    }
    if ('range' in o && Array.isArray(o.range)) {
      const [lo, hi] = o.range as unknown[];
      return `${renderValue(lo, quoteStrings)}-${renderValue(hi, quoteStrings)}`;
    }
  }
  return JSON.stringify(value);
}

/** A JSON value as text (String() throws on objects whose toString is not a function). */
function jsonText(value: unknown): string {
  return typeof value === 'string' ? value : value === undefined ? 'undefined' : (JSON.stringify(value) ?? '');
}

/** The members of a JSON object; {} for anything else (nft's JSON is read, never trusted). */
function fields(value: unknown): Record<string, unknown> {
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function renderLeft(left: unknown): { text: string; quoteRight: boolean } {
  if (left && typeof left === 'object') {
    const o = left as Record<string, unknown>;
    if ('meta' in o) {
      const key = jsonText(fields(o.meta).key);
      return { text: UNQUALIFIED_META.has(key) ? key : `meta ${key}`, quoteRight: NAME_KEYS.has(key) };
    }
    if ('payload' in o) {
      const p = fields(o.payload);
      if (p.protocol !== undefined) return { text: `${jsonText(p.protocol)} ${jsonText(p.field)}`, quoteRight: false };
      return { text: `@${jsonText(p.base)},${jsonText(p.offset)},${jsonText(p.len)}`, quoteRight: false };
    }
    if ('ct' in o) {
      const ct = fields(o.ct);
      return { text: ct.dir ? `ct ${jsonText(ct.dir)} ${jsonText(ct.key)}` : `ct ${jsonText(ct.key)}`, quoteRight: false };
    }
  }
  return { text: renderValue(left), quoteRight: false };
}

/** Renders one statement of a rule's `expr` list the way `nft list` prints it. */
function renderNftStatement(statement: unknown): string {
  if (!statement || typeof statement !== 'object') throw new ParseError(KIND, `bad statement: ${JSON.stringify(statement)}`);
  const [key] = Object.keys(statement);
  const body = (statement as Record<string, unknown>)[key];
  if (key === 'match') {
    const m = fields(body);
    const left = renderLeft(m.left);
    const right = quoteIfName(m.right, left.quoteRight);
    const op = m.op === '==' || m.op === 'in' ? '' : `${m.op} `;
    return `${left.text} ${op}${right}`;
  }
  if (VERDICTS.has(key)) return key;
  if (key === 'jump' || key === 'goto') return `${key} ${jsonText(fields(body).target)}`;
  if (key === 'counter') return 'counter';
  if (key === 'reject') {
    const r = fields(body);
    if (r.type === undefined) return 'reject';
    return r.expr === undefined ? `reject with ${jsonText(r.type)}` : `reject with ${jsonText(r.type)} ${jsonText(r.expr)}`;
  }
  if (key === 'log') {
    const l = fields(body);
    return l.prefix === undefined ? 'log' : `log prefix "${jsonText(l.prefix)}"`;
  }
  if (key === 'masquerade') return 'masquerade';
  return `${key} ${JSON.stringify(body)}`;
}

export function renderNftRule(expr: unknown[]): string {
  return expr.map(renderNftStatement).join(' ');
}

export function parseNftJson(text: string): NftRuleset {
  const data = parseToolJson(KIND, text);
  const items = (data as { nftables?: unknown })?.nftables;
  if (!Array.isArray(items)) throw new ParseError(KIND, 'expected an object with an "nftables" array');
  const ruleset: NftRuleset = { tables: [], chains: [], rules: [] };
  for (const item of items) {
    if (!item || typeof item !== 'object') continue;
    const o = item as Record<string, Record<string, unknown>>;
    if (o.metainfo) ruleset.version = typeof o.metainfo.version === 'string' ? o.metainfo.version : undefined;
    else if (o.table) {
      ruleset.tables.push({ family: jsonText(o.table.family), name: jsonText(o.table.name), handle: o.table.handle as number | undefined });
    } else if (o.chain) {
      const c = o.chain;
      ruleset.chains.push({
        family: jsonText(c.family),
        table: jsonText(c.table),
        name: jsonText(c.name),
        handle: c.handle as number | undefined,
        type: c.type as string | undefined,
        hook: c.hook as string | undefined,
        prio: c.prio as number | undefined,
        policy: c.policy as string | undefined,
      });
    } else if (o.rule) {
      const r = o.rule;
      if (!Array.isArray(r.expr)) throw new ParseError(KIND, `rule ${jsonText(r.handle)} in ${jsonText(r.chain)} has no expr list`);
      ruleset.rules.push({
        family: jsonText(r.family),
        table: jsonText(r.table),
        chain: jsonText(r.chain),
        handle: r.handle as number | undefined,
        comment: typeof r.comment === 'string' ? r.comment : undefined,
        expr: r.expr,
        text: renderNftRule(r.expr),
      });
    }
  }
  return ruleset;
}
