#!/usr/bin/env bash
# README command #1: install, build, and run the full demo in the namespace lab.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
npm run demo -- "$@"
