/** The parts of a Grafana dashboard JSON (schemaVersion 39) the tests look at. */

export interface GridPos {
  h: number;
  w: number;
  x: number;
  y: number;
}

export interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: GridPos;
  datasource?: { type: string; uid: string };
  targets?: Array<{ expr: string; refId: string; datasource?: { type: string; uid: string } }>;
  panels?: Panel[];
}

export interface Dashboard {
  __inputs: Array<{ name: string; type: string; pluginId: string }>;
  schemaVersion: number;
  uid: string;
  title: string;
  panels: Panel[];
}

/** Every panel, with those inside collapsed rows. */
export function allPanels(dashboard: Dashboard): Panel[] {
  return dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

export interface PanelQuery {
  panel: Panel;
  refId: string;
  expr: string;
}

export function panelQueries(dashboard: Dashboard): PanelQuery[] {
  return allPanels(dashboard).flatMap((panel) => (panel.targets ?? []).map((t) => ({ panel, refId: t.refId, expr: t.expr })));
}

/** Grafana's interval variables replaced by a duration, so promtool can parse the query. */
export function asPlainPromql(expr: string): string {
  return expr.replace(/\$__(?:rate_interval|interval|range)\b/g, '5m');
}

/** Pairs of panels whose rectangles overlap on the 24-column grid. */
export function overlappingPanels(panels: Panel[]): Array<[Panel, Panel]> {
  const overlaps: Array<[Panel, Panel]> = [];
  panels.forEach((a, i) =>
    panels.slice(i + 1).forEach((b) => {
      const apart = a.gridPos.x + a.gridPos.w <= b.gridPos.x || b.gridPos.x + b.gridPos.w <= a.gridPos.x || a.gridPos.y + a.gridPos.h <= b.gridPos.y || b.gridPos.y + b.gridPos.h <= a.gridPos.y;
      if (!apart) overlaps.push([a, b]);
    }),
  );
  return overlaps;
}
