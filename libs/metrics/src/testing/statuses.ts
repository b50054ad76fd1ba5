/**
 * Status messages as the agents send them (shapes of vm-agent's vmStatusMessage and
 * mac-agent's status message; keys and addresses from the lab's documentation prefixes), for
 * the metrics tests.
 */
import { HealthState, type MacStatus, type VmStatus } from '@wgctl/proto';

export const SAMPLED_AT_MS = 1_764_763_200_123;
const HANDSHAKE_UNIX = 1_764_763_188;

const agent = (name: 'vm-agent' | 'mac-agent', driver: string) => ({ agent: name, version: '0.1.0', protocolVersion: 'wgctl.v1', hostname: `${name}-host`, driver, pid: '4242' });

export function vmStatus(): VmStatus {
  return {
    agent: agent('vm-agent', 'nft'),
    health: { state: HealthState.HEALTH_STATE_SERVING, reasons: [], sampledAtMs: String(SAMPLED_AT_MS) },
    interface: 'wg0',
    interfaceUp: true,
    publicKey: 'VMKEYVMKEYVMKEYVMKEYVMKEYVMKEYVMKEYVMKEY0=',
    listenPort: 51820,
    peers: [
      {
        publicKey: 'PEERAPEERAPEERAPEERAPEERAPEERAPEERAPEERA0=',
        endpoint: '203.0.113.5:51820',
        allowedIps: ['0.0.0.0/0', '::/0'],
        latestHandshakeUnix: String(HANDSHAKE_UNIX),
        handshakeAgeS: '12',
        rxBytes: '1048576',
        txBytes: '204800',
        persistentKeepalive: 25,
      },
      {
        publicKey: 'PEERBPEERBPEERBPEERBPEERBPEERBPEERBPEERB0=',
        endpoint: '',
        allowedIps: ['198.51.100.0/24'],
        latestHandshakeUnix: '0',
        handshakeAgeS: '-1',
        rxBytes: '0',
        txBytes: '0',
        persistentKeepalive: 0,
      },
    ],
    ipForward: true,
    iptablesBackend: 'nft',
    checks: [
      { name: 'applied', ok: true, detail: 'journal phase up', evidence: [] },
      { name: 'interface-up', ok: true, detail: 'wg0 flags UP', evidence: [] },
      { name: 'ip-forward', ok: true, detail: 'net.ipv4.ip_forward=1', evidence: [] },
      { name: 'firewall-filter', ok: true, detail: 'WGCTL-FWD in place (forward)', evidence: [] },
      { name: 'firewall-nat', ok: true, detail: 'WGCTL-NAT in place (snat)', evidence: [] },
      { name: 'certificate', ok: true, detail: 'valid', evidence: [] },
    ],
    macSource: '192.0.2.2',
    macSource6: '',
    tunnelAddresses: ['10.64.0.2/32'],
    liveness: {
      state: 'alive',
      interface: 'wg0',
      lastReplyUnixMs: String(SAMPLED_AT_MS - 4000),
      lastProbeUnixMs: '0',
      deadSinceUnixMs: '0',
      probeTarget: '198.51.100.1',
      detail: 'alive: last reply 4 s ago',
    },
    selfHeal: { heals: 3, lastHealUnixMs: String(SAMPLED_AT_MS - 60_000), lastChanges: ['nat: WGCTL-NAT missing'], lastBy: '', lastTrigger: 'nft monitor' },
  };
}

export function macStatus(): MacStatus {
  return {
    agent: agent('mac-agent', 'darwin'),
    health: { state: HealthState.HEALTH_STATE_NOT_SERVING, reasons: ['routes: missing: 128.0.0.0/1 via 192.0.2.3'], sampledAtMs: String(SAMPLED_AT_MS) },
    uplinkInterface: 'en0',
    gateway: '192.0.2.1',
    routes: [
      { destination: '0.0.0.0/1', gateway: '192.0.2.3', interface: 'bridge100', present: true, evidence: '0/1 192.0.2.3 UGSc bridge100' },
      { destination: '128.0.0.0/1', gateway: '192.0.2.3', interface: 'bridge100', present: false, evidence: '' },
      { destination: '203.0.113.5/32', gateway: '192.0.2.1', interface: 'en0', present: true, evidence: '203.0.113.5 192.0.2.1 UGHS en0' },
    ],
    killSwitch: { loaded: true, enabled: true, referenced: false, tokenHeld: true, interface: 'en0', rules: ['block drop out quick all'] },
    dns: { servers: ['10.64.0.1'], previous: ['192.0.2.1'], managed: true },
    checks: [{ name: 'routes', ok: false, detail: 'missing: 128.0.0.0/1 via 192.0.2.3', evidence: [] }],
    up: true,
    vmAddress: '192.0.2.3',
    endpoints: [{ host: 'vpn.example.net', ip: '203.0.113.5', port: 51820 }],
    lastRoamUnixMs: '1764763100000',
    ipv6: 'block',
    vmAddress6: '',
    selfHeal: { heals: 1, lastHealUnixMs: '1764763150000', lastChanges: ['route: 128.0.0.0/1 missing'], lastBy: 'pid 77', lastTrigger: 'route monitor' },
    roams: 2,
    lastRoamTookMs: '340',
    exclude: [],
    allowLan: true,
    lanSubnets: ['192.0.2.0/24'],
    portalWindow: undefined,
  };
}
