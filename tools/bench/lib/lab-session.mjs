/**
 * A lab for the lab benchmarks (#1 up, #2 status, #6 roaming, #7 idle): network namespaces
 * from tools/lab under the prefix `wgb` (BENCH_LAB_PREFIX), `wgctl init` in the Mac namespace,
 * both agents started from the built bundles as the lab starts them. Needs root.
 */
import { existsSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { BENCH_DIR, ROOT, bundleTs, runProcess } from './common.mjs';

export const LAB_PREFIX = process.env.BENCH_LAB_PREFIX ?? 'wgb';
/** BENCH_DIST: another build's apps directory (…/<app>/<app>.js), to measure a candidate fix. */
const APPS_DIR = process.env.BENCH_DIST ?? join(ROOT, 'dist/apps');
/** The three bundles of the build in `appsDir`. */
export function bundlesIn(appsDir) {
  return {
    wgctl: join(appsDir, 'wgctl/wgctl.js'),
    vmAgent: join(appsDir, 'vm-agent/vm-agent.js'),
    macAgent: join(appsDir, 'mac-agent/mac-agent.js'),
  };
}
export const BUNDLES = bundlesIn(APPS_DIR);
/** BENCH_AGENT_NODE_OPTIONS: NODE_OPTIONS for both agents (e.g. --max-semi-space-size=1). */
// MALLOC_ARENA_MAX=2: as the agents' systemd units set it (apps/vm-agent/src/install/unit.ts,
// apps/mac-agent/src/install/systemd.ts), so the idle RSS measured is the installed agents'.
const AGENT_ENV = {
  MALLOC_ARENA_MAX: '2',
  ...(process.env.BENCH_AGENT_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_AGENT_NODE_OPTIONS } : {}),
};
const VM_AGENT_PORT = 7443;
const MAC_AGENT_LISTEN = '127.0.0.1:7444';

/** Why the lab benchmarks cannot run here, or null. */
export function labUnavailable(bundles = BUNDLES) {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  const missing = Object.entries(bundles).filter(([, path]) => !existsSync(path));
  if (missing.length) return `bundles missing (${missing.map(([, p]) => p).join(', ')}): run \`npm run build\``;
  for (const tool of ['ip', 'nft', 'iptables', 'wg', 'wg-quick', 'wireguard-go', 'ping']) {
    const found = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'].some((d) => existsSync(join(d, tool)));
    if (!found) return `${tool} is not installed`;
  }
  return null;
}

let apiPromise;
/** The lab's TypeScript API (tools/lab/src), bundled on first use. */
export function labApi() {
  apiPromise ??= bundleTs('lib/lab-api.ts', 'lab-api').then((file) => createRequire(import.meta.url)(file));
  return apiPromise;
}

/** Runs `argv` in a lab namespace (ip netns exec); throws with output on failure. */
export async function inNs(ns, argv, options = {}) {
  const result = await runProcess(['ip', 'netns', 'exec', ns, ...argv], options);
  if (result.code !== 0 && !options.allowFailure) {
    throw new Error(`ip netns exec ${ns} ${argv.join(' ')} exited ${result.code}:\n${(result.stdout + result.stderr).slice(-3000)}`);
  }
  return result;
}

/**
 * Creates the lab, the wgctl config + PKI, and starts both agents. Returns a session with
 * `wgctl(args)` (runs the CLI in the Mac namespace), the environment for the shell scripts,
 * and `close()` (destroys the lab: processes, namespaces). `prefix` and `bundles` (bundlesIn):
 * another lab and build than BENCH_LAB_PREFIX's and BENCH_DIST's (ab.mjs runs two side by side).
 */
export async function openLab(log = console.error, { prefix = LAB_PREFIX, bundles = BUNDLES } = {}) {
  const reason = labUnavailable(bundles);
  if (reason) throw new Error(reason);
  const api = await labApi();
  const lab = await api.createLab({ prefix });
  const close = async () => {
    await api.destroyLab(prefix).catch((e) => log(`  destroyLab: ${e.message}`));
  };
  try {
    const wgctlDir = join(lab.paths.dir, 'wgctl');
    const config = join(wgctlDir, 'config.json');
    const tlsDir = join(wgctlDir, 'tls');
    const vmListen = `${lab.vm.eth.ipv4}:${VM_AGENT_PORT}`;
    rmSync(wgctlDir, { recursive: true, force: true }); // the lab keeps its directory between runs
    const wgctl = (args, options = {}) =>
      inNs(lab.ns.mac, [process.execPath, bundles.wgctl, '--config', config, ...args], options);
    await inNs(lab.ns.mac, [
      process.execPath,
      bundles.wgctl,
      'init',
      '--dir',
      wgctlDir,
      '--vm-address',
      lab.vm.eth.ipv4,
      '--vm-port',
      String(VM_AGENT_PORT),
      '--mac-agent',
      MAC_AGENT_LISTEN,
      '--dns',
      lab.srv.dns,
    ]);
    const vmAgent = await api.startVmAgent(lab, { bundle: bundles.vmAgent, tlsDir, listen: vmListen, env: AGENT_ENV });
    const macAgent = await api.startMacAgent(lab, { bundle: bundles.macAgent, tlsDir, listen: MAC_AGENT_LISTEN, env: AGENT_ENV });
    const env = {
      ...process.env,
      MAC_NS: lab.ns.mac,
      VM_NS: lab.ns.vm,
      WG_CONF: lab.vm.wireguard.configPath,
      WG_IF: lab.vm.wireguard.interface,
      VM_ETH: lab.vm.eth.interface,
      VM_IP: lab.vm.eth.ipv4,
      MAC_VNIC: lab.mac.vnic.interface,
      VM_SOURCE: lab.mac.vnic.ipv4,
      TUNNEL_IP: lab.vm.wireguard.address,
      UPLINK: lab.mac.uplink,
      GATEWAY: lab.cafes[lab.state.macCafe].client.gateway4,
      SERVER: lab.srv.wan.ipv4,
      PORT: String(lab.srv.wireguard.listenPort),
      // Answers only through the tunnel: the server's tunnel address (its resolver).
      PING_TARGET: lab.srv.dns,
      WGCTL_CONFIG: config,
      WGCTL_BUNDLE: bundles.wgctl,
    };
    return { api, lab, config, tlsDir, vmAgent, macAgent, env, wgctl, close, scripts: { manual: join(BENCH_DIR, 'manual-up.sh'), wgctlUp: join(BENCH_DIR, 'wgctl-up.sh') } };
  } catch (error) {
    await close();
    throw error;
  }
}
