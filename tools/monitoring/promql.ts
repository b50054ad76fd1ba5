/**
 * The metric names a PromQL expression reads, for checking dashboards and alert rules against
 * the catalog of what wgctl exports (@wgctl/metrics METRICS). A small lexer, not a parser:
 * it drops what cannot name a metric (strings, label matchers, ranges, grouping label lists,
 * Grafana variables, numbers, keywords, function calls) and keeps the identifiers left.
 * The expressions' syntax itself is checked by the real promtool.
 */

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'inf', 'nan', 'atan2']);

const STRINGS = /"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g;
/** Grafana's template variables: $var, ${var}, ${var:format}, [[var]]. */
const GRAFANA_VARIABLES = /\$\{[^}]*\}|\$[A-Za-z_]\w*|\[\[[^\]]*\]\]/g;
const LABEL_MATCHERS = /\{[^}]*\}/g;
const RANGES = /\[[^\]]*\]/g;
const GROUPING_LABELS = /\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g;
const OFFSETS = /\b(?:offset\s+-?[0-9a-z]+|@\s*[0-9.]+)/g;
const TOKENS = /0x[0-9a-f]+|\d*\.?\d+(?:e[+-]?\d+)?|[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?/gi;

/** Distinct metric names read by `expr`, in order of first use. */
export function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(STRINGS, ' ')
    .replace(GRAFANA_VARIABLES, ' ')
    .replace(LABEL_MATCHERS, ' ')
    .replace(RANGES, ' ')
    .replace(GROUPING_LABELS, ' ')
    .replace(OFFSETS, ' ');
  const names: string[] = [];
  for (const match of stripped.matchAll(TOKENS)) {
    const token = match[0];
    const isCall = match[1] !== undefined;
    if (isCall || !/^[A-Za-z_:]/.test(token) || KEYWORDS.has(token.toLowerCase())) continue;
    if (!names.includes(token)) names.push(token);
  }
  return names;
}
