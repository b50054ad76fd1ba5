#!/usr/bin/env bash
# `wgctl up` as a user runs it on the Mac, then the same wait for the first ping reply through
# the tunnel as manual-up.sh (tools/bench/up.mjs times both). Runs as root.
# Environment: MAC_NS PING_TARGET WGCTL_CONFIG, WGCTL_BUNDLE (dist/apps/wgctl/wgctl.js),
# WGCTL_LOG (where wgctl's output goes; default /dev/null), WGCTL_EXTRA_ARGS (more global flags,
# e.g. `--log-level debug` for the breakdown runs).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/first-reply.sh
. "$here/lib/first-reply.sh"
read -r -a extra <<<"${WGCTL_EXTRA_ARGS:-}"
ip netns exec "$MAC_NS" node "$WGCTL_BUNDLE" --config "$WGCTL_CONFIG" "${extra[@]}" up >"${WGCTL_LOG:-/dev/null}" 2>&1
first_reply
