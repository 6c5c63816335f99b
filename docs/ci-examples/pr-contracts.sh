#!/usr/bin/env bash
# On a pull request: the contracts check and the breaking-change diff against the base branch.
# Usage: pr-contracts.sh <base git ref, or the old version's directory (system directory or repository root)> [SYSTEM_DIR]
set -euo pipefail
base=${1:?usage: pr-contracts.sh <base git ref or directory> [SYSTEM_DIR]}
system=${2:-examples/shop}
sagaproof contracts check "$system"
sagaproof contracts diff "$system" --base "$base"   # exit 1 = breaking or undecided change, 2 = no contracts at the base
