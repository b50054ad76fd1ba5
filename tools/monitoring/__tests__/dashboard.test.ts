/**
 * docs/monitoring/grafana-dashboard.json: imports cleanly (valid JSON, a DS_PROMETHEUS input
 * every query uses, unique panel ids, panels on the grid without overlaps), every query parses
 * (the real promtool, as recording rules) and reads only metrics wgctl exports, and every
 * exported metric is shown somewhere.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allPanels, asPlainPromql, overlappingPanels, panelQueries, type Dashboard } from '../dashboard';
import { DASHBOARD_FILE, KNOWN_METRICS, unknownMetrics } from '../files';
import { metricNamesIn } from '../promql';
import { checkRules, rulesFound } from '../promtool';

const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;
const panels = allPanels(dashboard);
const queries = panelQueries(dashboard);
const DATASOURCE = { type: 'prometheus', uid: '${DS_PROMETHEUS}' };

describe('the Grafana dashboard', () => {
  it('is a schemaVersion 39 dashboard with a Prometheus datasource input and no instance-specific id', () => {
    expect(dashboard).toMatchObject({ schemaVersion: 39, uid: 'wgctl-overview', title: 'wgctl', id: null });
    expect(dashboard.__inputs).toEqual([expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' })]);
  });

  it('every panel has a unique id and a gridPos inside the 24 columns, and none overlap', () => {
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels) {
      expect([p.title, Number.isInteger(p.id) && p.id > 0]).toEqual([p.title, true]);
      const { x, y, w, h } = p.gridPos;
      expect([p.title, x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= 24]).toEqual([p.title, true]);
    }
    expect(overlappingPanels(panels).map(([a, b]) => `${a.title} / ${b.title}`)).toEqual([]);
  });

  it('every query goes to the DS_PROMETHEUS input', () => {
    const elsewhere = panels.filter((p) => p.type !== 'row' && (p.datasource?.uid !== DATASOURCE.uid || (p.targets ?? []).some((t) => t.datasource?.uid !== DATASOURCE.uid)));
    expect(elsewhere.map((p) => p.title)).toEqual([]);
    expect(queries.length).toBeGreaterThan(20);
  });

  it('reads only metrics wgctl exports, and shows every one of them', () => {
    const read = queries.flatMap((q) => metricNamesIn(q.expr));
    expect(unknownMetrics(read)).toEqual([]);
    expect([...KNOWN_METRICS].filter((name) => !read.includes(name))).toEqual([]);
  });

  it('every query is valid PromQL (promtool check rules, each query as a recording rule)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wgctl-dashboard-'));
    try {
      const file = join(dir, 'dashboard-queries.yml');
      const rules = queries.map((q) => `      - record: panel_${q.panel.id}_${q.refId}\n        expr: ${JSON.stringify(asPlainPromql(q.expr))}`);
      writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${rules.join('\n')}\n`);
      const r = await checkRules([file]);
      expect(r.output).toContain('SUCCESS');
      expect(rulesFound(r.output)).toBe(queries.length);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
