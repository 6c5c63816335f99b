#!/usr/bin/env bash
# Pre-deploy gate. Usage: gate.sh <deployed git ref or directory> [SYSTEM_DIR]
set -euo pipefail
base=${1:?usage: gate.sh <deployed git ref or directory> [SYSTEM_DIR]}
system=${2:-examples/shop}
sagaproof contracts check "$system"
sagaproof contracts diff "$system" --base "$base"   # exit 1 = breaking change: do not deploy
