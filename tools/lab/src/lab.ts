/**
 * The namespace lab: create it, use it, roam the Mac, tear it down (also after a crash).
 * Every command goes through a @wgctl/runner Runner (argv only).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { ExecRunner, type RunOptions, type RunResult, type Runner } from '@wgctl/runner';
import {
  accessPortLines,
  inNamespace,
  macUplinkLines,
  planLab,
  resolvConfs,
  vmWireGuardConfig,
  WIREGUARD_GO_ENV,
  type Binaries,
  type LabCommand,
  type LabPhase,
  type ProcessSpec,
} from './plan';
import { findProcesses, isAlive, liveProcess, processSpecPath, readCmdline, readProcessSpecs, resolveBinary, sleep, terminate, waitUntil } from './processes';
import { DNS_QUERY_JS, HTTP_GET_JS, PORTAL_SERVER_JS, WEB_SERVER_JS } from './scripts';
import {
  CAFE_NAMES,
  DEFAULT_PREFIX,
  LabError,
  defaultLabDir,
  labTopology,
  resolveNamespace,
  validatePrefix,
  type CafeName,
  type Lab,
} from './topology';

/** Where each live lab's directory is recorded, so `down --prefix P` finds a custom --dir. */
export const REGISTRY_DIR = '/run/wgctl-lab';
const WIREGUARD_SOCKET_DIR = '/run/wireguard';
const ETC_NETNS = '/etc/netns';

export interface CreateLabOptions {
  prefix?: string;
  dir?: string;
  runner?: Runner;
  /** Progress lines (phase names and durations). */
  log?: (line: string) => void;
  /** Aborting stops creation between commands; what was built is then removed. */
  signal?: AbortSignal;
}

export function binaries(): Binaries {
  return { ip: resolveBinary('ip'), node: process.execPath, startStopDaemon: resolveBinary('start-stop-daemon') };
}

function registryPath(prefix: string): string {
  return `${REGISTRY_DIR}/${prefix}.json`;
}

/** The lab directory recorded for a prefix, else the default one. */
export function labDirFor(prefix: string): string {
  try {
    return (JSON.parse(readFileSync(registryPath(prefix), 'utf8')) as { dir: string }).dir;
  } catch {
    return defaultLabDir(prefix);
  }
}

export function writeLabJson(lab: Lab): void {
  const tmp = `${lab.paths.labJson}.tmp`;
  writeFileSync(tmp, JSON.stringify(lab, null, 2) + '\n');
  renameSync(tmp, lab.paths.labJson);
}

/** Reads `<dir>/lab.json`; `dirOrPrefix` is a directory (contains '/') or a prefix. */
export function readLab(dirOrPrefix: string = DEFAULT_PREFIX): Lab {
  const dir = dirOrPrefix.includes('/') ? dirOrPrefix : labDirFor(dirOrPrefix);
  const file = `${dir}/lab.json`;
  if (!existsSync(file)) throw new LabError(`no lab description at ${file}: is the lab up? (tools/lab/run.mjs up)`);
  return JSON.parse(readFileSync(file, 'utf8')) as Lab;
}

async function generateKeyPair(runner: Runner): Promise<{ privateKey: string; publicKey: string }> {
  const privateKey = (await runner.run(['wg', 'genkey'])).stdout.trim();
  const publicKey = (await runner.run(['wg', 'pubkey'], { input: `${privateKey}\n` })).stdout.trim();
  return { privateKey, publicKey };
}

function writePrivate(path: string, content: string): void {
  writeFileSync(path, content, { mode: 0o600 });
  chmodSync(path, 0o600); // the mode option does not apply to an existing file
}

/** Runs one planned command: records its process spec, waits for its ready file. */
export async function runCommand(runner: Runner, command: LabCommand, signal?: AbortSignal): Promise<RunResult> {
  signal?.throwIfAborted();
  if (command.process) {
    rmSync(command.process.pidFile, { force: true });
    writeFileSync(processSpecPath(dirname(command.process.pidFile), command.process.name), JSON.stringify(command.process, null, 2) + '\n');
  }
  if (command.waitForFile) rmSync(command.waitForFile, { force: true });
  const result = await runner.run(command.argv, { input: command.input, env: command.env, timeoutMs: 15_000 });
  if (command.waitForFile && !result.dryRun) {
    const file = command.waitForFile;
    const hint = command.process ? ` (see ${command.process.logFile})` : '';
    await waitUntil(`${file}${hint}`, () => existsSync(file), 5_000);
  }
  return result;
}

/** Runs the phase's sequences in parallel; waits for all of them before reporting a failure. */
async function runPhase(runner: Runner, phase: LabPhase, signal?: AbortSignal): Promise<void> {
  const outcomes = await Promise.allSettled(
    phase.sequences.map(async (sequence) => {
      for (const command of sequence) await runCommand(runner, command, signal);
    }),
  );
  const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (failed) throw failed.reason;
}

function prepareDirectory(lab: Lab): void {
  const { dir } = lab.paths;
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  // Only the lab's own sub-paths are cleared: `dir` may be a directory the user chose.
  for (const sub of ['logs', 'pids', 'bin', 'vm', 'srv', 'web', 'state']) rmSync(`${dir}/${sub}`, { recursive: true, force: true });
  rmSync(lab.paths.labJson, { force: true });
  for (const sub of ['logs', 'pids', 'bin', 'web']) mkdirSync(`${dir}/${sub}`, { mode: 0o755 });
  for (const sub of ['vm', 'srv']) mkdirSync(`${dir}/${sub}`, { mode: 0o700 }); // keys live there
  writeFileSync(`${lab.paths.bin}/web-server.js`, WEB_SERVER_JS);
  writeFileSync(`${lab.paths.bin}/http-get.js`, HTTP_GET_JS);
  writeFileSync(`${lab.paths.bin}/dns-query.js`, DNS_QUERY_JS);
  writeFileSync(`${lab.paths.bin}/portal-server.js`, PORTAL_SERVER_JS);
  mkdirSync(REGISTRY_DIR, { recursive: true });
  writeFileSync(registryPath(lab.prefix), JSON.stringify({ dir }) + '\n');
}

function writeResolvConfs(lab: Lab): void {
  const confs = resolvConfs(lab);
  for (const [role, path] of Object.entries(lab.paths.resolvConf) as [keyof typeof confs, string][]) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, confs[role]);
  }
}

/**
 * Builds the lab. Leftovers of an earlier run with the same prefix are removed first; if
 * anything fails, everything created so far is removed again before the error is thrown.
 */
export async function createLab(options: CreateLabOptions = {}): Promise<Lab> {
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  validatePrefix(prefix);
  const dir = resolve(options.dir ?? defaultLabDir(prefix));
  const runner = options.runner ?? new ExecRunner();
  const log = options.log ?? (() => undefined);
  const timings: Record<string, number> = {};
  const started = Date.now();
  const timed = async <T>(name: string, fn: () => Promise<T> | T): Promise<T> => {
    const t = Date.now();
    const result = await fn();
    timings[name] = Date.now() - t;
    log(`${name}: ${timings[name]} ms`);
    return result;
  };

  await timed('cleanup', () => destroyLab(prefix, { dir, runner }));
  try {
    options.signal?.throwIfAborted();
    const [server, vm] = await timed('keys', () => Promise.all([generateKeyPair(runner), generateKeyPair(runner)]));
    const lab = labTopology(prefix, dir, { serverPublicKey: server.publicKey, vmPublicKey: vm.publicKey });
    const bins = binaries();
    await timed('files', () => {
      prepareDirectory(lab);
      writePrivate(lab.srv.wireguard.privateKeyPath, `${server.privateKey}\n`);
      writePrivate(lab.vm.wireguard.configPath, vmWireGuardConfig(lab, vm.privateKey));
      writeResolvConfs(lab);
    });
    for (const phase of planLab(lab, bins)) await timed(phase.name, () => runPhase(runner, phase, options.signal));
    timings.total = Date.now() - started;
    lab.timings = timings;
    writeLabJson(lab);
    log(`lab ${prefix} up in ${timings.total} ms`);
    return lab;
  } catch (error) {
    await destroyLab(prefix, { dir, runner }).catch(() => undefined);
    const message = error instanceof Error ? error.message : String(error);
    throw new LabError(`creating lab '${prefix}' failed (everything it created was removed): ${message}`);
  }
}

export interface DestroyReport {
  namespaces: string[];
  /** Pids signalled (found in the lab's namespaces, via its pid files, or orphaned). */
  pids: number[];
  sockets: string[];
  etcNetns: string[];
}

export async function labNamespaces(prefix: string, runner: Runner): Promise<string[]> {
  const out = (await runner.run(['ip', 'netns', 'list'], { readOnly: true })).stdout;
  return out
    .split('\n')
    .map((line) => line.trim().split(/\s+/)[0])
    .filter((name): name is string => !!name && name.startsWith(`${prefix}-`));
}

function netnsId(pid: number | 'self'): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return null;
  }
}

/**
 * Removes everything of the lab with this prefix that exists on the system: processes in its
 * namespaces, processes from its pid files, orphaned ones (a namespace deleted under a running
 * wireguard-go), the namespaces, stale wireguard-go sockets and /etc/netns entries.
 * Idempotent; safe to run when nothing (or only part) of the lab exists.
 */
export async function destroyLab(prefix: string = DEFAULT_PREFIX, options: { dir?: string; runner?: Runner } = {}): Promise<DestroyReport> {
  validatePrefix(prefix);
  const runner = options.runner ?? new ExecRunner();
  const dirs = [...new Set([options.dir, labDirFor(prefix), defaultLabDir(prefix)].filter((d): d is string => !!d).map((d) => resolve(d)))];
  const namespaces = await labNamespaces(prefix, runner);

  const pids = new Set<number>();
  for (const ns of namespaces) {
    const out = (await runner.run(['ip', 'netns', 'pids', ns], { readOnly: true, allowFailure: true })).stdout;
    for (const token of out.split(/\s+/)) if (/^\d+$/.test(token)) pids.add(Number(token));
  }
  const specs = dirs.flatMap((d) => readProcessSpecs(`${d}/pids`));
  for (const spec of specs) {
    const pid = liveProcess(spec);
    if (pid !== null) pids.add(pid);
  }
  // Orphans: outside the root namespace, but no longer in a named lab namespace.
  const ownNetns = netnsId('self');
  const isOurs = (argv: string[]) =>
    (basename(argv[0]) === 'wireguard-go' && (argv[argv.length - 1] ?? '').startsWith(`${prefix}-`)) ||
    argv.some((arg) => dirs.some((d) => arg.includes(`${d}/`)));
  for (const pid of findProcesses(isOurs)) {
    if (netnsId(pid) !== ownNetns) pids.add(pid);
  }
  pids.delete(process.pid);
  const signalled = [...pids].filter(isAlive);
  await terminate(signalled);

  for (const ns of namespaces) await runner.run(['ip', 'netns', 'del', ns], { allowFailure: true });
  const remaining = await labNamespaces(prefix, runner);
  if (remaining.length) throw new LabError(`could not delete namespaces: ${remaining.join(', ')}`);

  const sockets = existsSync(WIREGUARD_SOCKET_DIR)
    ? readdirSync(WIREGUARD_SOCKET_DIR)
        .filter((f) => f.startsWith(`${prefix}-`) && f.endsWith('.sock'))
        .map((f) => `${WIREGUARD_SOCKET_DIR}/${f}`)
    : [];
  sockets.forEach((s) => rmSync(s, { force: true }));
  const etcNetns = existsSync(ETC_NETNS)
    ? readdirSync(ETC_NETNS)
        .filter((f) => f.startsWith(`${prefix}-`))
        .map((f) => `${ETC_NETNS}/${f}`)
    : [];
  etcNetns.forEach((d) => rmSync(d, { recursive: true, force: true }));

  for (const d of dirs) {
    for (const spec of readProcessSpecs(`${d}/pids`)) {
      rmSync(spec.pidFile, { force: true });
      rmSync(processSpecPath(`${d}/pids`, spec.name), { force: true });
    }
    // Keys, configs and scripts go; the logs stay, for post-mortems.
    for (const sub of ['vm', 'srv', 'web', 'bin', 'state', 'lab.json']) rmSync(`${d}/${sub}`, { recursive: true, force: true });
  }
  rmSync(registryPath(prefix), { force: true });
  return { namespaces, pids: signalled, sockets, etcNetns };
}

/** Runs argv inside one of the lab's namespaces ('mac', 'vm', … or the full name). */
export function labExec(lab: Lab, ns: string, argv: string[], options: RunOptions & { runner?: Runner } = {}): Promise<RunResult> {
  const { runner = new ExecRunner(), ...runOptions } = options;
  return runner.run(inNamespace(resolveNamespace(lab, ns), argv), runOptions);
}

/** Which cafe the Mac's access port is plugged into right now (asks the kernel, not lab.json). */
export async function currentCafe(lab: Lab, runner: Runner = new ExecRunner()): Promise<CafeName | null> {
  for (const cafe of CAFE_NAMES) {
    const r = await runner.run(['ip', '-n', lab.cafes[cafe].ns, 'link', 'show', 'dev', lab.mac.accessPort], { readOnly: true, allowFailure: true });
    if (r.exitCode === 0) return cafe;
  }
  return null;
}

/**
 * Moves the Mac to another coffee shop, like Wi-Fi joining another network: the uplink keeps
 * its name but loses carrier, its global addresses and routes; then it gets the new LAN's
 * address and default gateway (v4 and v6). `offlineMs` keeps it unplugged for a while.
 * The Mac's resolv.conf follows the new LAN only if it still holds the old LAN's resolver
 * (a DHCP client would; a DNS setting someone else made is left alone).
 */
export async function roam(lab: Lab, to: CafeName, options: { runner?: Runner; offlineMs?: number } = {}): Promise<Lab> {
  const runner = options.runner ?? new ExecRunner();
  const from = await currentCafe(lab, runner);
  if (from === null) throw new LabError(`the Mac's access port ${lab.mac.accessPort} is in no cafe namespace: is lab '${lab.prefix}' up?`);
  if (from !== to) {
    await runner.run(['ip', '-n', lab.cafes[from].ns, 'link', 'set', lab.mac.accessPort, 'netns', lab.cafes[to].ns]);
    await runner.run(['ip', '-n', lab.mac.ns, 'addr', 'flush', 'dev', lab.mac.uplink, 'scope', 'global']);
    if (options.offlineMs) await sleep(options.offlineMs);
    await runner.run(['ip', '-n', lab.cafes[to].ns, '-batch', '-'], { input: accessPortLines(lab, to).join('\n') + '\n' });
  }
  await runner.run(['ip', '-n', lab.mac.ns, '-batch', '-'], { input: macUplinkLines(lab, to).join('\n') + '\n' });

  const resolvPath = lab.paths.resolvConf.mac;
  const before = resolvConfs(lab).mac;
  lab.state.macCafe = to;
  if (existsSync(resolvPath) && readFileSync(resolvPath, 'utf8') === before) {
    writeFileSync(resolvPath, resolvConfs(lab).mac); // in place: it is bind-mounted into running processes
  }
  if (existsSync(dirname(lab.paths.labJson))) writeLabJson(lab);
  return lab;
}

export type HttpGetResult = { ok: true; status: number; body: string; location?: string } | { ok: false; error: string };

/**
 * HTTP GET (or `method`) from inside a namespace (node's http module; names resolve via that
 * namespace's resolv.conf). Redirects are not followed: `location` says where one points.
 */
export async function labHttpGet(lab: Lab, ns: string, url: string, options: { timeoutMs?: number; runner?: Runner; method?: 'GET' | 'POST' } = {}): Promise<HttpGetResult> {
  const timeoutMs = options.timeoutMs ?? 3000;
  const r = await labExec(lab, ns, [process.execPath, `${lab.paths.bin}/http-get.js`, url, String(timeoutMs), options.method ?? 'GET'], {
    runner: options.runner,
    allowFailure: true,
    timeoutMs: timeoutMs + 5000,
  });
  if (r.exitCode !== 0) return { ok: false, error: (r.stderr || r.stdout).trim() || `exit code ${r.exitCode}` };
  const parsed = JSON.parse(r.stdout) as { status: number; body: string; location?: string };
  return { ok: true, status: parsed.status, body: parsed.body, ...(parsed.location ? { location: parsed.location } : {}) };
}

export type DnsQueryResult = { ok: true; addresses: string[] } | { ok: false; error: string };

/** Asks `server` directly from inside a namespace (bypasses resolv.conf). */
export async function labDnsQuery(
  lab: Lab,
  ns: string,
  server: string,
  name: string,
  options: { type?: 'A' | 'AAAA'; timeoutMs?: number; runner?: Runner } = {},
): Promise<DnsQueryResult> {
  const timeoutMs = options.timeoutMs ?? 1000;
  const r = await labExec(lab, ns, [process.execPath, `${lab.paths.bin}/dns-query.js`, server, name, options.type ?? 'A', String(timeoutMs)], {
    runner: options.runner,
    allowFailure: true,
    timeoutMs: timeoutMs + 5000,
  });
  if (r.exitCode !== 0) return { ok: false, error: (r.stderr || r.stdout).trim() || `exit code ${r.exitCode}` };
  return { ok: true, addresses: JSON.parse(r.stdout) as string[] };
}

/** wg-quick on the VM's lab config, the way the vm-agent will run it (userspace WireGuard). */
export function wgQuick(lab: Lab, action: 'up' | 'down', runner: Runner = new ExecRunner()): Promise<RunResult> {
  return labExec(lab, 'vm', ['wg-quick', action, lab.vm.wireguard.configPath], { runner, env: WIREGUARD_GO_ENV, timeoutMs: 20_000 });
}

/** Waits until the VM's interface reports a handshake with the server; returns its Unix time. */
export async function waitForHandshake(lab: Lab, options: { timeoutMs?: number; runner?: Runner; interface?: string } = {}): Promise<number> {
  const runner = options.runner ?? new ExecRunner();
  const iface = options.interface ?? lab.vm.wireguard.interface;
  let latest = 0;
  await waitUntil(
    `a WireGuard handshake on ${iface}`,
    async () => {
      const r = await labExec(lab, 'vm', ['wg', 'show', iface, 'latest-handshakes'], { runner, readOnly: true, allowFailure: true });
      latest = Math.max(0, ...r.stdout.split('\n').map((l) => Number(l.split('\t')[1] ?? 0)));
      return latest > 0;
    },
    options.timeoutMs ?? 5000,
    50,
  );
  return latest;
}

export interface LabStatus {
  prefix: string;
  namespaces: string[];
  processes: { name: string; ns: string; pid: number | null; logFile: string }[];
  wireguardGo: { pid: number; interface: string }[];
  macCafe: CafeName | null;
}

export async function labStatus(prefix: string = DEFAULT_PREFIX, runner: Runner = new ExecRunner()): Promise<LabStatus> {
  validatePrefix(prefix);
  const dir = labDirFor(prefix);
  const namespaces = await labNamespaces(prefix, runner);
  const processes = readProcessSpecs(`${dir}/pids`).map((spec: ProcessSpec) => ({ name: spec.name, ns: spec.ns, pid: liveProcess(spec), logFile: spec.logFile }));
  const wireguardGo = findProcesses((argv) => basename(argv[0]) === 'wireguard-go' && (argv[argv.length - 1] ?? '').startsWith(`${prefix}-`))
    .filter(isAlive)
    .map((pid) => ({ pid, interface: (readCmdline(pid) ?? []).slice(-1)[0] ?? '' }));
  let macCafe: CafeName | null = null;
  if (existsSync(`${dir}/lab.json`)) macCafe = await currentCafe(readLab(dir), runner);
  return { prefix, namespaces, processes, wireguardGo, macCafe };
}
