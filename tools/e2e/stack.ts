/**
 * The whole product in the namespace lab, set up the way a user sets it up — shared by the
 * demo (tools/lab/src/demo.ts) and the end-to-end tests (tools/e2e/*.netns.test.ts):
 *
 *   1. `wgctl init` on the Mac (here: in the Mac's namespace), with the lab's addresses;
 *   2. the VM's certificate and key copied into the VM's TLS directory, as init's next steps say;
 *   3. the built agents (dist/apps/*\/*.js) started with their real flags and mTLS;
 *   4. every later `wgctl …` run in the Mac's namespace against the config init wrote.
 *
 * Nothing here talks to an agent directly: everything goes through `wgctl`, like a user.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ExecRunner, type RunResult, type Runner } from '@wgctl/runner';
import {
  createLab,
  destroyLab,
  labExec,
  startMacAgent,
  startVmAgent,
  stopAgent,
  type AgentName,
  type AgentProcess,
  type Lab,
} from '../lab/src';
import { liveProcess, readProcessSpecs } from '../lab/src/processes';

/** The repository: found upwards from this file, which also runs bundled under dist/tools/. */
export const REPO_ROOT = findRepoRoot(__dirname);

function findRepoRoot(from: string): string {
  for (let dir = from; dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'apps'))) return dir;
  }
  throw new Error(`cannot find the repository root above ${from}`);
}
/** The VM agent's port (wgctl's default, so the config needs no --vm-port). */
/** The namespace suites run as root, and always in CI (where a skip would hide a failure). */
export function netnsTestsEnabled(): boolean {
  return process.getuid?.() === 0 || process.env.CI === 'true';
}

export const VM_AGENT_PORT = 7443;

export function bundlePath(app: 'wgctl' | AgentName): string {
  return join(REPO_ROOT, 'dist', 'apps', app, `${app}.js`);
}

/** Fails early, with the fix, when the bundles were not built. */
export function assertBuilt(): void {
  const missing = (['wgctl', 'vm-agent', 'mac-agent'] as const).map(bundlePath).filter((p) => !existsSync(p));
  if (missing.length > 0) throw new Error(`not built: ${missing.join(', ')} (run npm run build)`);
}

export interface StackOptions {
  /** Extra flags for each agent (appended to the lab's defaults). */
  vmAgentArgs?: string[];
  macAgentArgs?: string[];
  /** Extra `wgctl init` flags (appended to the lab's addresses), e.g. --vm-address6 and --ipv6. */
  initArgs?: string[];
  runner?: Runner;
}

export interface Stack {
  readonly lab: Lab;
  /** The controller's directory: config.json and tls/ (also the mac-agent's TLS dir, as on a Mac). */
  readonly configDir: string;
  readonly configFile: string;
  readonly tlsDir: string;
  /** The VM's /etc/wgctl/tls. */
  readonly vmTlsDir: string;
  /** The mac-agent's unix socket (the default kind of address). */
  readonly macAgentSocket: string;
  readonly vmAgentListen: string;
  /** argv of `wgctl init` with the lab's addresses. */
  initArgs(): string[];
  /** `wgctl ARGS` in the Mac's namespace with WGCTL_CONFIG set; never throws on a non-zero exit. */
  wgctl(args: string[], options?: { timeoutMs?: number }): Promise<RunResult>;
  /** Copies ca.crt, vm-agent.crt and vm-agent.key into the VM's TLS dir; returns the commands run. */
  installVmCertificates(): Promise<string[][]>;
  startAgent(name: AgentName): Promise<AgentProcess>;
  startAgents(): Promise<AgentProcess[]>;
  stopAgent(name: AgentName): Promise<void>;
  agentPid(name: AgentName): number | null;
  destroy(): Promise<void>;
}

/** Describes the stack for a lab that is up; does nothing yet. */
export function stackFor(lab: Lab, options: StackOptions = {}): Stack {
  const runner = options.runner ?? new ExecRunner();
  const configDir = join(lab.paths.dir, 'wgctl');
  const tlsDir = join(configDir, 'tls');
  const vmTlsDir = join(lab.paths.dir, 'vm', 'tls');
  const macAgentSocket = join(lab.paths.dir, 'run', 'mac-agent.sock');
  const vmAgentListen = `${lab.vm.eth.ipv4}:${VM_AGENT_PORT}`;
  const configFile = join(configDir, 'config.json');

  const stack: Stack = {
    lab,
    configDir,
    configFile,
    tlsDir,
    vmTlsDir,
    macAgentSocket,
    vmAgentListen,
    initArgs: () => ['init', '--dir', configDir, '--vm-address', lab.vm.eth.ipv4, '--mac-agent', `unix:${macAgentSocket}`, '--dns', lab.srv.dns, ...(options.initArgs ?? [])],
    wgctl: (args, opts = {}) =>
      labExec(lab, 'mac', [process.execPath, bundlePath('wgctl'), ...args], {
        runner,
        env: { WGCTL_CONFIG: configFile, NO_COLOR: '1' },
        allowFailure: true,
        timeoutMs: opts.timeoutMs ?? 120_000,
      }),
    async installVmCertificates() {
      const commands = [
        ['install', '-d', '-m', '0700', vmTlsDir],
        ['install', '-m', '0644', join(tlsDir, 'ca.crt'), join(tlsDir, 'vm-agent.crt'), `${vmTlsDir}/`],
        ['install', '-m', '0600', join(tlsDir, 'vm-agent.key'), `${vmTlsDir}/`],
      ];
      for (const argv of commands) await runner.run(argv);
      return commands;
    },
    startAgent(name) {
      if (name === 'vm-agent') {
        return startVmAgent(lab, { bundle: bundlePath('vm-agent'), tlsDir: vmTlsDir, listen: vmAgentListen, args: options.vmAgentArgs, runner });
      }
      mkdirSync(join(lab.paths.dir, 'run'), { recursive: true, mode: 0o755 });
      return startMacAgent(lab, { bundle: bundlePath('mac-agent'), tlsDir, listen: `unix:${macAgentSocket}`, args: options.macAgentArgs, runner });
    },
    startAgents: () => Promise.all([stack.startAgent('vm-agent'), stack.startAgent('mac-agent')]),
    async stopAgent(name) {
      await stopAgent(lab, name);
    },
    agentPid(name) {
      const spec = readProcessSpecs(lab.paths.pids).find((s) => s.name === name);
      return spec ? liveProcess(spec) : null;
    },
    async destroy() {
      await destroyLab(lab.prefix, { dir: lab.paths.dir, runner });
      removeStackFiles(lab.paths.dir);
    },
  };
  return stack;
}

/** The stack's own files in the lab directory (the lab removes only its own). */
function removeStackFiles(dir: string): void {
  for (const sub of ['wgctl', 'run']) rmSync(join(dir, sub), { recursive: true, force: true });
}

/** Lab up, `wgctl init`, certificates to the VM, both agents running. Removes everything on failure. */
export async function createStack(prefix: string, options: StackOptions = {}): Promise<Stack> {
  assertBuilt();
  const lab = await createLab({ prefix, runner: options.runner });
  const stack = stackFor(lab, options);
  try {
    removeStackFiles(lab.paths.dir);
    const init = await stack.wgctl(stack.initArgs());
    if (init.exitCode !== 0) throw new Error(`wgctl init failed (exit ${init.exitCode}): ${init.stderr || init.stdout}`);
    await stack.installVmCertificates();
    await stack.startAgents();
    return stack;
  } catch (error) {
    await stack.destroy().catch(() => undefined);
    throw error;
  }
}

/** `wgctl …` output for an assertion message. */
export function describeRun(r: RunResult): string {
  return `$ wgctl ${r.argv.slice(r.argv.indexOf(bundlePath('wgctl')) + 1).join(' ')} (exit ${r.exitCode})\n${r.stdout}${r.stderr ? `\n[stderr]\n${r.stderr}` : ''}`;
}

/** Throws with the whole output unless `wgctl` exited with `code`. */
export function expectExit(r: RunResult, code: number): RunResult {
  if (r.exitCode !== code) throw new Error(`expected exit code ${code}, got ${r.exitCode}\n${describeRun(r)}`);
  return r;
}
