#!/usr/bin/env bash
# The seed's manual procedure, in the lab: what a user typed by hand before wgctl existed.
# Used as the baseline of `wgctl up` (tools/bench/up.mjs); runs as root.
#
#   manual-up.sh up     VM: wg-quick up, ip_forward, FORWARD accepts + SNAT;
#                       Mac: nft kill switch, host route to the server, the two /1 routes;
#                       then ping until the first reply crosses the tunnel
#   manual-up.sh down   undo all of it (not timed)
#
# Environment (the bench sets it from the lab's lab.json): MAC_NS VM_NS WG_CONF WG_IF VM_ETH
# VM_IP MAC_VNIC VM_SOURCE TUNNEL_IP UPLINK GATEWAY SERVER PORT PING_TARGET.
# Each machine's commands run in one shell inside its namespace, as a user with a root shell
# open on the VM and on the Mac would type them.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/first-reply.sh
. "$here/lib/first-reply.sh"
for v in MAC_NS VM_NS WG_CONF WG_IF VM_ETH VM_IP MAC_VNIC VM_SOURCE TUNNEL_IP UPLINK GATEWAY SERVER PORT PING_TARGET; do
  [ -n "${!v:-}" ] || { echo "manual-up.sh: $v is not set" >&2; exit 2; }
done
export WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1
table=wgbench

vm_up() {
  ip netns exec "$VM_NS" bash -euo pipefail -c "
    wg-quick up '$WG_CONF'
    sysctl -q -w net.ipv4.ip_forward=1
    iptables -A FORWARD -i '$VM_ETH' -o '$WG_IF' -s '$VM_SOURCE' -j ACCEPT
    iptables -A FORWARD -i '$WG_IF' -o '$VM_ETH' -d '$VM_SOURCE' -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
    iptables -t nat -A POSTROUTING -o '$WG_IF' -s '$VM_SOURCE' -j SNAT --to-source '$TUNNEL_IP'
  " >/dev/null 2>&1
}

mac_up() {
  ip netns exec "$MAC_NS" bash -euo pipefail -c "
    nft -f - <<NFT
table inet $table {
  chain output {
    type filter hook output priority filter; policy accept;
    oifname \"$UPLINK\" udp sport 68 udp dport 67 accept
    oifname \"$UPLINK\" ip daddr $SERVER udp dport $PORT accept
    oifname \"$UPLINK\" drop
  }
  chain input {
    type filter hook input priority filter; policy accept;
    iifname \"$UPLINK\" udp sport 67 udp dport 68 accept
    iifname \"$UPLINK\" ip saddr $SERVER udp sport $PORT accept
    iifname \"$UPLINK\" drop
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    oifname \"$UPLINK\" ip daddr $SERVER udp dport $PORT accept
    oifname \"$UPLINK\" drop
    iifname \"$UPLINK\" ip saddr $SERVER udp sport $PORT accept
    iifname \"$UPLINK\" drop
  }
}
NFT
    ip route add '$SERVER/32' via '$GATEWAY' dev '$UPLINK'
    ip route add 0.0.0.0/1 via '$VM_IP' dev '$MAC_VNIC'
    ip route add 128.0.0.0/1 via '$VM_IP' dev '$MAC_VNIC'
  "
}

vm_down() {
  ip netns exec "$VM_NS" bash -c "
    wg-quick down '$WG_CONF'
    iptables -D FORWARD -i '$VM_ETH' -o '$WG_IF' -s '$VM_SOURCE' -j ACCEPT
    iptables -D FORWARD -i '$WG_IF' -o '$VM_ETH' -d '$VM_SOURCE' -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
    iptables -t nat -D POSTROUTING -o '$WG_IF' -s '$VM_SOURCE' -j SNAT --to-source '$TUNNEL_IP'
    sysctl -q -w net.ipv4.ip_forward=0
  " >/dev/null 2>&1 || true
}

mac_down() {
  ip netns exec "$MAC_NS" bash -c "
    ip route del 0.0.0.0/1 via '$VM_IP' dev '$MAC_VNIC'
    ip route del 128.0.0.0/1 via '$VM_IP' dev '$MAC_VNIC'
    ip route del '$SERVER/32'
    nft delete table inet $table
  " >/dev/null 2>&1 || true
}

case "${1:-}" in
  up)
    vm_up
    mac_up
    first_reply
    ;;
  down)
    mac_down
    vm_down
    ;;
  *)
    echo "usage: manual-up.sh up|down" >&2
    exit 2
    ;;
esac
