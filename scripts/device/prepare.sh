#!/usr/bin/env bash
# Packs what scripts/device/check.sh needs on a machine without Node.js or network into .devprep/
# (git-ignored): this Node binary (xz), Node's headers (node-gyp builds against them), the npm
# packages (TypeScript left out: dist/ is built here) and ../shared. Then carry dist and .devprep:
#   bash scripts/device/prepare.sh && npx tsc -p .
#   (device tool) run: bash scripts/device/check.sh    carry: ["dist", ".devprep"]
set -euo pipefail
cd "$(dirname "$0")/../.."
D=.devprep
mkdir -p "$D"
[ -f "$D/node.xz" ] || xz -T1 -6 -c "$(command -v node)" > "$D/node.xz"
NODE_INCLUDE="$(dirname "$(readlink -f "$(command -v node)")")/../include"
[ -f "$NODE_INCLUDE/node/node_api.h" ] || { echo "no Node headers in $NODE_INCLUDE/node (Debian: apt-get install libnode-dev)"; exit 1; }
[ -f "$D/node-include.tar.xz" ] || tar -C "$NODE_INCLUDE" -cJf "$D/node-include.tar.xz" node
# node_modules may be a symlink (a worktree's): -h packs what links point to.
tar -chJf "$D/node_modules.tar.xz" --exclude=node_modules/typescript --exclude=node_modules/playwright-core --exclude=node_modules/.cache node_modules
rm -rf "$D/shared" && cp -r ../shared "$D/shared"
du -sh "$D" "$D"/*
