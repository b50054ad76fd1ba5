/**
 * The alert rules file's expressions, read without a YAML library: `expr:` inline or as a block
 * scalar (`expr: |` and the more indented lines after it), the two forms docs/monitoring uses.
 * The tests compare the count with what promtool finds, so a form this misses cannot hide.
 */

export interface RuleExpression {
  alert: string;
  expr: string;
}

const ALERT_LINE = /^\s*-\s*alert:\s*(\S+)\s*$/;
const EXPR_LINE = /^(\s*)expr:\s*(.*)$/;

export function ruleExpressions(yamlText: string): RuleExpression[] {
  const lines = yamlText.split('\n');
  const rules: RuleExpression[] = [];
  let alert = '';
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const alertMatch = ALERT_LINE.exec(line);
    if (alertMatch) alert = alertMatch[1] ?? '';
    const exprMatch = EXPR_LINE.exec(line);
    if (!exprMatch) continue;
    const [, indent = '', value = ''] = exprMatch;
    if (!/^[|>][-+]?$/.test(value.trim())) {
      rules.push({ alert, expr: unquote(value.trim()) });
      continue;
    }
    const block: string[] = [];
    while (i + 1 < lines.length && (lines[i + 1]!.trim() === '' || indentOf(lines[i + 1]!) > indent.length)) block.push(lines[++i]!.trim());
    rules.push({ alert, expr: block.join('\n').trim() });
  }
  return rules;
}

function indentOf(line: string): number {
  return line.length - line.trimStart().length;
}

function unquote(value: string): string {
  if (value.startsWith("'") && value.endsWith("'")) return value.slice(1, -1).replace(/''/g, "'");
  if (value.startsWith('"') && value.endsWith('"')) return JSON.parse(value) as string;
  return value;
}
