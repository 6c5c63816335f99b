#!/usr/bin/env bash
# Nightly chaos run with a fresh seed. Usage: nightly.sh [SYSTEM_DIR] [DURATION]
set -uo pipefail
system=${1:-examples/shop}
duration=${2:-30m}
seed=$(python3 -c 'import secrets; print(secrets.randbelow(2**31))')
out="${REPORT_ROOT:-reports}/$(date +%F)-seed-$seed"
mkdir -p "$out"
echo "seed: $seed" | tee "$out/SEED"
sagaproof run "$system" --duration "$duration" --seed "$seed" --shrink --report-dir "$out"
status=$?
echo "exit $status report: $out/report.html"
exit $status
