#!/usr/bin/env bash
# Pre-deploy gate: may the commit checked out here be deployed to ENV, given what runs there and what the
# versions before it left in the streams? What runs where is recorded in git (SYSTEM_DIR/deployments/ENV.toml).
# Usage: gate.sh ENV SERVICE...   DEPLOY="your deploy command" runs between the check and the record.
set -euo pipefail
env=${1:?usage: gate.sh ENV SERVICE...}; shift
[ $# -gt 0 ] || { echo "usage: gate.sh ENV SERVICE..." >&2; exit 2; }
system=${SYSTEM_DIR:-examples/shop}
sagaproof contracts check "$system"
sagaproof contracts can-i-deploy "$@" --ref HEAD --to "$env" --dir "$system"   # exit 1 = not safe: do not deploy
bash -c "${DEPLOY:-true}"                                                      # kubectl, helm, ...
sagaproof contracts record-deployment "$@" --ref HEAD --env "$env" --dir "$system"
git add "$system/deployments/$env.toml"
git commit --quiet -m "deploy $* to $env" -- "$system/deployments/$env.toml"
echo "recorded in $system/deployments/$env.toml; push that commit (git push origin HEAD:main)"
