#!/usr/bin/env bash
# Installs what wgctl's build, demo and tests need on a fresh Debian machine (as root):
# Debian packages for the real network tests, then the npm packages from the lockfile.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
# --no-install-recommends: wireguard-tools would otherwise pull a kernel image.
# gcc byacc libbsd-dev: ../shared/tools/pfctl-grammar builds the real PF grammar the kill switch rules are checked with.
# python3: tools/e2e/inject.ts writes frames through a packet socket (a leak no firewall stops) for the verify tests.
# prometheus: /usr/bin/promtool checks the metrics (agents' /metrics, wgctl metrics --textfile); the lab's Prometheus scrapes the agents.
apt_packages=(wireguard-tools wireguard-go iptables nftables iproute2 tcpdump iputils-ping dnsmasq-base conntrack openssl procps kmod systemd gcc byacc libbsd-dev python3 prometheus)
missing=()
for p in "${apt_packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # The prometheus package enables a daemon on :9090 of every interface; the tests run their own
  # Prometheus in a lab namespace, so a daemon this script brought in is stopped and disabled.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && [[ -d /run/systemd/system ]]; then
    systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  fi
fi

if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi
