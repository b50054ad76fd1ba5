# Sourced by manual-up.sh and wgctl-up.sh: waits for the first ping reply that crosses the
# tunnel (the target answers only through it), pinging every 20 ms for at most 20 s.
first_reply() {
  ip netns exec "$MAC_NS" ping -n -q -c 1 -i 0.02 -w 20 "$PING_TARGET" >/dev/null
}
