/**
 * docs/monitoring/wgctl-alerts.yml with the real promtool: the rules parse, read only metrics
 * wgctl exports, and their unit tests (wgctl-alerts.test.yml) pass — and fail when a rule is
 * weakened, so the unit tests really pin each alert's guard.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALERT_RULES_FILE, ALERT_TESTS_FILE, unknownMetrics } from '../files';
import { metricNamesIn } from '../promql';
import { checkRules, rulesFound, testRules } from '../promtool';
import { ruleExpressions } from '../rules-file';

const rulesText = readFileSync(ALERT_RULES_FILE, 'utf8');
const rules = ruleExpressions(rulesText);

describe('the alert rules (promtool)', () => {
  it('promtool check rules passes, and finds as many rules as the tests read', async () => {
    const r = await checkRules([ALERT_RULES_FILE]);
    expect(r).toMatchObject({ ok: true });
    expect(rulesFound(r.output)).toBe(rules.length);
    expect(rules.length).toBeGreaterThanOrEqual(10);
  });

  it('read only metrics wgctl exports (or up)', () => {
    const read = rules.flatMap((r) => metricNamesIn(r.expr));
    expect(read).toEqual(expect.arrayContaining(['wireguard_latest_handshake_seconds', 'wgctl_killswitch_loaded', 'up']));
    expect(unknownMetrics(read)).toEqual([]);
  });

  it('each alert has a unit test where it fires and one where it stays silent', () => {
    const tests = readFileSync(ALERT_TESTS_FILE, 'utf8');
    const cases = [...tests.matchAll(/alertname: (\w+)\n\s*exp_alerts:( \[\])?/g)].map((m) => ({ alert: m[1], fires: m[2] === undefined }));
    const untested = rules.map((r) => r.alert).filter((alert) => !cases.some((c) => c.alert === alert && c.fires) || !cases.some((c) => c.alert === alert && !c.fires));
    expect(untested).toEqual([]);
  });

  it('promtool test rules passes', async () => {
    const r = await testRules([ALERT_TESTS_FILE]);
    expect(r.output).toContain('SUCCESS');
    expect(r).toMatchObject({ ok: true });
  });

  describe('the unit tests catch a weakened rule', () => {
    let dir: string;
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'wgctl-alerts-'));
      copyFileSync(ALERT_TESTS_FILE, join(dir, 'wgctl-alerts.test.yml'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    async function testWith(from: string, to: string): Promise<string> {
      expect(rulesText).toContain(from);
      writeFileSync(join(dir, 'wgctl-alerts.yml'), rulesText.replace(from, to));
      const r = await testRules([join(dir, 'wgctl-alerts.test.yml')]);
      expect(r.ok).toBe(false);
      return r.output;
    }

    it('stale handshake without the never-handshaked guard: fires for a peer that never handshaked', async () => {
      const output = await testWith('\n            and wireguard_latest_handshake_seconds > 0', '');
      expect(output).toMatch(/alertname: WireGuardHandshakeStale[\s\S]*NEVER=/);
    });

    it('kill switch not loaded without the "while up" guard: fires for a Mac that is down', async () => {
      const output = await testWith('wgctl_killswitch_loaded == 0 and on(job, instance) wgctl_mac_up == 1', 'wgctl_killswitch_loaded == 0');
      expect(output).toMatch(/alertname: WgctlKillSwitchNotLoaded[\s\S]*mac4:9587/);
    });

    it('agent unreachable on any job: fires for a target that is not wgctl', async () => {
      const output = await testWith('up{job=~"wgctl-.*"} == 0', 'up == 0');
      expect(output).toMatch(/alertname: WgctlAgentUnreachable[\s\S]*printer:9100/);
    });
  });
});
