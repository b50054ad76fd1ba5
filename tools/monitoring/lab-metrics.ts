/**
 * The agents' metrics in the namespace lab: where they listen (the ports the docs suggest:
 * prometheus_wireguard_exporter's 9586 for the VM, 9587 for the Mac), the flags that turn them
 * on, and a scrape with a client certificate made from inside the Mac's namespace (the agents'
 * addresses are reachable only there).
 */
import { join } from 'node:path';
import { ExecRunner, type Runner } from '@wgctl/runner';
import { REPO_ROOT } from '../e2e/stack';
import { labExec, type AgentName, type Lab } from '../lab/src';

export const METRICS_PORTS: Readonly<Record<AgentName, number>> = { 'vm-agent': 9586, 'mac-agent': 9587 };

/** From the repository root: this module also runs bundled (the demo, under dist/tools/lab). */
const SCRAPER = join(REPO_ROOT, 'tools', 'monitoring', 'scrape-in-namespace.cjs');

/** The vm-agent on the VM's vnic address (the Mac reaches it there), the mac-agent on the Mac's loopback. */
export function metricsListen(lab: Pick<Lab, 'vm'>, agent: AgentName): string {
  return agent === 'vm-agent' ? `${lab.vm.eth.ipv4}:${METRICS_PORTS[agent]}` : `127.0.0.1:${METRICS_PORTS[agent]}`;
}

/** StackOptions' extra agent flags that serve metrics (for createStack / stackFor). */
export function metricsAgentArgs(lab: Pick<Lab, 'vm'>): { vmAgentArgs: string[]; macAgentArgs: string[] } {
  return { vmAgentArgs: ['--metrics-listen', metricsListen(lab, 'vm-agent')], macAgentArgs: ['--metrics-listen', metricsListen(lab, 'mac-agent')] };
}

export interface LabScrape {
  status: number;
  contentType: string;
  body: string;
}

/**
 * GET https://<agent's metrics>/metrics from the Mac's namespace, verifying the agent's
 * certificate name (its role) against tlsDir/ca.crt, with the client certificate <role>.crt/.key
 * of `clientTlsDir` (default tlsDir). Throws with the error when the connection or TLS fails.
 */
export async function scrapeAgentInLab(lab: Lab, agent: AgentName, tlsDir: string, options: { role?: string; clientTlsDir?: string; runner?: Runner } = {}): Promise<LabScrape> {
  const client = options.clientTlsDir ?? tlsDir;
  const role = options.role ?? 'monitor';
  const argv = [process.execPath, SCRAPER, metricsListen(lab, agent), agent, join(tlsDir, 'ca.crt'), join(client, `${role}.crt`), join(client, `${role}.key`)];
  const r = await labExec(lab, 'mac', argv, { runner: options.runner ?? new ExecRunner(), allowFailure: true, timeoutMs: 10_000 });
  if (r.exitCode !== 0) throw new Error(r.stderr.trim() || `scrape exited ${r.exitCode}`);
  return JSON.parse(r.stdout) as LabScrape;
}
