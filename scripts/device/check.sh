#!/usr/bin/env bash
# Runs on a machine with python3's torch 2.x (e.g. the CUDA machine of the device tool) and no
# Node.js: unpacks what scripts/device/prepare.sh put in .devprep/, builds the addon against the
# pip torch package's libtorch (LIBTORCH), runs a CUDA smoke test and the whole test suite, and
# writes build.log, cuda-smoke.log and test.log under $OUT.
#   here:   bash scripts/device/prepare.sh && npx tsc -p .
#   there:  bash .devprep/check.sh          (carry: dist, .devprep)
set -uo pipefail
OUT=${OUT:-/tmp/engram-device-check}; mkdir -p "$OUT"
D=.devprep
mkdir -p /opt/n/bin /opt/n/include
xz -dc $D/node.xz > /opt/n/bin/node && chmod +x /opt/n/bin/node
tar -C /opt/n/include -xJf $D/node-include.tar.xz
tar -xJf $D/node_modules.tar.xz
export PATH=/opt/n/bin:$PATH
mkdir -p ../shared && cp -r $D/shared/. ../shared/ && chmod -R u+w ../shared
export LIBTORCH=$(python3 -c "import torch,os;print(os.path.dirname(torch.__file__))")
echo "node $(node --version); torch at $LIBTORCH; $(python3 -c 'import torch;print(torch.__version__, torch.cuda.is_available())')"
which make g++ python3 | tr '\n' ' '; echo
rm -rf native/build
( time node scripts/build-addon.mjs ) 2>&1 | grep -v "^  CXX\|^  SOLINK\|^  COPY" | tee $OUT/build.log | tail -30
node -e "import('./dist/src/index.js').then(m => { console.log(JSON.stringify(m.buildInfo()), 'cuda', m.cudaAvailable(), m.cudaDeviceCount()); })"
node .devprep/cuda-smoke.mjs 2>&1 | tee $OUT/cuda-smoke.log
( time node --test dist/test/*.test.js ) > $OUT/test.log 2>&1
grep -E "^# (tests|pass|fail|skipped)|^not ok" $OUT/test.log | head -40
tail -3 $OUT/test.log
