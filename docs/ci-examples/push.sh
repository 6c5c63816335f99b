#!/usr/bin/env bash
# Every push: a chaos run with JUnit and an HTML report. Usage: push.sh [SYSTEM_DIR] [extra sagaproof run args]
set -euo pipefail
system=${1:-examples/shop}; shift || true
seed=${CI_PIPELINE_ID:-${SEED:-$RANDOM}}
status=0
sagaproof run "$system" --seed "$seed" --report-dir "${REPORT_DIR:-sagaproof-report}" "$@" || status=$?
echo "seed: $seed   report: ${REPORT_DIR:-sagaproof-report}/report.html   junit: ${REPORT_DIR:-sagaproof-report}/junit.xml"
exit $status
