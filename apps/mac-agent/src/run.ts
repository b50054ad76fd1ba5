/**
 * The running agent: driver + engine + journal + health sampler + gRPC server, and the
 * install/uninstall actions. Loaded lazily by cli.ts (it pulls in gRPC).
 */
import { chownSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { HealthSampler } from '@wgctl/agent-kit';
import { agentInfo } from '@wgctl/agent-kit/grpc';
import { ensureTrustedDirectory } from '@wgctl/config';
import { createLogger, type Logger, type LogLevel } from '@wgctl/logging';
import type { MetricsServer, MetricsSources } from '@wgctl/metrics';
import { MacAgentService } from '@wgctl/proto';
import { ExecRunner, type Runner } from '@wgctl/runner';
import { startIdleTrim } from '@wgctl/state';
import { certificateCheck, createAgentServer, loadTlsMaterial, type AgentServer, type TlsMaterial } from '@wgctl/transport';
import type { HostNetworkDriver } from './host/driver';
import { LinuxDriver } from './host/linux';
import { startupProgramWarnings } from './install/program-trust';
import { installSystemd, uninstallSystemd } from './install/systemd';
import { agentArgs, type AgentOptions } from './options';
import { MacAgentEngine, type EngineStatus } from './service/engine';
import { JournalStore } from './service/journal';
import { openAtStart } from '@wgctl/state';
import { createMacAgentImplementation, macStatusMessage } from './service/server';

const SERVICE_NAME = 'wgctl.v1.MacAgent';

function createDriver(options: AgentOptions): HostNetworkDriver {
  if (options.driver === 'linux') return new LinuxDriver({ resolvConfPath: options.dnsResolvConf, dnsMode: options.dnsMode });
  return loadDarwinDriver(options.stateDir);
}

function loadDarwinDriver(stateDir: string): HostNetworkDriver {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { DarwinDriver } = require('./host/darwin') as typeof import('./host/darwin');
  return new DarwinDriver({ stateDir });
}

function loadLaunchd(): LaunchdModule {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('./install/launchd') as LaunchdModule;
}

/** gid of a group from /etc/group (present on Linux and, for local groups like admin, on macOS). */
function groupId(name: string, groupFile = '/etc/group'): number {
  if (/^\d+$/.test(name)) return Number(name);
  for (const line of readFileSync(groupFile, 'utf8').split('\n')) {
    const [group, , gid] = line.split(':');
    if (group === name && gid !== undefined) return Number(gid);
  }
  throw new Error(`group "${name}" not found in ${groupFile}`);
}

export interface RunningAgent {
  engine: MacAgentEngine;
  sampler: HealthSampler<EngineStatus>;
  server: AgentServer;
  address: string;
  /** --metrics-listen: the HTTPS metrics server. */
  metrics?: MetricsServer;
  /** Finishes the step in flight (an Up/Down ends there), closes the server. */
  stop(reason?: string): Promise<void>;
}

export interface StartAgentExtras {
  runner?: Runner;
  logger?: Logger;
  driver?: HostNetworkDriver;
  engine?: Partial<ConstructorParameters<typeof MacAgentEngine>[0]>;
  sampleIntervalMs?: number;
}

/**
 * How often, by default, the roam check re-reads the default route: darwin's `route -n monitor`
 * holds back messages without addresses (a bare RTM_IFINFO) until the next one, so a roam can
 * go unseen for long — 5 s; `ip monitor` prints each message as it comes, so on Linux the check
 * is only insurance — 30 s (each check spawns a few `ip` reads: idle CPU, benchmark #7).
 */
function defaultRoamCheckMs(driver: 'darwin' | 'linux'): number {
  return driver === 'darwin' ? 5_000 : 30_000;
}

/** What /metrics shows: the latest background sample as Status carries it; before the first, the agent alone (a scrape never samples). */
export function macMetricsSources(latest: EngineStatus | undefined, engine: Pick<MacAgentEngine, 'driverName' | 'roamSummary'>): MetricsSources {
  return latest ? { mac: macStatusMessage(latest, engine.driverName, engine.roamSummary) } : { unsampled: [agentInfo('mac-agent', engine.driverName)] };
}

/** --metrics-listen: Prometheus metrics over HTTPS mTLS (roles monitor and controller), from the sampler's cache. */
function startMacMetrics(listen: string, tls: TlsMaterial, sampler: HealthSampler<EngineStatus>, engine: MacAgentEngine, logger: Logger): Promise<MetricsServer> {
  // Loaded only with the flag: prom-client adds ~5 MB RSS and ~16 ms to a start (measured, bundled).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { buildMetricsRegistry, startMetricsServer } = require('@wgctl/metrics') as typeof import('@wgctl/metrics');
  return startMetricsServer({ listen, tls, allowedRoles: ['monitor', 'controller'], registry: () => buildMetricsRegistry(macMetricsSources(sampler.latest, engine)), logger });
}

export async function startAgent(options: AgentOptions, extras: StartAgentExtras = {}): Promise<RunningAgent> {
  const logger = extras.logger ?? createLogger({ service: 'mac-agent', level: options.logLevel as LogLevel });
  const driver = extras.driver ?? createDriver(options);
  const tls = options.tlsDir ? loadTlsMaterial(options.tlsDir, 'mac-agent') : undefined;
  // The journal (and darwin's pf rules file) say what Down undoes as root: StrictModes on them.
  ensureTrustedDirectory(options.stateDir, 'state directory');
  const engine = new MacAgentEngine({
    driver,
    runner: extras.runner ?? new ExecRunner(),
    journal: openAtStart((o) => new JournalStore(options.stateDir, o), logger),
    logger,
    stallAfterStep: process.env.WGCTL_TEST_STALL_AFTER_STEP || undefined,
    roamBackstopMs: options.roamCheckIntervalMs ?? defaultRoamCheckMs(driver.name),
    healCheckMs: options.healCheckIntervalMs,
    // Something was put back: health and Status sampled afresh (the sampler exists by then).
    onHeal: () => void sampler.refreshAfterChange().catch(() => undefined),
    // Over TCP (mTLS): Status warns CERTIFICATE_WARN_DAYS before its certificate or the CA expires.
    advisoryChecks: tls ? () => [certificateCheck(tls, new Date())] : undefined,
    ...extras.engine,
  });
  const server = createAgentServer({
    serviceName: SERVICE_NAME,
    tls,
    insecure: tls ? undefined : 'unix-socket',
    allowedRoles: ['controller'],
    logger,
    initialHealth: false,
  });
  const sampler = new HealthSampler({
    sample: () => engine.status(),
    verdict: (status) => ({ serving: status.healthy, reasons: status.reasons }),
    intervalMs: extras.sampleIntervalMs ?? options.healthIntervalMs,
    onVerdict: (serving) => server.setHealth(serving),
    logger,
  });
  server.addService(MacAgentService, createMacAgentImplementation(engine, sampler));
  if (options.listen.startsWith('unix:')) mkdirSync(dirname(options.listen.slice('unix:'.length)), { recursive: true, mode: 0o755 });
  const address = await server.listen(options.listen);
  let metrics: MetricsServer | undefined;
  try {
    if (options.listen.startsWith('unix:') && options.socketGroup) {
      chownSync(options.listen.slice('unix:'.length), 0, groupId(options.socketGroup));
    }
    if (options.metricsListen) {
      if (!tls) throw new Error('--metrics-listen needs --tls-dir: metrics are served over HTTPS with client certificates only');
      metrics = await startMacMetrics(options.metricsListen, tls, sampler, engine, logger);
    }
  } catch (e) {
    await server.shutdown(0);
    throw e;
  }
  logger.info('mac-agent started', { driver: driver.name, listen: address, stateDir: options.stateDir, ...(metrics ? { metrics: metrics.address } : {}) });
  warnIfUntrustedProgram(logger);
  await engine.reconcile();
  sampler.start();
  return {
    engine,
    sampler,
    server,
    address,
    metrics,
    async stop(reason = 'stop') {
      sampler.stop();
      // The Up/Down in flight finishes its current step and answers its caller; then the
      // server closes. Routes, kill switch and DNS stay as they are: a restart must not open the host.
      await engine.stop(reason);
      await Promise.all([server.shutdown(2_000), metrics?.close()]);
    },
  };
}

export async function runAgent(options: AgentOptions): Promise<void> {
  const agent = await startAgent(options);
  // Memory back after each burst of work (docs/BENCHMARKS.md #7).
  startIdleTrim();
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    void agent.stop(signal).then(
      () => process.exit(0),
      (e) => {
        process.stderr.write(`mac-agent: stopping on ${signal} failed: ${String(e)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

function scriptPath(): string {
  return resolve(process.argv[1] ?? 'mac-agent.js');
}

/** At every start as root: loud when node or this script could be swapped by a non-root user (install --allow-untrusted-program). */
function warnIfUntrustedProgram(logger: Logger): void {
  if (process.geteuid?.() !== 0) return;
  for (const problem of startupProgramWarnings({ nodePath: process.execPath, scriptPath: scriptPath() })) {
    logger.warn('UNTRUSTED PROGRAM: a non-root user can replace code this agent runs as root', { problem });
  }
}

export async function installService(
  options: AgentOptions,
  install: { start: boolean; unitDir?: string; node?: string; allowUntrustedProgram?: boolean },
): Promise<void> {
  const warn = (line: string) => void process.stderr.write(`${line}\n`);
  // Refuse now, not in a restart loop of the service: the agent checks the same at every start.
  if (options.tlsDir) loadTlsMaterial(options.tlsDir, 'mac-agent');
  const runner = new ExecRunner();
  if (options.driver === 'linux') {
    const path = await installSystemd(runner, {
      nodePath: process.execPath,
      scriptPath: scriptPath(),
      agentArgs: agentArgs(options),
      unitDir: install.unitDir,
      start: install.start,
      allowUntrustedProgram: install.allowUntrustedProgram,
      warn,
    });
    process.stdout.write(`installed ${path}${install.start ? ' (enabled and started)' : ''}\n`);
    return;
  }
  const launchd = loadLaunchd();
  // A Homebrew Cellar node is replaced by its stable link: print what the daemon will run.
  const installed = await launchd.installLaunchd(runner, {
    nodePath: install.node ?? process.execPath,
    scriptPath: scriptPath(),
    agentArgs: agentArgs(options),
    start: install.start,
    allowUntrustedProgram: install.allowUntrustedProgram,
  });
  installed.warnings.forEach(warn);
  process.stdout.write(`installed ${installed.plistPath} (runs ${installed.nodePath} ${installed.scriptPath})${install.start ? ', loaded and started' : ''}\n`);
}

/** What this file uses of install/launchd.ts (darwin; loaded only there). */
interface LaunchdModule {
  installLaunchd(
    run: Runner,
    options: { nodePath: string; scriptPath: string; agentArgs: string[]; start?: boolean; allowUntrustedProgram?: boolean },
  ): Promise<{ plistPath: string; nodePath: string; scriptPath: string; warnings: string[] }>;
  uninstallLaunchd(run: Runner, options?: { stop?: boolean }): Promise<string>;
}

export async function uninstallService(options: AgentOptions, uninstall: { unitDir?: string }): Promise<void> {
  const runner = new ExecRunner();
  const logger = createLogger({ service: 'mac-agent', level: options.logLevel as LogLevel, destination: 'stderr' });
  let path: string;
  if (options.driver === 'linux') path = await uninstallSystemd(runner, { unitDir: uninstall.unitDir });
  else {
    const launchd = loadLaunchd();
    path = await launchd.uninstallLaunchd(runner);
  }
  // The service is stopped: undo what the journal lists, so nothing blocks the host afterwards.
  ensureTrustedDirectory(options.stateDir, 'state directory');
  const engine = new MacAgentEngine({ driver: createDriver(options), runner, journal: new JournalStore(options.stateDir), logger });
  const outcome = await engine.down({}, (step) => {
    if (step.state !== 'started') process.stdout.write(`${step.step}: ${step.state}${step.message ? ` — ${step.message}` : ''}\n`);
  });
  await engine.close();
  process.stdout.write(`removed ${path}\n`);
  if (!outcome.ok) throw new Error(`undoing the host changes failed at ${outcome.failedStep}: ${outcome.error}`);
}
