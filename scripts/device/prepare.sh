#!/usr/bin/env bash
# Packs what scripts/device/check.sh needs on a machine without Node.js or network into .devprep/
# (git-ignored through .git/info/exclude): this Node binary (xz), Node's headers, the npm packages
# (TypeScript left out: dist/ is built here), ../shared, and the check scripts.
set -euo pipefail
cd "$(dirname "$0")/../.."
D=.devprep
mkdir -p "$D"
grep -qx '/.devprep/' .git/info/exclude 2>/dev/null || echo '/.devprep/' >> .git/info/exclude
[ -f "$D/node.xz" ] || xz -T1 -6 -c "$(command -v node)" > "$D/node.xz"
NODE_INCLUDE="$(dirname "$(command -v node)")/../include"
[ -f "$D/node-include.tar.xz" ] || tar -C "$NODE_INCLUDE" -cJf "$D/node-include.tar.xz" node
tar -cJf "$D/node_modules.tar.xz" --exclude=node_modules/typescript node_modules
rm -rf "$D/shared" && cp -r ../shared "$D/shared"
cp scripts/device/check.sh scripts/device/cuda-smoke.mjs "$D/"
du -sh "$D"
