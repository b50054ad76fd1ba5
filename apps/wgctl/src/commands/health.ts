/**
 * `wgctl health`: grpc.health.v1 Check, for cron/launchd/monitoring, with grpc_health_probe's
 * exit codes (health-exit.ts). Uses the monitor certificate when the config's TLS directory has
 * one (a monitoring host gets only ca.crt + monitor.*), else the controller's.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { probeHealth, type HealthProbeResult, type HealthStatus } from '@wgctl/transport';
import type { Side } from '../agents';
import type { CommandContext } from '../command-context';
import { CliError, errorMessage } from '../errors';
import { HEALTH_EXIT } from '../health-exit';
import { loadClientTls, loadControllerConfig, timeoutMs, vmTarget, writeJson } from './context';

const HEALTH_DEFAULT_TIMEOUT_S = 10;

export interface HealthFlags {
  agent: 'vm' | 'mac' | 'both';
  service: string;
  cert?: 'monitor' | 'controller';
  /** Seconds; default: the RPC deadline (--timeout, else 10). */
  connectTimeout?: number;
}

interface Probe {
  agent: Side;
  target: string;
  status: HealthStatus | 'UNREACHABLE' | 'RPC_FAILED';
  exitCode: number;
  /** The gRPC status of a failed Check (RPC_FAILED). */
  grpcCode?: string;
  error?: string;
}

/** Per agent: how far the probe got, as grpc_health_probe's exit code. */
function probeOf(agent: Side, target: string, result: HealthProbeResult): Probe {
  switch (result.outcome) {
    case 'answered':
      return { agent, target, status: result.status, exitCode: result.status === 'SERVING' ? HEALTH_EXIT.serving : HEALTH_EXIT.notServing };
    case 'connect-failed':
      return { agent, target, status: 'UNREACHABLE', exitCode: HEALTH_EXIT.connectionFailure, error: result.error };
    case 'rpc-failed':
      return { agent, target, status: 'RPC_FAILED', exitCode: HEALTH_EXIT.rpcFailure, grpcCode: result.code, error: result.error };
  }
}

/**
 * Both agents: 0 when both are; else the lowest non-zero code (the agent that got least far),
 * so every code keeps its meaning for the pair: 4 = both answered, 3 = both connected.
 */
export function combinedHealthExit(codes: number[]): number {
  const failed = codes.filter((c) => c !== HEALTH_EXIT.serving);
  return failed.length === 0 ? HEALTH_EXIT.serving : Math.min(...failed);
}

/** Config and TLS files that cannot be loaded are invalid arguments (exit 1), as in grpc_health_probe. */
function invalidArguments(error: unknown): never {
  throw new CliError(errorMessage(error), HEALTH_EXIT.invalidArguments);
}

function asInvalidArguments<T>(load: () => T): T {
  try {
    return load();
  } catch (error) {
    invalidArguments(error);
  }
}

export async function healthCommand(ctx: CommandContext, flags: HealthFlags): Promise<number> {
  const { config } = asInvalidArguments(() => loadControllerConfig(ctx));
  const role = flags.cert ?? (existsSync(join(config.tlsDir, 'monitor.key')) ? 'monitor' : 'controller');
  const tls = asInvalidArguments(() => loadClientTls(config, role));
  const sides: Side[] = flags.agent === 'both' ? ['vm', 'mac'] : [flags.agent];
  const targets: Record<Side, { target: string; serverName: string }> = {
    vm: { target: vmTarget(config), serverName: config.vm.tlsServerName ?? 'vm-agent' },
    mac: { target: config.mac.agent, serverName: 'mac-agent' },
  };
  const rpcTimeoutMs = timeoutMs(ctx, HEALTH_DEFAULT_TIMEOUT_S);
  const connectTimeoutMs = flags.connectTimeout !== undefined ? Math.round(flags.connectTimeout * 1000) : rpcTimeoutMs;
  const probes = await Promise.all(
    sides.map(async (agent) => {
      const { target, serverName } = targets[agent];
      const options = { tls, serverName, connectTimeoutMs, rpcTimeoutMs };
      // probeHealth throws only when it cannot build a channel (unusable TLS material).
      const result = await probeHealth(target, options, flags.service).catch(invalidArguments);
      return probeOf(agent, target, result);
    }),
  );
  const exitCode = combinedHealthExit(probes.map((p) => p.exitCode));
  if (ctx.global.json) writeJson(ctx, { command: 'health', service: flags.service, certificate: role, exitCode, agents: probes });
  else writeProbeLines(ctx, probes);
  return exitCode;
}

function writeProbeLines(ctx: CommandContext, probes: Probe[]): void {
  for (const p of probes) {
    const what = p.grpcCode ? `${p.status} ${p.grpcCode}` : p.status;
    const line = `${p.agent === 'vm' ? 'vm-agent ' : 'mac-agent'} ${p.target}: ${what}${p.error ? ` (${p.error})` : ''}\n`;
    (p.exitCode === HEALTH_EXIT.serving ? ctx.io.stdout : ctx.io.stderr).write(line);
  }
}
