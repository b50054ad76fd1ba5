/**
 * Runs the built agents inside the lab the way a user runs them: `node <bundle> <flags>` as
 * root in the VM's / the Mac's namespace, detached, output in `<dir>/logs/<name>.log`, a pid
 * file in `<dir>/pids` (so destroyLab ends them too).
 *
 * Default flags keep each lab's agents apart from the host and from other labs: the journal
 * goes to `<dir>/state/<agent>` (not /var/lib/wgctl), the mac-agent manages the Mac
 * namespace's own resolv.conf file (/etc/netns/<p>-mac/resolv.conf, which `ip netns exec`
 * bind-mounts over /etc/resolv.conf), the vm-agent uses the lab's wg-quick config.
 *   mac-agent: --driver linux --listen L --tls-dir T --state-dir S --dns-resolv-conf R
 *   vm-agent:  --listen L --tls-dir T --wg-config <dir>/vm/<p>-wg0.conf --state-dir S
 * (the mac-agent's flags are its CLI's; the vm-agent's follow the same convention). Pass
 * `flags` to replace them or `args` to add more.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { ExecRunner, type Runner } from '@wgctl/runner';
import { binaries } from './lab';
import { detachedCommand, inNamespace, WIREGUARD_GO_ENV, type ProcessSpec } from './plan';
import { isAlive, liveProcess, processSpecPath, readProcessSpecs, terminate, waitUntil } from './processes';
import { LabError, type Lab } from './topology';

export type AgentName = 'vm-agent' | 'mac-agent';

export interface AgentStartOptions {
  /** The built single-file agent, e.g. dist/apps/vm-agent/vm-agent.js. */
  bundle: string;
  /** Directory written by `wgctl init` (ca.crt, <role>.crt, <role>.key). */
  tlsDir: string;
  /** `host:port`, `[v6]:port` or `unix:/path`. */
  listen: string;
  /** Replace the default flags entirely. */
  flags?: string[];
  /** Appended to the flags. */
  args?: string[];
  env?: Record<string, string>;
  runner?: Runner;
  /** How long to wait for the agent to listen (default 10 s). */
  readyTimeoutMs?: number;
}

export interface AgentProcess extends ProcessSpec {
  pid: number;
}

/** Suggested listen addresses: the vm-agent on the VM's vnic address, the mac-agent on loopback. */
export function defaultAgentListen(lab: Lab, name: AgentName, port = name === 'vm-agent' ? 7443 : 7444): string {
  return name === 'vm-agent' ? `${lab.vm.eth.ipv4}:${port}` : `127.0.0.1:${port}`;
}

function listenPort(listen: string): number | null {
  if (listen.startsWith('unix:')) return null;
  const port = Number(listen.slice(listen.lastIndexOf(':') + 1));
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new LabError(`cannot read a port from listen address '${listen}'`);
  return port;
}

function unixSocketAccepts(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function logTail(path: string, lines = 15): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

async function startAgent(lab: Lab, name: AgentName, ns: string, defaultFlags: string[], options: AgentStartOptions): Promise<AgentProcess> {
  const runner = options.runner ?? new ExecRunner();
  if (!existsSync(options.bundle)) throw new LabError(`${name} bundle not found: ${options.bundle} (run npm run build)`);
  const existing = readProcessSpecs(lab.paths.pids).find((s) => s.name === name);
  if (existing && liveProcess(existing) !== null) throw new LabError(`${name} already runs in lab '${lab.prefix}' (pid ${liveProcess(existing)}): stop it first`);

  const bins = binaries();
  const spec: ProcessSpec = {
    name,
    ns,
    pidFile: `${lab.paths.pids}/${name}.pid`,
    logFile: `${lab.paths.logs}/${name}.log`,
    argv: [bins.node, options.bundle, ...(options.flags ?? defaultFlags), ...(options.args ?? [])],
  };
  const command = detachedCommand(bins, spec, { ...options.env });
  writeFileSync(processSpecPath(lab.paths.pids, name), JSON.stringify(spec, null, 2) + '\n');
  writeFileSync(spec.logFile, '', { flag: 'a' });
  await runner.run(command.argv, { env: command.env });

  const port = listenPort(options.listen);
  const timeoutMs = options.readyTimeoutMs ?? 10_000;
  let pid: number | null = null;
  try {
    await waitUntil(
      `${name} to listen on ${options.listen}`,
      async () => {
        pid = liveProcess(spec);
        // start-stop-daemon writes the pid file before exec: give node a moment before calling it dead.
        if (pid === null && existsSync(spec.pidFile)) {
          const recorded = Number(readFileSync(spec.pidFile, 'utf8'));
          if (!isAlive(recorded)) throw new LabError(`${name} exited at start-up`);
          return false;
        }
        if (pid === null) return false;
        // A socket file left by a killed agent exists before the new one listens: connect to it.
        if (port === null) return unixSocketAccepts(options.listen.slice('unix:'.length));
        const r = await runner.run(inNamespace(ns, ['ss', '-H', '-l', '-t', '-n', 'sport', '=', `:${port}`]), { readOnly: true, allowFailure: true });
        return r.stdout.trim() !== '';
      },
      timeoutMs,
      50,
    );
  } catch (error) {
    await stopAgent(lab, name);
    const message = error instanceof Error ? error.message : String(error);
    throw new LabError(`${name} did not start: ${message}\n--- ${spec.logFile} (tail) ---\n${logTail(spec.logFile)}`);
  }
  return { ...spec, pid: pid! };
}

/** The agent's journal directory inside the lab (cleared with the lab). */
export function agentStateDir(lab: Lab, name: AgentName): string {
  const dir = `${lab.paths.dir}/state/${name}`;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** vm-agent in the VM namespace; wg-quick there uses wireguard-go (no kernel module). */
export function startVmAgent(lab: Lab, options: AgentStartOptions): Promise<AgentProcess> {
  const flags = ['--listen', options.listen, '--tls-dir', options.tlsDir, '--wg-config', lab.vm.wireguard.configPath, '--state-dir', agentStateDir(lab, 'vm-agent')];
  return startAgent(lab, 'vm-agent', lab.vm.ns, flags, { ...options, env: { ...WIREGUARD_GO_ENV, ...options.env } });
}

/** mac-agent with its linux driver in the Mac namespace, managing that namespace's resolv.conf. */
export function startMacAgent(lab: Lab, options: AgentStartOptions): Promise<AgentProcess> {
  const resolvConf = lab.paths.resolvConf.mac;
  // Without this file `ip netns exec` would not bind-mount it, and /etc/resolv.conf would be the host's.
  if (!existsSync(resolvConf)) throw new LabError(`${resolvConf} is missing: is lab '${lab.prefix}' up?`);
  const flags = ['--driver', 'linux', '--listen', options.listen, '--tls-dir', options.tlsDir, '--state-dir', agentStateDir(lab, 'mac-agent'), '--dns-resolv-conf', resolvConf];
  return startAgent(lab, 'mac-agent', lab.mac.ns, flags, options);
}

/** Stops an agent started by this module (SIGTERM, then SIGKILL after `graceMs`). No-op if not running. */
export async function stopAgent(lab: Lab, name: AgentName, graceMs = 5000): Promise<boolean> {
  const spec = readProcessSpecs(lab.paths.pids).find((s) => s.name === name);
  const pid = spec ? liveProcess(spec) : null;
  if (pid !== null) await terminate([pid], graceMs);
  return pid !== null;
}

export function agentLogPath(lab: Lab, name: AgentName): string {
  return `${lab.paths.logs}/${name}.log`;
}
