/**
 * docs/monitoring/README.md's table of metrics is the catalog the agents export from
 * (libs/metrics/src/catalog.ts): every metric, with its type and labels, and nothing else.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { METRICS } from '@wgctl/metrics';
import { MONITORING_DIR } from '../files';

interface DocumentedMetric {
  type: string;
  labels: string[];
}

/** The rows `| \`name\` | type | \`l1\`, \`l2\` | meaning |` of the metrics table. */
function documentedMetrics(markdown: string): Map<string, DocumentedMetric> {
  const rows = new Map<string, DocumentedMetric>();
  for (const line of markdown.split('\n')) {
    const cells = line.split(/(?<!\\)\|/).map((c) => c.trim());
    const name = /^`([a-z_:][a-z0-9_:]*)`$/.exec(cells[1] ?? '')?.[1];
    if (!name || !/^(counter|gauge|histogram|summary)$/.test(cells[2] ?? '')) continue;
    const labels = cells[3] === '—' ? [] : (cells[3] ?? '').split(',').map((l) => l.trim().replace(/`/g, ''));
    rows.set(name, { type: cells[2], labels });
  }
  return rows;
}

describe('docs/monitoring/README.md', () => {
  const documented = documentedMetrics(readFileSync(join(MONITORING_DIR, 'README.md'), 'utf8'));

  it('documents every exported metric with its type and labels', () => {
    for (const metric of Object.values(METRICS)) {
      expect({ name: metric.name, ...documented.get(metric.name) }).toEqual({ name: metric.name, type: metric.type, labels: [...metric.labels] });
    }
  });

  it('documents no metric that is not exported', () => {
    const exported = new Set<string>(Object.values(METRICS).map((m) => m.name));
    expect([...documented.keys()].filter((name) => !exported.has(name))).toEqual([]);
  });
});
