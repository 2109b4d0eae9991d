#!/usr/bin/env bash
# Makes this checkout ready to run: libtorch (+ OpenBLAS), npm packages, the native addon, the
# TypeScript build. Idempotent: each step is skipped when already done, so both README commands
# call it. Set LIBTORCH=/path to use a libtorch folder or a pip torch package instead of Debian's.
#
#   --tests   also what only the tests need: Debian's python3-torch (the PyTorch twin and the
#             interop tests run against it) and chromium (the viewer's browser test).
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
for arg in "$@"; do
  case "$arg" in
    --tests) with_tests=1 ;;
    *) printf 'engram setup: unknown option %s (known: --tests)\n' "$arg"; exit 2 ;;
  esac
done

say() { printf 'engram setup: %s\n' "$*"; }
need_root() {
  say "$1"
  say "run as root:  $2"
  exit 1
}

apt_install() {  # apt_install PACKAGE... (as root, with apt-get), else explain what to run
  local cmd="apt-get update && apt-get install -y --no-install-recommends $*"
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    need_root "missing system packages: $*" "$cmd"
  fi
  say "installing $* with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# 1. Node >= 20 and its headers (the addon is built against them).
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
  || { say "Node >= 20 is required (found $(node --version))"; exit 1; }

# 2. libtorch. LIBTORCH wins; else Debian's libtorch-dev, installed when absent.
if ! node scripts/find-libtorch.mjs --check 2>/dev/null; then
  if [ -n "${LIBTORCH:-}" ]; then
    node scripts/find-libtorch.mjs --check || true
    say "LIBTORCH=$LIBTORCH is not a usable libtorch folder (needs include/torch and lib/libtorch.so)"
    exit 1
  fi
  apt_install libtorch-dev libopenblas0-pthread
fi
# Debian's libtorch without OpenBLAS falls back to the reference BLAS: matmul 10-30x slower.
if [ -z "${LIBTORCH:-}" ] && command -v dpkg-query >/dev/null \
  && ! dpkg-query -W -f='${Status}' libopenblas0-pthread 2>/dev/null | grep -q "ok installed"; then
  apt_install libopenblas0-pthread
fi
# Gloo's headers (Debian ships them apart from libtorch-dev): without them the addon builds without
# data-parallel training on the CPU (src/distributed), whose process groups are c10d's
# ProcessGroupGloo. Debian's CUDA libtorch (libtorch-cuda-dev, in contrib) goes with Gloo's CUDA
# build, libgloo-cuda-dev, which replaces libgloo-dev.
if [ -z "${LIBTORCH:-}" ] && command -v dpkg-query >/dev/null && [ ! -f /usr/include/gloo/algorithm.h ]; then
  if [ "$(node scripts/find-libtorch.mjs --field cuda)" = true ]; then apt_install libgloo-cuda-dev; else apt_install libgloo-dev; fi
fi

# 3. For the tests: PyTorch for Debian's /usr/bin/python3 (the twin and interop tests) and Chromium.
if [ "$with_tests" = 1 ]; then
  missing=()
  /usr/bin/python3 -c 'import torch' 2>/dev/null || missing+=(python3-torch)
  command -v chromium >/dev/null || missing+=(chromium)
  if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
fi

# 4. npm packages (skipped when node_modules matches the lockfile).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi

# 5. The native addon (skips itself when sources and libtorch are unchanged).
node scripts/build-addon.mjs

# 6. TypeScript, and the memory viewer's page (bundled into dist/viewer).
npx --no-install tsc -p .
node scripts/build-viewer.mjs
say "ready"
