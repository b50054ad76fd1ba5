/** `wgctl status` for people: the two agents side by side, then the verdict. */
import { freshestHandshake, portalSentence, type MacSideJson, type StatusReport, type Unreachable, type VmSideJson } from '../status-model';
import { columns, formatAge, formatBytes } from './text';

const NA = '-';

type Row = [label: string, vm: string, mac: string];

function agentCell(side: VmSideJson | MacSideJson): string {
  const a = side.agent;
  return a ? `${a.name} ${a.version}${a.driver ? ` (${a.driver})` : ''} on ${a.hostname}` : 'unknown agent';
}

function healthCell(side: VmSideJson | MacSideJson): string {
  return side.health.reasons.length ? `${side.health.state}: ${side.health.reasons.join('; ')}` : side.health.state;
}

/** What comes back through the tunnel: alive (last reply age), probing, or dead since when. */
function livenessCell(vm: VmSideJson): string {
  const l = vm.liveness;
  if (!l || !vm.interfaceUp) return NA;
  const lastReply = l.lastReplyAgeSeconds === null ? 'no reply seen yet' : `last reply ${formatAge(l.lastReplyAgeSeconds)}`;
  switch (l.state) {
    case 'alive':
      return `alive (${lastReply})`;
    case 'probing':
      return `probing ${l.probeTarget ?? ''} (${lastReply})`;
    case 'dead':
      return `DEAD since ${l.deadSince ?? '?'} (${lastReply})`;
    default:
      return `unknown (${lastReply})`;
  }
}

/** How many things of ours were put back while up, and the last one. */
function selfHealCell(side: VmSideJson | MacSideJson): string {
  const h = side.selfHeal;
  if (!h) return NA;
  if (h.heals === 0) return 'nothing put back';
  const by = h.lastBy ? ` by ${h.lastBy}` : '';
  return `${h.heals} put back; last ${h.lastHeal ?? '?'}: ${h.lastChanges.join('; ') || '?'}${by}`;
}

function vmRows(vm: VmSideJson): Omit<Record<string, string>, never> {
  const age = freshestHandshake(vm);
  const rx = vm.peers.reduce((n, p) => n + p.rxBytes, 0);
  const tx = vm.peers.reduce((n, p) => n + p.txBytes, 0);
  return {
    agent: agentCell(vm),
    health: healthCell(vm),
    tunnel: `${vm.interface || '?'} ${vm.interfaceUp ? 'up' : 'DOWN'}${vm.tunnelAddresses.length ? ` ${vm.tunnelAddresses.join(', ')}` : ''}`,
    handshake: !vm.interfaceUp ? NA : age === null ? 'never' : formatAge(age),
    liveness: livenessCell(vm),
    selfHeal: selfHealCell(vm),
    transfer: vm.peers.length ? `rx ${formatBytes(rx)} / tx ${formatBytes(tx)}` : NA,
    endpoint: vm.peers.map((p) => p.endpoint ?? '(none)').join(', ') || NA,
    routes: `ip_forward ${vm.ipForward ? 'on' : 'OFF'}${vm.macSource ? `, SNAT ${vm.macSource}` : ''}`,
    ipv6: vm.macSource6 ? `forwarded, NAT66 ${vm.macSource6}` : NA,
    killSwitch: NA,
    lan: NA,
    dns: NA,
    gateway: NA,
    uplink: NA,
  };
}

/** `allowed (192.0.2.0/25)`; `blocked` (the kill switch's default). */
export function lanCell(lan: MacSideJson['lan']): string {
  if (!lan.allowed) return 'blocked';
  return `allowed (${lan.subnets.join(', ') || 'no private subnet on the uplink'})`;
}

/** An open sign-in window, loudly: the Mac's web traffic is not protected meanwhile. */
export function portalWindowNote(w: MacSideJson['portalWindow']): string {
  if (!w) return '';
  return `; SIGN-IN WINDOW OPEN ${w.secondsLeft} s more: web (TCP ${w.tcpPorts.join('/')}) and DNS to ${w.resolvers.join(', ') || 'no resolver'} UNPROTECTED`;
}

function macRows(mac: MacSideJson): Record<string, string> {
  const ks = mac.killSwitch;
  return {
    agent: agentCell(mac),
    health: healthCell(mac),
    tunnel: `${mac.up ? 'up' : 'DOWN'}${mac.vmAddress ? ` via ${mac.vmAddress}` : ''}`,
    handshake: NA,
    liveness: NA,
    selfHeal: selfHealCell(mac),
    transfer: NA,
    endpoint: mac.endpoints.map((e) => `${e.ip || e.host}:${e.port}`).join(', ') || NA,
    routes: mac.routes.map((r) => `${r.destination}${r.present ? '' : ' MISSING'}`).join(', ') || NA,
    ipv6: mac.ipv6 === 'route' ? `routed via ${mac.vmAddress6 ?? '?'}` : mac.ipv6 === 'block' ? 'blocked' : NA,
    killSwitch: ks.loaded
      ? `${ks.enabled ? 'on' : 'loaded, NOT enabled'}${ks.interface ? ` (${ks.interface})` : ''}${portalWindowNote(mac.portalWindow)}`
      : 'OFF',
    lan: lanCell(mac.lan),
    excluded: mac.excluded.map((x) => `${x.destination}${x.present ? '' : ' MISSING'}`).join(', ') || 'none',
    dns: mac.dns.servers.length ? `${mac.dns.servers.join(', ')}${mac.dns.managed ? '' : ' (not managed)'}` : NA,
    gateway: mac.uplink.gateway ?? NA,
    uplink: mac.uplink.interface ?? NA,
  };
}

const LABELS: [key: string, label: string][] = [
  ['agent', 'Agent'],
  ['health', 'Health'],
  ['tunnel', 'Tunnel'],
  ['handshake', 'Handshake'],
  ['liveness', 'Liveness'],
  ['selfHeal', 'Self-heal'],
  ['transfer', 'Transfer'],
  ['endpoint', 'Endpoint'],
  ['routes', 'Routes'],
  ['ipv6', 'IPv6'],
  ['killSwitch', 'Kill switch'],
  ['lan', 'LAN'],
  ['excluded', 'Excluded'],
  ['dns', 'DNS'],
  ['gateway', 'Gateway'],
  ['uplink', 'Uplink'],
];

function unreachableRows(side: Unreachable): Record<string, string> {
  const cells: Record<string, string> = Object.fromEntries(LABELS.map(([k]) => [k, NA]));
  cells.agent = 'UNREACHABLE';
  cells.health = side.error;
  return cells;
}

export function renderStatusTable(report: StatusReport): string {
  const vm = report.vm.reachable ? vmRows(report.vm) : unreachableRows(report.vm);
  const mac = report.mac.reachable ? macRows(report.mac) : unreachableRows(report.mac);
  const rows: Row[] = [
    ['', `VM (${report.vm.target})`, `Mac (${report.mac.target})`],
    ...LABELS.map(([key, label]): Row => [label, vm[key] ?? NA, mac[key] ?? NA]),
  ];
  const failing = [
    ...(report.vm.reachable ? report.vm.checks.filter((c) => !c.ok).map((c) => `VM ${c.name}`) : []),
    ...(report.mac.reachable ? report.mac.checks.filter((c) => !c.ok).map((c) => `Mac ${c.name}`) : []),
  ];
  const lines = columns(rows, 3);
  lines.push('');
  if (report.controller) lines.push(`Controller certificate: ${report.controller.certificate.detail}`);
  if (report.portal) {
    const at = report.portal.location ? `, sign in at ${report.portal.location}` : '';
    lines.push(`Portal: ${portalSentence(report.portal)}: run \`wgctl portal\`${at}`);
  }
  lines.push(`Overall: ${report.overall.toUpperCase()}${failing.length ? ` (failing checks: ${failing.join(', ')})` : ''}`);
  for (const p of report.problems) lines.push(`  - ${p}`);
  return `${lines.join('\n')}\n`;
}
