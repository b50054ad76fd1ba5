/**
 * Issue #16's "done when", in the namespace lab: a real Prometheus (Debian's package) in the
 * Mac's namespace scrapes both built agents' --metrics-listen over mTLS with the monitor
 * certificate, while the tunnel is up through `wgctl up`:
 *   - both targets are up; the queries wireguard_latest_handshake_seconds and
 *     wgctl_killswitch_loaded return what the agents report in `wgctl status --json`;
 *   - a plaintext scrape and a scrape with a client certificate of another CA are refused;
 *   - `promtool check metrics` passes on each agent's /metrics and on `wgctl metrics --textfile`;
 *   - docs/monitoring/wgctl-alerts.yml loads, evaluates against the real series without error,
 *     and fires nothing on a healthy tunnel.
 * Prometheus scrapes only the lab's agents; its API listens on the namespace's own loopback.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promtoolCheckMetrics } from '@wgctl/metrics/testing';
import { createPki } from '@wgctl/transport';
import { agentLogPath, defaultLabDir, labTopology, type AgentName, type Lab } from '../../lab/src';
import { eventually } from '../../e2e/observe';
import { createStack, describeRun, expectExit, netnsTestsEnabled, type Stack } from '../../e2e/stack';
import { ALERT_RULES_FILE } from '../files';
import { metricsAgentArgs, metricsListen, scrapeAgentInLab } from '../lab-metrics';
import { startPrometheus, type ActiveTarget, type RunningPrometheus, type ScrapeJob } from '../prometheus';

const suite = netnsTestsEnabled() ? describe : describe.skip;

const PREFIX = 'wgmon';
const topology = labTopology(PREFIX, defaultLabDir(PREFIX));
const vmMetrics = metricsListen(topology, 'vm-agent');
/** The mac-agent listens on the Mac's loopback, where Prometheus runs too. */
const macMetrics = metricsListen(topology, 'mac-agent');
/** Samples every second (defaults: 5 s and 15 s), so the metrics follow `up` quickly. */
const SAMPLE_EVERY_SECOND = ['--health-interval', '1000'];

interface StatusJson {
  vm: { reachable: boolean; peers: Array<{ publicKey: string; latestHandshake: string | null }> };
  mac: { reachable: boolean; killSwitch: { loaded: boolean } };
}

suite('monitoring: a real Prometheus scrapes both agents over mTLS (netns)', () => {
  const began = Date.now();
  const figures: Record<string, number> = {};
  let work: string;
  let stack: Stack;
  let lab: Lab;
  let prometheus: RunningPrometheus;

  function scrapeJobs(tlsDir: string, otherCaDir: string): ScrapeJob[] {
    const tls = (dir: string, serverName: string) => ({ caFile: join(tlsDir, 'ca.crt'), certFile: join(dir, 'monitor.crt'), keyFile: join(dir, 'monitor.key'), serverName });
    return [
      { job: 'wgctl-vm-agent', target: vmMetrics, scheme: 'https', tls: tls(tlsDir, 'vm-agent') },
      { job: 'wgctl-mac-agent', target: macMetrics, scheme: 'https', tls: tls(tlsDir, 'mac-agent') },
      // Named outside wgctl-.* so the alert rules' `up` ignores these deliberate failures.
      { job: 'refused-plaintext-vm', target: vmMetrics, scheme: 'http' },
      { job: 'refused-plaintext-mac', target: macMetrics, scheme: 'http' },
      { job: 'refused-other-ca-vm', target: vmMetrics, scheme: 'https', tls: tls(otherCaDir, 'vm-agent') },
      { job: 'refused-other-ca-mac', target: macMetrics, scheme: 'https', tls: tls(otherCaDir, 'mac-agent') },
    ];
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'wgctl-prometheus-'));
    const metrics = metricsAgentArgs(topology);
    stack = await createStack(PREFIX, { vmAgentArgs: [...SAMPLE_EVERY_SECOND, ...metrics.vmAgentArgs], macAgentArgs: [...SAMPLE_EVERY_SECOND, ...metrics.macAgentArgs] });
    lab = stack.lab;
    // Another pairing: its monitor certificate is well-formed but signed by a CA the agents do not trust.
    const otherCaDir = join(work, 'other-ca');
    await createPki(otherCaDir, { vmAddresses: [topology.vm.eth.ipv4] });
    expectExit(await stack.wgctl(['up']), 0);
    prometheus = await startPrometheus(lab, { ns: 'mac', dir: join(work, 'prometheus'), jobs: scrapeJobs(stack.tlsDir, otherCaDir), ruleFiles: [ALERT_RULES_FILE] });
    figures.prometheusStartupMs = prometheus.startupMs;
  }, 90_000);

  afterAll(async () => {
    await prometheus?.stop();
    if (stack) {
      const down = await stack.wgctl(['down']);
      await stack.destroy();
      if (down.exitCode !== 0) throw new Error(`cleanup: wgctl down failed\n${describeRun(down)}`);
    }
    if (work) rmSync(work, { recursive: true, force: true });
    figures.testDurationMs = Date.now() - began;
    console.log(`monitoring e2e figures: ${JSON.stringify(figures)}`);
  }, 60_000);

  /** The OpenSSL/Node codes of the handshakes an agent's metrics listener rejected (its log). */
  function metricsHandshakeRejections(agent: AgentName): string[] {
    const lines = readFileSync(agentLogPath(lab, agent), 'utf8').split('\n').filter((l) => l.startsWith('{'));
    const entries = lines.map((l) => JSON.parse(l) as { message?: string; listener?: string; code?: string });
    return [...new Set(entries.filter((e) => e.message === 'tls handshake rejected' && e.listener === 'metrics').map((e) => e.code ?? ''))];
  }

  const byJob = (targets: ActiveTarget[], job: string) => targets.find((t) => t.labels.job === job);

  it('scrapes both agents over HTTPS with the monitor certificate: both targets up', async () => {
    const targets = await eventually(
      'both wgctl targets up',
      async () => {
        const all = await prometheus.targets();
        return ['wgctl-vm-agent', 'wgctl-mac-agent'].every((job) => byJob(all, job)?.health === 'up') && all;
      },
      15_000,
      200,
    ).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${JSON.stringify(await prometheus.targets(), null, 2)}\n--- prometheus ---\n${prometheus.logTail()}`);
    });
    figures.bothTargetsUpMs = Date.now() - prometheus.startedAt; // ~5 s of it: Prometheus applies discovered targets every 5 s
    expect(byJob(targets, 'wgctl-vm-agent')).toMatchObject({ scrapeUrl: `https://${vmMetrics}/metrics`, lastError: '' });
    expect(byJob(targets, 'wgctl-mac-agent')).toMatchObject({ scrapeUrl: `https://${macMetrics}/metrics`, lastError: '' });
  });

  it('wireguard_latest_handshake_seconds and wgctl_killswitch_loaded are what `wgctl status --json` reports', async () => {
    // A rekey between the status and the query could move the handshake: agree within a few tries.
    const seen = await eventually(
      'Prometheus and status --json to agree',
      async () => {
        const status = JSON.parse(expectExit(await stack.wgctl(['status', '--json']), 0).stdout) as StatusJson;
        const handshakes = await prometheus.query('wireguard_latest_handshake_seconds{job="wgctl-vm-agent"}');
        const killSwitch = await prometheus.query('wgctl_killswitch_loaded{job="wgctl-mac-agent"}');
        const reported = status.vm.peers.map((p) => ({ public_key: p.publicKey, seconds: p.latestHandshake === null ? 0 : Date.parse(p.latestHandshake) / 1000 }));
        const scraped = handshakes.map((s) => ({ public_key: s.metric.public_key, seconds: s.value }));
        const agree = reported.length > 0 && JSON.stringify(scraped) === JSON.stringify(reported) && killSwitch.length === 1 && killSwitch[0]!.value === Number(status.mac.killSwitch.loaded);
        return agree ? { reported, killSwitch: killSwitch[0]!.value, killSwitchReported: status.mac.killSwitch.loaded } : null;
      },
      10_000,
      500,
    );
    expect(seen.reported[0]!.seconds).toBeGreaterThan(Date.now() / 1000 - 180); // a real, recent handshake
    expect(seen).toMatchObject({ killSwitch: 1, killSwitchReported: true });
  });

  it('refuses a plaintext scrape and a client certificate of another CA, at the TLS layer', async () => {
    const targets = await eventually(
      'the refused targets to be scraped',
      async () => {
        const refused = (await prometheus.targets()).filter((t) => t.labels.job!.startsWith('refused-'));
        return refused.length === 4 && refused.every((t) => t.health !== 'unknown') && refused;
      },
      10_000,
      200,
    );
    const refused = targets.map((t) => ({ job: t.labels.job, health: t.health, lastError: t.lastError })).sort((a, b) => a.job!.localeCompare(b.job!));
    const failedGet = (url: string) => expect.stringContaining(`Get "${url}"`);
    expect(refused).toEqual([
      { job: 'refused-other-ca-mac', health: 'down', lastError: failedGet(`https://${macMetrics}/metrics`) },
      { job: 'refused-other-ca-vm', health: 'down', lastError: failedGet(`https://${vmMetrics}/metrics`) },
      { job: 'refused-plaintext-mac', health: 'down', lastError: failedGet(`http://${macMetrics}/metrics`) },
      { job: 'refused-plaintext-vm', health: 'down', lastError: failedGet(`http://${vmMetrics}/metrics`) },
    ]);
    // Not one sample got through, at any scrape so far.
    expect(await prometheus.query('max_over_time(up{job=~"refused-.*"}[5m]) > 0')).toEqual([]);
    expect(await prometheus.query('count({job=~"refused-.*", __name__=~"wgctl_.*|wireguard_.*"})')).toEqual([]);
    // Why, from the agents: their metrics listener refused the handshakes (Go only sees EOF under TLS 1.3).
    for (const agent of ['vm-agent', 'mac-agent'] as const) {
      expect([agent, metricsHandshakeRejections(agent)]).toEqual([agent, expect.arrayContaining(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'ERR_SSL_HTTP_REQUEST'])]);
    }
  });

  it('promtool check metrics passes on both agents\' /metrics (scraped with the monitor certificate) and on `wgctl metrics --textfile`', async () => {
    for (const [agent, family] of [
      ['vm-agent', 'wireguard_latest_handshake_seconds'],
      ['mac-agent', 'wgctl_killswitch_loaded'],
    ] as const) {
      const scrape = await scrapeAgentInLab(lab, agent, stack.tlsDir);
      expect(scrape).toMatchObject({ status: 200, contentType: expect.stringContaining('text/plain') });
      expect(scrape.body).toContain(`# TYPE ${family} gauge`);
      expect([agent, promtoolCheckMetrics(scrape.body)]).toEqual([agent, { status: 0, output: '' }]);
    }

    const textfileDir = join(work, 'textfile');
    mkdirSync(textfileDir);
    expectExit(await stack.wgctl(['metrics', '--textfile', textfileDir]), 0);
    const textfile = readFileSync(join(textfileDir, 'wgctl.prom'), 'utf8');
    expect(promtoolCheckMetrics(textfile)).toEqual({ status: 0, output: '' });
    expect(textfile).toMatch(/^wgctl_agent_reachable\{agent="vm-agent"\} 1$/m);
    expect(textfile).toMatch(/^wgctl_agent_reachable\{agent="mac-agent"\} 1$/m);
    expect(textfile).toMatch(/^wgctl_killswitch_loaded 1$/m);
  });

  it('the alert rules load in Prometheus, evaluate against the agents\' series without error, and fire nothing on a healthy tunnel', async () => {
    const groups = await eventually(
      'every rule evaluated',
      async () => {
        const all = await prometheus.ruleGroups();
        return all.length > 0 && all.every((g) => g.rules.every((r) => r.health !== 'unknown')) && all;
      },
      10_000,
      250,
    );
    const rules = groups.flatMap((g) => g.rules);
    expect(rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.lastError}`)).toEqual([]);
    expect(rules.filter((r) => (r.alerts ?? []).length > 0).map((r) => ({ alert: r.name, alerts: r.alerts }))).toEqual([]);
    // Evaluated on real series, not on nothing: the guards' series are there.
    expect((await prometheus.query('wgctl_mac_up == 1 and on() wgctl_vm_up == 1')).length).toBe(1);
  });
});
