#!/usr/bin/env bash
# The GPU check of issue 14, for a machine with python3's CUDA torch 2.x (its package folder holds
# libtorch), a C++ compiler and make, but no Node.js and no network (the device tool's machine).
# It unpacks what scripts/device/prepare.sh packed into .devprep/ (Node, its headers, the npm
# packages), builds the addon against the pip torch package (LIBTORCH), and then, each step under
# its own time limit so that the whole fits in about 8 minutes:
#   1. a CUDA smoke test of the tensor layer and of an NCCL group
#      of one rank (where the build has nccl)                        -> $OUT/cuda-smoke.log
#   2. the device-parameterised tests on cpu and cuda, the CPU/CUDA
#      logits agreement of every kind (test/device.test.ts,
#      test/models.test.ts)                                           -> $OUT/device-tests.log
#   3. the GPU benchmark: training tokens/s and GPU memory of xl, rmt and expire-span at the
#      GPU-sized config (12 layers, H 512, segment 512, batch 32) against the PyTorch twin on the
#      same GPU, one process per model                               -> $OUT/bench-<model>.log
#   4. with --full, the whole test suite                              -> $OUT/test.log
# and $OUT/summary.txt with the lines that matter. Exit status: 0 all passed, 1 a step failed,
# 3 no usable CUDA here (the message says why; nothing else is run).
#   here:   bash scripts/device/prepare.sh && npx tsc -p .
#   there:  bash scripts/device/check.sh [--full]        (carry: dist, .devprep)
# Where Node.js and a libtorch already exist (a CPU machine), it uses them: LIBTORCH if set, else
# python3's torch, else the system's libtorch; so the script's own path can be tried without a GPU.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/engram-device-check}; mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"; : > "$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }
FULL=0; [ "${1:-}" = "--full" ] && FULL=1
D=.devprep
status=0

# ---- Node.js: carried in by prepare.sh where the machine has none --------------------------------
if ! command -v node >/dev/null 2>&1; then
  if [ ! -f "$D/node.xz" ]; then say "no Node.js here and no $D/node.xz: run bash scripts/device/prepare.sh where Node.js is, and carry .devprep"; exit 1; fi
  N=${ENGRAM_NODE_DIR:-/tmp/engram-node}
  mkdir -p "$N/bin" "$N/include"
  xz -dc "$D/node.xz" > "$N/bin/node" && chmod +x "$N/bin/node"
  tar -C "$N/include" -xJf "$D/node-include.tar.xz"
  export PATH="$N/bin:$PATH"
fi
[ -d node_modules/node-gyp ] || { [ -f "$D/node_modules.tar.xz" ] && tar -xJf "$D/node_modules.tar.xz"; }
if [ ! -d ../shared ] && [ -d "$D/shared" ]; then mkdir -p ../shared && cp -r "$D/shared/." ../shared/ && chmod -R u+w ../shared; fi
[ -f dist/test/device.test.js ] || { say "dist/ is missing: run npx tsc -p . before carrying the tree (carry: dist)"; exit 1; }

# ---- libtorch: the pip torch package's, unless LIBTORCH says otherwise ----------------------------
if [ -z "${LIBTORCH:-}" ]; then
  if TORCH_DIR=$(python3 -c "import torch, os; print(os.path.dirname(torch.__file__))" 2>/dev/null); then
    export LIBTORCH="$TORCH_DIR"
  else
    echo "python3 cannot import torch: building against the system libtorch"
  fi
fi
say "node $(node --version); LIBTORCH=${LIBTORCH:-system}; python3 torch: $(python3 -c 'import torch; print(torch.__version__, "cuda", torch.cuda.is_available())' 2>/dev/null || echo none)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | sed 's/^/gpu: /' | tee -a "$SUMMARY"

# ---- the addon -------------------------------------------------------------------------------------
if ! timeout 300 node scripts/build-addon.mjs > "$OUT/build.log" 2>&1; then
  # NCCL's process groups are the newest part of the build: without them the rest can still be checked.
  tail -30 "$OUT/build.log"; say "FAILED: the addon build (log: build.log); building again without NCCL (ENGRAM_NCCL=0)"; status=1
  if ! ENGRAM_NCCL=0 timeout 300 node scripts/build-addon.mjs > "$OUT/build-no-nccl.log" 2>&1; then
    tail -30 "$OUT/build-no-nccl.log"; say "FAILED: the addon build without NCCL too (log: build-no-nccl.log)"; exit 1
  fi
fi
grep -E "^engram:" "$OUT/build.log" | tee -a "$SUMMARY"
INFO=$(node -e "import('./dist/src/index.js').then((m) => { const b = m.buildInfo(); console.log(JSON.stringify({ torch: b.torchVersion, cxx11Abi: b.cxx11Abi, cuda: b.cuda, cudaAvailable: m.cudaAvailable(), devices: m.cudaDeviceCount(), backends: m.collectiveBackends() })); })")
say "build: $INFO"
case "$INFO" in
  *'"cuda":false'*) say "no CUDA: this addon was built against a CPU-only libtorch (LIBTORCH=${LIBTORCH:-system}); point LIBTORCH at a CUDA torch package. Nothing else was run."; exit 3 ;;
  *'"cudaAvailable":false'*) say "no CUDA: the addon has CUDA but no GPU is visible (nvidia-smi, CUDA_VISIBLE_DEVICES). Nothing else was run."; exit 3 ;;
esac

# ---- 1. smoke, 2. device tests ------------------------------------------------------------------------
timeout 120 node scripts/device/cuda-smoke.mjs > "$OUT/cuda-smoke.log" 2>&1 || { status=1; say "FAILED: cuda-smoke (log: cuda-smoke.log)"; }
sed 's/^/smoke: /' "$OUT/cuda-smoke.log" | tee -a "$SUMMARY"
ENGRAM_TEST_DEVICES=cpu,cuda timeout 300 node --test dist/test/device.test.js dist/test/models.test.js > "$OUT/device-tests.log" 2>&1 || status=1
grep -E "^# (tests|pass|fail|skipped)|^not ok" "$OUT/device-tests.log" | sed 's/^/device tests: /' | tee -a "$SUMMARY"

# ---- 3. the GPU benchmark, one process per model ----------------------------------------------------------
for m in xl rmt expire-span; do
  if timeout 150 node dist/bench/models.js --device cuda --gpu-size --models "$m" --precision float32 --warmup 2 --rounds 3 --steps 3 --no-install > "$OUT/bench-$m.log" 2>&1; then
    grep -E "^  (parameters|same weights|Engram |PyTorch |ratio|GPU memory)" "$OUT/bench-$m.log" | sed "s/^ */bench $m: /" | tee -a "$SUMMARY"
    tail -1 "$OUT/bench-$m.log" > "$OUT/bench-$m.json"
  else
    status=1; say "FAILED or timed out: bench $m (log: bench-$m.log)"; tail -5 "$OUT/bench-$m.log" | tee -a "$SUMMARY"
  fi
done

# ---- 4. optionally, everything ------------------------------------------------------------------------------
if [ "$FULL" = 1 ]; then
  timeout 420 node --test dist/test/*.test.js > "$OUT/test.log" 2>&1 || status=1
  grep -E "^# (tests|pass|fail|skipped)|^not ok" "$OUT/test.log" | sed 's/^/full suite: /' | tee -a "$SUMMARY"
fi
say "exit $status"
exit $status
