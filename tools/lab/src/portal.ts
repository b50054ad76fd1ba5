/**
 * A captive portal on a café router, like most café Wi-Fi: until a client signs in, the router
 * forwards nothing from it. It still answers DNS itself (the café's dnsmasq, on the router) and
 * serves HTTP on its LAN address, and it redirects the client's HTTP to ANY address to that
 * portal (DNAT tcp/80), which answers every request (a connectivity probe too) with a 302 to
 * its login page. POST /login adds the client's address to an nft set the forward chain lets
 * through (./scripts PORTAL_SERVER_JS). Real portals key on the MAC address; the lab keys on
 * the IP, which is the same here (one client address per LAN).
 *
 * Addresses: the café's own (documentation prefixes). stop() removes the table and the server.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { ExecRunner, type Runner } from '@wgctl/runner';
import { binaries, runCommand } from './lab';
import { detachedCommand, inNamespace, type ProcessSpec } from './plan';
import { liveProcess, processSpecPath, terminate } from './processes';
import { HTTP_PORT, type CafeName, type Lab } from './topology';

/** The nft table (family inet) holding the portal's redirect, filter and signed-in sets. */
export const PORTAL_TABLE = 'captive_portal';

export interface CaptivePortal {
  cafe: CafeName;
  /** Where the portal redirects everything: `http://<router's LAN address>/login`. */
  loginUrl: string;
  /** One parsed JSON line per request the portal served. */
  requests(): { remote: string; method: string; url: string; host?: string }[];
  /** The addresses signed in so far (read from the router's nft sets). */
  signedIn(): Promise<string[]>;
  stop(): Promise<void>;
}

export interface CaptivePortalOptions {
  /** The café whose router holds the portal (default: the one the Mac is in). */
  cafe?: CafeName;
  runner?: Runner;
}

/**
 * The router's rules. Forwarded traffic from the LAN is dropped unless its source is signed in;
 * DNS to the router and HTTP to the portal are the router's own input, so they still work.
 * Pure.
 */
export function captivePortalRules(lab: Lab, cafe: CafeName): string {
  const { lan } = lab.cafes[cafe];
  return `table inet ${PORTAL_TABLE} {
  set signed_in4 { type ipv4_addr; }
  set signed_in6 { type ipv6_addr; }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    # the client's web traffic, to any address, lands on the portal until it signs in
    ip saddr ${lan.subnet4} ip saddr != @signed_in4 ip daddr != ${lan.ipv4} tcp dport ${HTTP_PORT} dnat ip to ${lan.ipv4}:${HTTP_PORT}
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    ip saddr ${lan.subnet4} ip saddr != @signed_in4 counter drop
    ip6 saddr ${lan.subnet6} ip6 saddr != @signed_in6 counter drop
  }
}
`;
}

async function readSignedIn(lab: Lab, cafe: CafeName, runner: Runner): Promise<string[]> {
  const out = (await runner.run(inNamespace(lab.cafes[cafe].ns, ['nft', '-j', 'list', 'table', 'inet', PORTAL_TABLE]), { readOnly: true })).stdout;
  const items = (JSON.parse(out) as { nftables: { set?: { elem?: unknown[] } }[] }).nftables;
  return items.flatMap((i) => (i.set?.elem ?? []).map(String));
}

/** The portal's server: a lab process (pid file, log), so destroyLab and `lab status` know it. */
function portalServer(lab: Lab, cafe: CafeName): { spec: ProcessSpec; readyFile: string } {
  const name = `${cafe}-portal`;
  const readyFile = `${lab.paths.dir}/web/${name}.ready`;
  const spec: ProcessSpec = {
    name,
    ns: lab.cafes[cafe].ns,
    pidFile: `${lab.paths.pids}/${name}.pid`,
    logFile: `${lab.paths.logs}/${name}.log`,
    argv: [process.execPath, `${lab.paths.bin}/portal-server.js`, lab.cafes[cafe].lan.ipv4, String(HTTP_PORT), PORTAL_TABLE, readyFile],
  };
  return { spec, readyFile };
}

/** Removes the café's portal (server and rules), whoever started it; nothing to do is fine. */
export async function stopCaptivePortal(lab: Lab, cafe: CafeName, runner: Runner = new ExecRunner()): Promise<void> {
  const { spec, readyFile } = portalServer(lab, cafe);
  const pid = liveProcess(spec);
  if (pid !== null) await terminate([pid], 1_000);
  for (const file of [spec.pidFile, processSpecPath(lab.paths.pids, spec.name), readyFile]) rmSync(file, { force: true });
  await runner.run(inNamespace(spec.ns, ['nft', 'delete', 'table', 'inet', PORTAL_TABLE]), { allowFailure: true });
}

/** Puts a captive portal on the café's router (the rules first, then the portal's server). */
export async function startCaptivePortal(lab: Lab, options: CaptivePortalOptions = {}): Promise<CaptivePortal> {
  const runner = options.runner ?? new ExecRunner();
  const cafe = options.cafe ?? lab.state.macCafe;
  const { spec, readyFile } = portalServer(lab, cafe);
  await stopCaptivePortal(lab, cafe, runner);
  const logStart = existsSync(spec.logFile) ? readFileSync(spec.logFile, 'utf8').length : 0;
  try {
    await runner.run(inNamespace(spec.ns, ['nft', '-f', '-']), { input: captivePortalRules(lab, cafe) });
    await runCommand(runner, { ...detachedCommand(binaries(), spec), waitForFile: readyFile });
  } catch (error) {
    await stopCaptivePortal(lab, cafe, runner);
    throw error;
  }
  // The log outlives a run (post-mortems): requests() reads only what this start logged.
  const logText = () => (existsSync(spec.logFile) ? readFileSync(spec.logFile, 'utf8') : '');
  const logLines = () => logText().slice(logStart).split('\n');
  return {
    cafe,
    loginUrl: `http://${lab.cafes[cafe].lan.ipv4}/login`,
    requests: () => logLines().flatMap((l) => (l.startsWith('{') ? [JSON.parse(l)] : [])),
    signedIn: () => readSignedIn(lab, cafe, runner),
    stop: () => stopCaptivePortal(lab, cafe, runner),
  };
}

/** Runs `fn` while the café holds a captive portal (removed however fn ends). */
export async function withCaptivePortal<T>(lab: Lab, fn: (portal: CaptivePortal) => Promise<T>, options: CaptivePortalOptions = {}): Promise<T> {
  const portal = await startCaptivePortal(lab, options);
  try {
    return await fn(portal);
  } finally {
    await portal.stop();
  }
}
