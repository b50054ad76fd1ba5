#!/usr/bin/env bash
# Baseline of `wgctl status` (tools/bench/status.mjs): what a user looks at by hand to see
# the same facts — the VM's tunnel (wg show dump), forwarding and SNAT, the Mac's routes,
# kill switch and DNS — one root shell per machine. Runs as root.
# Environment: MAC_NS VM_NS WG_IF.
set -euo pipefail
for v in MAC_NS VM_NS WG_IF; do
  [ -n "${!v:-}" ] || { echo "manual-status.sh: $v is not set" >&2; exit 2; }
done
ip netns exec "$VM_NS" bash -euo pipefail -c "
  wg show '$WG_IF' dump
  sysctl net.ipv4.ip_forward
  iptables -S FORWARD
  iptables -t nat -S POSTROUTING
"
ip netns exec "$MAC_NS" bash -euo pipefail -c "
  ip route show
  nft list table inet wgctl
  cat /etc/resolv.conf
"
