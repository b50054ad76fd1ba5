#!/bin/sh
# wgctl in the macOS menu bar, for xbar (https://xbarapp.com) and SwiftBar (https://swiftbar.app):
# every 30 s (the ".30s." in the file name) it runs `wgctl menubar`, which asks both agents as
# `wgctl status --json` does and prints the menu in xbar's plugin format. Up, Down and the
# captive-portal sign-in in the menu run that same node and wgctl.js with the same config.
#
# Which wgctl it runs: the three variables below. xbar shows them in its plugin browser
# (Variables); SwiftBar passes their defaults; run by hand, the environment may set them.
# Defaults: the directory README's install puts the agent and its node in.
#
# <xbar.title>wgctl</xbar.title>
# <xbar.version>v1.0</xbar.version>
# <xbar.author>wgctl</xbar.author>
# <xbar.desc>WireGuard through a Linux VM: protected, degraded, unprotected or captive-portal window at a glance, with the reasons; up, down and portal sign-in from the menu. Driven by `wgctl status --json`.</xbar.desc>
# <xbar.dependencies>node,wgctl</xbar.dependencies>
# <xbar.var>string(VAR_WGCTL_NODE="/Library/Application Support/wgctl/node"): The node binary that runs wgctl (absolute path).</xbar.var>
# <xbar.var>string(VAR_WGCTL_SCRIPT="/Library/Application Support/wgctl/wgctl.js"): wgctl.js, the bundle of npm run build (absolute path).</xbar.var>
# <xbar.var>string(VAR_WGCTL_CONFIG=""): wgctl's config file; empty: wgctl's default, ~/.config/wgctl/config.json (what wgctl init writes).</xbar.var>
# <swiftbar.hideRunInTerminal>true</swiftbar.hideRunInTerminal>
# <swiftbar.runInBash>false</swiftbar.runInBash>

node="${VAR_WGCTL_NODE:-/Library/Application Support/wgctl/node}"
script="${VAR_WGCTL_SCRIPT:-/Library/Application Support/wgctl/wgctl.js}"
config="${VAR_WGCTL_CONFIG:-}"

# Exit 0 with a menu that says what to fix: a failing plugin shows only an error badge.
unconfigured() {
  echo 'wgctl ? | color=#8e8e93'
  echo '---'
  echo "$1"
  echo 'Set it in xbar (plugin browser, Variables) or edit the default in this file'
  exit 0
}
[ -f "$node" ] && [ -x "$node" ] || unconfigured 'VAR_WGCTL_NODE is not an executable node binary'
[ -f "$script" ] || unconfigured 'VAR_WGCTL_SCRIPT is not a file (wgctl.js)'

# --timeout: an agent that does not answer must not hold the menu for the default 10 s.
set -- --timeout 5 menubar
[ -n "$config" ] && set -- --config "$config" "$@"
exec "$node" "$script" "$@"
