/**
 * The tunnel as the wg-quick config defines it: Describe's answer, and what an Up applies
 * (its Outcome's endpoints and tunnel addresses). Never the private key.
 */
import type { AppliedTunnel, ResolvedEndpoint } from '@wgctl/agent-kit';
import type { WgQuickPeer } from '@wgctl/parsers';
import { loadTunnelConfig, resolveEndpoint, systemResolver, type HostResolver, type TunnelConfig } from '../../host/config';
import type { EngineScope } from './context';
import { startReadsAhead } from './read-ahead';

/** The wg-quick config as Describe shows it: never the private key. */
export interface TunnelDescription {
  interface: string;
  /** [Interface] Address CIDRs. */
  tunnelAddresses: string[];
  /** Every peer endpoint, resolved. */
  endpoints: ResolvedEndpoint[];
  peers: { publicKey: string; endpoints: ResolvedEndpoint[]; allowedIps: string[]; persistentKeepalive: number }[];
  dns: string[];
  mtu: number;
  configPath: string;
  /** Of the interface (derived from its private key). */
  publicKey: string;
}

/** A peer's endpoint, resolved; none for a peer without Endpoint. */
async function peerEndpoints(peer: WgQuickPeer, resolver: HostResolver): Promise<ResolvedEndpoint[]> {
  if (!peer.endpoint) return [];
  const { host, ip, port } = await resolveEndpoint(peer.endpoint, resolver);
  return [{ host, ip, port }];
}

/** What a Describe says of the Up that follows it (DescribeRequest.up_follows). */
export interface UpFollows {
  /** The caller's address (the Mac's, on the vnic): read-ahead.ts reads the route to it. */
  caller: string;
  /**
   * Settles once the answer is out; the reads start only then. Each spawn holds the event loop
   * ~1–2 ms (a fork of this ~65 MB process): started beside the answer, the six of them held
   * it 15–40 ms while the controller waits for it. Absent: they start at once.
   */
  answered?: Promise<unknown>;
}

/** `upFollows`: an Up from its caller follows; its first reads start (read-ahead.ts). */
export async function describe(engine: EngineScope, upFollows?: UpFollows): Promise<TunnelDescription> {
  const config = await loadTunnelConfig(engine.options.configPath);
  if (upFollows) {
    const start = (): void => startReadsAhead(engine, config, upFollows.caller);
    // Two turns more: the trailers are handed to node's http2 when the call ends, and written on
    // the next turn (measured: with one turn, the trailers still left 20 ms late).
    if (upFollows.answered) void upFollows.answered.then(() => setImmediate(() => setImmediate(start)), () => undefined);
    else start();
  }
  const resolver = engine.options.resolver ?? systemResolver;
  const peers: TunnelDescription['peers'] = [];
  for (const peer of config.parsed.peers) {
    peers.push({
      publicKey: peer.publicKey,
      endpoints: await peerEndpoints(peer, resolver),
      allowedIps: peer.allowedIps,
      persistentKeepalive: peer.persistentKeepalive,
    });
  }
  return {
    interface: config.interface,
    tunnelAddresses: config.addresses,
    endpoints: peers.flatMap((p) => p.endpoints),
    peers,
    dns: config.parsed.interface.dns,
    mtu: config.parsed.interface.mtu ?? 0,
    configPath: config.path,
    publicKey: config.publicKey ?? '',
  };
}

/** What an Up of `config` applies, for its Outcome: the endpoints the Mac pins, the tunnel addresses. */
export async function appliedBy(engine: EngineScope, config: TunnelConfig): Promise<AppliedTunnel> {
  const resolver = engine.options.resolver ?? systemResolver;
  const endpoints = await Promise.all(config.parsed.peers.map((peer) => peerEndpoints(peer, resolver)));
  return { endpoints: endpoints.flat(), tunnelAddresses: config.addresses };
}
