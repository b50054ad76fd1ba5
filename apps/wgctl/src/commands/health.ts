/**
 * `wgctl health`: grpc.health.v1 Check, for cron/launchd/monitoring. Uses the monitor
 * certificate when the config's TLS directory has one (a monitoring host gets only
 * ca.crt + monitor.*), else the controller's. Exit 0 SERVING, 1 not serving, 2 unreachable.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { healthCheck, type HealthStatus } from '@wgctl/transport';
import type { Side } from '../agents';
import type { CommandContext } from '../command-context';
import { EXIT } from '../errors';
import { loadClientTls, loadControllerConfig, timeoutMs, vmTarget, writeJson } from './context';

const HEALTH_DEFAULT_TIMEOUT_S = 10;

export interface HealthFlags {
  agent: 'vm' | 'mac' | 'both';
  service: string;
  cert?: 'monitor' | 'controller';
}

interface Probe {
  agent: Side;
  target: string;
  status: HealthStatus | 'UNREACHABLE';
  error?: string;
}

export async function healthCommand(ctx: CommandContext, flags: HealthFlags): Promise<number> {
  const { config } = loadControllerConfig(ctx);
  const role = flags.cert ?? (existsSync(join(config.tlsDir, 'monitor.key')) ? 'monitor' : 'controller');
  const tls = loadClientTls(config, role);
  const sides: Side[] = flags.agent === 'both' ? ['vm', 'mac'] : [flags.agent];
  const targets: Record<Side, { target: string; serverName: string }> = {
    vm: { target: vmTarget(config), serverName: config.vm.tlsServerName ?? 'vm-agent' },
    mac: { target: config.mac.agent, serverName: 'mac-agent' },
  };
  const probes: Probe[] = await Promise.all(
    sides.map(async (agent): Promise<Probe> => {
      const { target, serverName } = targets[agent];
      try {
        const status = await healthCheck(target, { tls, serverName, timeoutMs: timeoutMs(ctx, HEALTH_DEFAULT_TIMEOUT_S) }, flags.service);
        return { agent, target, status };
      } catch (error) {
        const e = error as { details?: string; message?: string };
        return { agent, target, status: 'UNREACHABLE', error: e.details || e.message || String(error) };
      }
    }),
  );
  const exitCode = probes.some((p) => p.status === 'UNREACHABLE')
    ? EXIT.usage
    : probes.every((p) => p.status === 'SERVING')
      ? EXIT.ok
      : EXIT.failed;
  if (ctx.global.json) {
    writeJson(ctx, { command: 'health', service: flags.service, certificate: role, exitCode, agents: probes });
  } else {
    for (const p of probes) {
      const line = `${p.agent === 'vm' ? 'vm-agent ' : 'mac-agent'} ${p.target}: ${p.status}${p.error ? ` (${p.error})` : ''}\n`;
      (p.status === 'SERVING' ? ctx.io.stdout : ctx.io.stderr).write(line);
    }
  }
  return exitCode;
}
