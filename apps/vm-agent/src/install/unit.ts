/**
 * The systemd unit of the vm-agent. Hardened, but with the holes the job needs:
 * - no ProtectKernelTunables: ip_forward (and wg-quick's src_valid_mark) are /proc/sys writes;
 * - no PrivateDevices: wireguard-go (the fallback without the kernel module) opens /dev/net/tun;
 * - no ProtectKernelModules: iptables-legacy runs modprobe for its xt_* matches;
 * - AF_NETLINK for ip/iptables-nft/wg, AF_PACKET for packet captures;
 * - ReadWritePaths /etc/wireguard and /run/wireguard (wireguard-go's control sockets);
 *   resolvconf's directories for a config with DNS= (optional paths: "-" prefix).
 * No MemoryDenyWriteExecute: V8's JIT needs W+X pages.
 *
 * The tunnel itself is brought up through `systemctl start wg-quick@IF` / systemd-run, so
 * wireguard-go never lives in this unit's cgroup and survives an agent restart.
 */
export const UNIT_NAME = 'wgctl-vm-agent.service';
export const UNIT_PATH = `/etc/systemd/system/${UNIT_NAME}`;
const STATE_DIRECTORY = 'wgctl/vm-agent';
export const DEFAULT_STATE_DIR = `/var/lib/${STATE_DIRECTORY}`;

/** Quotes one ExecStart word for systemd (which splits on whitespace and honours "…" and \ escapes). */
export function systemdQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `"${word.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\$/g, '$$$$').replace(/%/g, '%%')}"`;
}

export function renderUnit(execStart: readonly string[]): string {
  return `# Installed by \`vm-agent install\`; \`vm-agent uninstall\` removes it.
[Unit]
Description=wgctl vm-agent: WireGuard tunnel, forwarding and SNAT of the Mac's traffic
Wants=network-online.target
After=network-online.target nss-lookup.target
StartLimitIntervalSec=120
StartLimitBurst=5

[Service]
Type=exec
ExecStart=${execStart.map(systemdQuote).join(' ')}
Restart=on-failure
RestartSec=2s
TimeoutStopSec=20s
Environment=WGCTL_LOG_LEVEL=info
# glibc gives each thread that mallocs its own arena; two are plenty for an idle agent and
# keep ~4 MiB of its idle RSS off (docs/BENCHMARKS.md #7).
Environment=MALLOC_ARENA_MAX=2
StateDirectory=${STATE_DIRECTORY}
StateDirectoryMode=0700
LogsDirectory=${STATE_DIRECTORY}
LogsDirectoryMode=0700
UMask=0077

NoNewPrivileges=yes
CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE
AmbientCapabilities=
ProtectSystem=strict
ProtectHome=yes
ReadWritePaths=/etc/wireguard -/run/wireguard -/run/resolvconf -/etc/resolvconf/run
PrivateTmp=yes
ProtectControlGroups=yes
ProtectKernelLogs=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
`;
}
