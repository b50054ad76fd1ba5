/**
 * Up's await-handshake: polls `wg show latest-handshakes` until a peer with an endpoint has a
 * fresh handshake, pokes peers without a keepalive so that wireguard sends at all, and when
 * none comes in time says why (no route, nothing sent, or no answer).
 */
import type { OperationContext } from '@wgctl/agent-kit';
import { wgHandshakeAgeSeconds, type WgDumpInterface } from '@wgctl/parsers';
import type { Runner } from '@wgctl/runner';
import type { TunnelConfig } from '../../host/config';
import { linkState, routeGet, uapiLatestHandshakes, upArgv, wgFwmark, wgLatestHandshakes, wgShowDump, wgTransfer } from '../../host/wireguard';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, handshakeThresholdS, interfaceMethod, type EngineScope, type UpRequest } from './context';

/** Keepalive set temporarily on a peer without one, to make it initiate the handshake now. */
const HANDSHAKE_POKE_KEEPALIVE_S = 25;
/** Time kept back from the caller's deadline for the rollback and the final answer. */
const DEADLINE_RESERVE_MS = 3_000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** How long the wait may last: the request's, the agent's or the default timeout, within the caller's deadline. */
export function handshakeBudget(engine: EngineScope, request: UpRequest, ctx: OperationContext): number {
  let budget = request.handshakeTimeoutMs || engine.options.handshakeTimeoutMs || DEFAULT_HANDSHAKE_TIMEOUT_MS;
  if (ctx.deadlineMs !== undefined) budget = Math.min(budget, ctx.deadlineMs - engine.now() - DEADLINE_RESERVE_MS);
  return Math.max(budget, 0);
}

/**
 * The peers' latest handshakes: from wireguard-go's control socket when it serves the interface
 * and the engine knows where those are (wgSocketDir), else `wg show IF latest-handshakes`.
 */
export async function latestHandshakes(engine: EngineScope, runner: Runner, ifname: string): Promise<{ handshakes: Map<string, number>; fromSocket: boolean }> {
  const dir = engine.options.wgSocketDir;
  const fromSocket = dir ? await uapiLatestHandshakes(dir, ifname) : undefined;
  if (fromSocket) return { handshakes: fromSocket, fromSocket: true };
  return { handshakes: await wgLatestHandshakes(runner, ifname), fromSocket: false };
}

/**
 * `checkpoint` throws when the Up must end (agent stopping, caller gone): a wait, not a change,
 * ends at once. `reads`: how many reads it took (1: the handshake was there at once).
 */
export async function waitForHandshake(
  engine: EngineScope,
  runner: Runner,
  config: TunnelConfig,
  timeoutMs: number,
  checkpoint: () => void,
  /** A read already started (the Up's, once its changes are in): the first, when it came from the socket. */
  firstRead?: ReturnType<typeof latestHandshakes>,
): Promise<{ message: string; reads: number }> {
  const ifname = config.interface;
  const peers = config.parsed.peers.filter((p) => p.endpoint);
  const started = engine.now();
  const threshold = handshakeThresholdS(engine);
  const poked: string[] = [];
  let reads = 0;
  try {
    for (;;) {
      reads++;
      // The read already started, when it came from the socket; a `wg show` one is handed over
      // by the runner itself (early reads), so the step still lists the command.
      const early = reads === 1 && firstRead ? await firstRead.catch(() => undefined) : undefined;
      const read = early?.fromSocket ? Promise.resolve(early) : latestHandshakes(engine, runner, ifname);
      const { handshakes, fromSocket } = await read.catch(async (e: unknown) => {
        const link = await linkState(runner, ifname).catch(() => null);
        if (link && !link.exists) throw new Error(`${ifname} does not exist after ${upArgv(interfaceMethod(engine, config), config.path, ifname).join(' ')}`);
        throw e;
      });
      const fresh = peers.find((p) => {
        const age = wgHandshakeAgeSeconds(handshakes.get(p.publicKey) ?? 0, engine.now());
        return age >= 0 && age <= threshold;
      });
      if (fresh) {
        const how = fromSocket ? "; read from wireguard-go's control socket" : '';
        return { message: `handshake with ${fresh.endpoint!.host}:${fresh.endpoint!.port} (${engine.now() - started} ms${how})`, reads };
      }
      if (poked.length === 0) {
        // Without a keepalive nothing makes wireguard send: ask for one until the handshake.
        for (const p of peers.filter((x) => x.persistentKeepalive === 0)) {
          await runner.run(['wg', 'set', ifname, 'peer', p.publicKey, 'persistent-keepalive', String(HANDSHAKE_POKE_KEEPALIVE_S)]);
          poked.push(p.publicKey);
        }
        if (poked.length === 0) poked.push(''); // nothing to poke; don't try again
      }
      if (engine.now() - started >= timeoutMs) {
        throw new Error(`no handshake within ${timeoutMs} ms: ${await diagnoseNoHandshake(runner, config)}`);
      }
      checkpoint();
      await sleep(engine.options.pollIntervalMs ?? 200);
    }
  } finally {
    for (const key of poked.filter((k) => k !== '')) {
      await runner.run(['wg', 'set', ifname, 'peer', key, 'persistent-keepalive', 'off'], { allowFailure: true });
    }
  }
}

/** Why no handshake: no route to the endpoint, nothing sent, or sent without an answer. */
async function diagnoseNoHandshake(runner: Runner, config: TunnelConfig): Promise<string> {
  const ifname = config.interface;
  const reasons: string[] = [];
  let dump: WgDumpInterface;
  try {
    dump = await wgShowDump(runner, ifname);
  } catch (e) {
    return `cannot read ${ifname}: ${(e as Error).message}`;
  }
  const transfer = await wgTransfer(runner, ifname).catch(() => new Map<string, { rxBytes: string; txBytes: string }>());
  const mark = await wgFwmark(runner, ifname).catch(() => 0);
  for (const peer of config.parsed.peers.filter((p) => p.endpoint)) {
    const live = dump.peers.find((p) => p.publicKey === peer.publicKey);
    const endpoint = live?.endpoint;
    const shown = live?.endpointText ?? `${peer.endpoint!.host}:${peer.endpoint!.port}`;
    if (!endpoint) {
      reasons.push(`peer ${peer.publicKey} has no usable endpoint (${shown}; does the host name resolve?)`);
      continue;
    }
    const route = await routeGet(runner, endpoint.host, { mark });
    const counters = transfer.get(peer.publicKey) ?? { rxBytes: '0', txBytes: '0' };
    if ('unreachable' in route) {
      reasons.push(`no route to endpoint ${shown}: ${route.unreachable}`);
    } else if (counters.txBytes === '0') {
      reasons.push(`nothing was sent to endpoint ${shown} (route via ${route.dev})`);
    } else if (counters.rxBytes === '0') {
      reasons.push(
        `no reply from endpoint ${shown}: sent ${counters.txBytes} bytes via ${route.dev}, received 0 — the server is down, ` +
          `UDP to port ${endpoint.port} is blocked on the way, or the server does not know this VM's public key ${config.publicKey ?? '(none)'}`,
      );
    } else {
      reasons.push(`endpoint ${shown} answered (${counters.rxBytes} bytes) but no handshake completed: check PublicKey/PresharedKey on both sides`);
    }
  }
  return reasons.join('; ') || 'no peer with an endpoint';
}
