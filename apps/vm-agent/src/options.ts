/**
 * The agent's options: what cli.ts parses them into and run.ts starts the agent with, and the
 * flags that reproduce them (ExecStart of the unit install writes). Types and a pure function
 * only: cli.ts loads it on the `--help` path, run.ts (gRPC, the engine) stays lazy.
 */

export interface AgentOptions {
  listen: string;
  tlsDir?: string;
  wgConfig: string;
  stateDir: string;
  logLevel: string;
  insecureLoopbackDev: boolean;
  healthIntervalMs: number;
  handshakeThresholdS: number;
  handshakeTimeoutMs: number;
  wgMethod: 'auto' | 'wg-quick' | 'systemd';
  /** While up, how often what Up applied is checked and put back (0: never; engine/self-heal.ts). */
  healCheckIntervalMs: number;
  /** Prometheus metrics over HTTPS mTLS on ADDR:PORT (off when unset; needs tlsDir). */
  metricsListen?: string;
}

/** The flags that reproduce these options (ExecStart of the unit). */
export function agentArgs(o: AgentOptions): string[] {
  const args = ['--listen', o.listen];
  if (o.tlsDir) args.push('--tls-dir', o.tlsDir);
  if (o.insecureLoopbackDev) args.push('--insecure-loopback-dev');
  args.push('--wg-config', o.wgConfig, '--state-dir', o.stateDir, '--log-level', o.logLevel);
  args.push('--health-interval', String(o.healthIntervalMs), '--handshake-threshold', String(o.handshakeThresholdS));
  args.push('--handshake-timeout', String(o.handshakeTimeoutMs), '--wg-method', o.wgMethod);
  args.push('--heal-check-interval', String(o.healCheckIntervalMs));
  if (o.metricsListen) args.push('--metrics-listen', o.metricsListen);
  return args;
}
