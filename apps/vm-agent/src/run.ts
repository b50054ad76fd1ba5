/**
 * Wires the running agent: logger, TLS, engine, health sampler, gRPC server; reconciles the
 * journal at start-up (after a crash or a reboot) and shuts down cleanly on SIGTERM/SIGINT.
 * Stopping the agent does not take the tunnel down: the journal keeps what it applied and the
 * next start reconciles.
 */
import { resolve } from 'node:path';
import { HealthSampler } from '@wgctl/agent-kit';
import { agentInfo } from '@wgctl/agent-kit/grpc';
import { ensureTrustedDirectory, rootOwnedProblem } from '@wgctl/config';
import { createLogger, type Logger } from '@wgctl/logging';
import type { MetricsServer, MetricsSources } from '@wgctl/metrics';
import { VmAgentService } from '@wgctl/proto';
import { wgQuickInterfaceFromPath } from '@wgctl/parsers';
import { ExecRunner } from '@wgctl/runner';
import { startIdleTrim } from '@wgctl/state';
import { certificateCheck, createAgentServer, loadTlsMaterial, type TlsMaterial } from '@wgctl/transport';
import type { AgentOptions } from './options';
import { checkConfigFileAtStart } from './host/config';
import { ProcSysctl } from './host/sysctl';
import { WG_SOCKET_DIR } from './host/wireguard';
import { uninstall } from './install/install';
import { VmEngine, withLivenessNow } from './service/engine/engine';
import { JournalStore } from './service/journal';
import { openAtStart } from '@wgctl/state';
import { vmAgentHandlers, vmStatusMessage } from './service/server';
import type { VmSample } from './service/engine/sample';
import { startTunnelWatch } from './service/engine/tunnel-watch';

export const SERVICE_NAME = 'wgctl.v1.VmAgent';

function engineFor(options: Pick<AgentOptions, 'wgConfig' | 'stateDir'> & Partial<AgentOptions>, logger: Logger, tls?: TlsMaterial, onHeal?: () => void): VmEngine {
  return new VmEngine({
    // The agent's own certificate and the CA: Status warns CERTIFICATE_WARN_DAYS before either expires.
    advisoryChecks: tls ? () => [certificateCheck(tls, new Date())] : undefined,
    configPath: options.wgConfig,
    runner: new ExecRunner(),
    sysctl: new ProcSysctl(),
    wgSocketDir: WG_SOCKET_DIR,
    journal: openAtStart((o) => new JournalStore(options.stateDir, undefined, o), logger),
    logger,
    interfaceMethod: options.wgMethod ?? 'auto',
    handshakeTimeoutMs: options.handshakeTimeoutMs,
    handshakeThresholdS: options.handshakeThresholdS,
    stallAfterStep: process.env.WGCTL_TEST_STALL_AFTER_STEP || undefined,
    // While up, what Up applied is put back when removed (not for uninstall: it only takes down).
    selfHeal: options.healCheckIntervalMs ? { checkIntervalMs: options.healCheckIntervalMs, onHeal } : undefined,
  });
}

/** What /metrics shows: the latest background sample as Status carries it; before the first, the agent alone (a scrape never samples). */
export function vmMetricsSources(latest: VmSample | undefined, engine: Pick<VmEngine, 'driverName' | 'heals' | 'livenessNow'>): MetricsSources {
  return latest ? { vm: vmStatusMessage(withLivenessNow(latest, engine.livenessNow()), engine.driverName, engine.heals) } : { unsampled: [agentInfo('vm-agent', engine.driverName)] };
}

/** --metrics-listen: Prometheus metrics over HTTPS mTLS (roles monitor and controller), from the sampler's cache. */
export function startVmMetrics(listen: string, tls: TlsMaterial, sampler: Pick<HealthSampler<VmSample>, 'latest'>, engine: Pick<VmEngine, 'driverName' | 'heals' | 'livenessNow'>, logger: Logger): Promise<MetricsServer> {
  // Loaded only with the flag: prom-client adds ~5 MB RSS and ~16 ms to a start (measured, bundled).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { buildMetricsRegistry, startMetricsServer } = require('@wgctl/metrics') as typeof import('@wgctl/metrics');
  return startMetricsServer({ listen, tls, allowedRoles: ['monitor', 'controller'], registry: () => buildMetricsRegistry(vmMetricsSources(sampler.latest, engine)), logger });
}

/** At every start as root: loud when node or this program could be swapped by a non-root user (install --allow-untrusted-program). */
export function untrustedProgramAtStart(nodePath: string, programPath: string): string[] {
  try {
    return [rootOwnedProblem(nodePath, 'node'), rootOwnedProblem(programPath, 'program')].filter((p): p is string => p !== undefined);
  } catch (err) {
    return [`could not check the program it runs from: ${(err as Error).message}`];
  }
}

export async function runAgent(options: AgentOptions): Promise<void> {
  const logger = createLogger({ service: 'vm-agent', level: options.logLevel as never });
  if (process.geteuid?.() === 0) {
    for (const problem of untrustedProgramAtStart(process.execPath, resolve(process.argv[1] ?? 'vm-agent.js'))) {
      logger.warn('UNTRUSTED PROGRAM: a non-root user can replace code this agent runs as root', { problem });
    }
  }
  const tls = options.tlsDir ? loadTlsMaterial(options.tlsDir, 'vm-agent') : undefined;
  // It holds the WireGuard private key: refuse to start with a file others can read or own.
  await checkConfigFileAtStart(options.wgConfig, logger);
  // The journal says what Down undoes as root: no one else may write it or the directories above.
  ensureTrustedDirectory(options.stateDir, 'state directory');
  // A heal changes what health reports: sampled again at once (the sampler exists once the engine does).
  let resampleAfterHeal = (): void => undefined;
  const engine = engineFor(options, logger, tls, () => resampleAfterHeal());
  const server = createAgentServer({
    serviceName: SERVICE_NAME,
    tls,
    insecure: options.insecureLoopbackDev ? 'loopback-dev' : undefined,
    allowedRoles: ['controller'],
    logger,
    initialHealth: false,
  });
  const sampler = new HealthSampler({
    sample: () => engine.sample(),
    verdict: (sample) => sample,
    intervalMs: options.healthIntervalMs,
    onVerdict: (serving) => server.setHealth(serving),
    logger,
  });
  let startupDone!: () => void;
  const startup = new Promise<void>((resolve) => (startupDone = resolve));
  server.addService(VmAgentService, vmAgentHandlers(engine, sampler, logger, startup));
  resampleAfterHeal = () => void sampler.refreshAfterChange().catch(() => undefined);
  const bound = await server.listen(options.listen);
  // Its address taken, say: the agent stops (the gRPC server too, or it would keep the process alive).
  const metrics =
    options.metricsListen && tls
      ? await startVmMetrics(options.metricsListen, tls, sampler, engine, logger).catch(async (e: unknown) => {
          await server.shutdown(0);
          throw e;
        })
      : undefined;
  logger.info('vm-agent ready', { address: bound, wgConfig: options.wgConfig, stateDir: options.stateDir, pid: process.pid, ...(metrics ? { metrics: metrics.address } : {}) });
  sampler.start();
  // Health follows the tunnel within seconds: liveness verdicts and link events resample at once.
  const tunnelWatch = startTunnelWatch(engine, wgQuickInterfaceFromPath(options.wgConfig) ?? '', () => void sampler.refreshAfterChange().catch(() => undefined), logger);
  // Memory back after each burst of work (docs/BENCHMARKS.md #7).
  startIdleTrim();

  void engine
    .reconcile()
    .then((outcome) => {
      if (outcome) logger.info('reconcile finished', { ok: outcome.ok, failedStep: outcome.failedStep, error: outcome.error });
    })
    .catch((e) => logger.error('reconcile failed', { error: (e as Error).message }))
    .finally(() => {
      startupDone();
      void sampler.refresh();
    });

  await untilStopped(logger, engine, () => {
    sampler.stop();
    void tunnelWatch.stop();
  }, () => Promise.all([server.shutdown(5000), metrics?.close()]));
}

/**
 * SIGTERM/SIGINT: the Up or Down in flight finishes its current step and ends (its journal
 * keeps what it applied; the next start reconciles), then the servers close and we exit 0.
 */
function untilStopped(logger: Logger, engine: VmEngine, stopWatching: () => void, closeServers: () => Promise<unknown>): Promise<void> {
  return new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        logger.warn('already stopping: finishing the current step', { signal });
        return;
      }
      stopping = true;
      const running = engine.running;
      logger.info('stopping', { signal, ...(running ? { finishing: `the current step of ${running.op}` } : {}) });
      stopWatching();
      void engine
        .stop(signal)
        .then(closeServers)
        .then(() => {
          logger.info('stopped', { signal });
          resolve();
        });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

export async function uninstallAgent(options: {
  wgConfig: string;
  stateDir: string;
  prefix: string;
  root: string;
  keepNetwork: boolean;
}): Promise<void> {
  const logger = createLogger({ service: 'vm-agent', destination: 'stderr' });
  const runner = new ExecRunner();
  if (!options.keepNetwork && options.root === '/') ensureTrustedDirectory(options.stateDir, 'state directory');
  const engine = engineFor(options, logger);
  await uninstall({
    prefix: options.prefix,
    root: options.root,
    runner,
    log: (line) => process.stdout.write(`${line}\n`),
    down:
      options.keepNetwork || options.root !== '/'
        ? undefined
        : async () => {
            const outcome = await engine.down({});
            if (!outcome.ok) throw new Error(`Down failed at ${outcome.failedStep}: ${outcome.error} (the unit and program are left in place)`);
            process.stdout.write('took down what the agent had applied\n');
          },
  });
}
