/** Where the monitoring artefacts live (docs/monitoring), and the names they may read. */
import { join } from 'node:path';
import { METRICS } from '@wgctl/metrics';
import { REPO_ROOT } from '../e2e/stack';

export const MONITORING_DIR = join(REPO_ROOT, 'docs', 'monitoring');
export const ALERT_RULES_FILE = join(MONITORING_DIR, 'wgctl-alerts.yml');
export const ALERT_TESTS_FILE = join(MONITORING_DIR, 'wgctl-alerts.test.yml');
export const DASHBOARD_FILE = join(MONITORING_DIR, 'grafana-dashboard.json');

/** Every metric wgctl exports (the catalog the builder reads), plus Prometheus's own `up`. */
export const KNOWN_METRICS: ReadonlySet<string> = new Set([...Object.values(METRICS).map((m) => m.name), 'up']);

/** Names read by the expressions that nothing exports. */
export function unknownMetrics(namesRead: string[]): string[] {
  return [...new Set(namesRead.filter((n) => !KNOWN_METRICS.has(n)))];
}
