/**
 * The agent's options: what cli.ts parses them into and run.ts starts (or installs) the agent
 * with, and the argv that reproduces them (the service definition install writes). Types and a
 * pure function only: cli.ts loads it on the `--help` path, run.ts (gRPC, drivers) stays lazy.
 */

export type DriverChoice = 'darwin' | 'linux';

export interface AgentOptions {
  driver: DriverChoice;
  listen: string;
  tlsDir?: string;
  stateDir: string;
  logLevel: string;
  dnsResolvConf: string;
  dnsMode: 'resolv-conf' | 'resolvectl';
  socketGroup?: string;
  /** Background health sampling period, ms (default: the sampler's, 15 s). */
  healthIntervalMs?: number;
  /** While up, the default route is re-read this often, ms, 0 = never (default: the engine's, 5 s). */
  roamCheckIntervalMs?: number;
  /** While up, the kill switch is looked at this often, ms, 0 = never (default: the driver's, see heal.ts). */
  healCheckIntervalMs?: number;
  /** Prometheus metrics over HTTPS mTLS on ADDR:PORT (off when unset; needs tlsDir). */
  metricsListen?: string;
}

/** The argv that reproduces these options (for the service definition written by install). */
export function agentArgs(options: AgentOptions): string[] {
  const args = ['--driver', options.driver, '--listen', options.listen, '--state-dir', options.stateDir, '--log-level', options.logLevel];
  if (options.tlsDir) args.push('--tls-dir', options.tlsDir);
  if (options.driver === 'linux') {
    args.push('--dns-mode', options.dnsMode);
    if (options.dnsMode === 'resolv-conf') args.push('--dns-resolv-conf', options.dnsResolvConf);
  }
  if (options.socketGroup) args.push('--socket-group', options.socketGroup);
  if (options.healthIntervalMs !== undefined) args.push('--health-interval', String(options.healthIntervalMs));
  if (options.roamCheckIntervalMs !== undefined) args.push('--roam-check-interval', String(options.roamCheckIntervalMs));
  if (options.healCheckIntervalMs !== undefined) args.push('--heal-check-interval', String(options.healCheckIntervalMs));
  if (options.metricsListen) args.push('--metrics-listen', options.metricsListen);
  return args;
}
