#!/usr/bin/env bash
# The README's test command in a chroot of another Debian release, to check on a CPU-only machine
# that the addon builds and the whole suite passes against a libtorch 2.x, as well as against
# bookworm's 1.13:
#   trixie (Debian 13, the default): libtorch 2.6, GCC 14, Node 20.19, oneDNN 3.6, Python 3.13;
#   sid (Debian unstable, moving): on 2026-12-07 libtorch 2.14.1, GCC 16, Node 24.22, oneDNN 3.12,
#   OpenBLAS 0.3.34, Python 3.14: the newest libtorch Debian has, built as C++20.
# Python's torch of the same release runs the interop tests.
#
#   sudo bash scripts/check-debian.sh [--suite trixie|sid] [--cuda] [ROOT]   (ROOT: the chroot's
#          folder, default /var/tmp/engram-SUITE, or -cuda with --cuda; kept for the next run)
#
# --cuda: the same against Debian's CUDA build of libtorch (2.6 in both suites, contrib) (libtorch-cuda-dev, python3-torch-cuda,
# libgloo-cuda-dev, libnccl-dev from contrib and non-free; CUDA 12.4; a 12 GB chroot), on a machine
# without a GPU: the addon compiles its CUDA paths and ProcessGroupNCCL, loads, and the suite runs
# with CUDA absent at run time (cudaAvailable() false, the CUDA tests skipped, `--device cuda` a
# one-line error).
# Debian's nvidia-cudnn only downloads cuDNN from NVIDIA after its licence question; the check
# declines it (debconf), and since libtorch_cuda is linked with BIND_NOW against libcudnn.so.9, it
# puts a stand-in libcudnn.so.9 in the chroot whose every function returns
# CUDNN_STATUS_NOT_SUPPORTED: it lets the libraries load; nothing calls cuDNN without a GPU.
#
# Needs root, debootstrap (installed with apt-get when missing) and Debian's mirror. The chroot gets
# this machine's CA certificates and npm settings (a proxy's certificate authority, npm's nodedir),
# a clone of this checkout's HEAD at ROOT/work/main and a copy of ../shared beside it, then runs
# `CI=true bash .ci/run` inside, so the project's own setup installs that release's packages there. Exits
# with the suite's status; the log is ROOT/work/ci.log.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
cuda=0
suite=trixie
say() { printf 'check-debian: %s\n' "$*"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --cuda) cuda=1; shift ;;
    --suite) suite=${2:-}; shift 2 || { say "--suite needs trixie or sid"; exit 2; } ;;
    --suite=*) suite=${1#--suite=}; shift ;;
    -*) say "unknown option $1 (options: --suite trixie|sid, --cuda)"; exit 2 ;;
    *) break ;;
  esac
done
case "$suite" in trixie | sid) ;; *) say "--suite $suite: not a suite this check knows (trixie or sid)"; exit 2 ;; esac
flavour=$suite
if [ "$cuda" = 1 ]; then flavour=$suite-cuda; fi
root=${1:-/var/tmp/engram-$flavour}

[ "$(id -u)" = 0 ] || { say "run as root (it builds a chroot)"; exit 1; }
command -v debootstrap >/dev/null || {
  say "installing debootstrap"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}
if [ ! -x "$root/usr/bin/apt-get" ]; then
  say "debootstrap $suite into $root"
  mkdir -p "$root"
  debootstrap --variant=minbase --include=ca-certificates "$suite" "$root" http://deb.debian.org/debian >"$root.debootstrap.log"
fi

mounted=()
cleanup() { for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done; }
trap cleanup EXIT
for d in proc sys dev dev/pts; do
  mountpoint -q "$root/$d" || { mount --bind "/$d" "$root/$d"; mounted+=("$root/$d"); }
done
mkdir -p "$root/dev/shm"
mountpoint -q "$root/dev/shm" || { mount -t tmpfs tmpfs "$root/dev/shm"; mounted+=("$root/dev/shm"); }
cp /etc/resolv.conf "$root/etc/resolv.conf"
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"; fi
[ -f "$HOME/.npmrc" ] && cp "$HOME/.npmrc" "$root/root/.npmrc"

# A mirror that is a snapshot (as on the machine this was written on) serves a Release file whose
# Valid-Until has passed: sid's is valid for a week. Inside the throw-away chroot, apt accepts it.
echo 'Acquire::Check-Valid-Until "false";' > "$root/etc/apt/apt.conf.d/99engram-snapshot-mirror"

say "Node.js, npm, Node's headers and a compiler from $suite"
chroot "$root" bash -c 'update-ca-certificates >/dev/null 2>&1; apt-get update -qq &&
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm libnode-dev git build-essential python3 >/dev/null'

if [ "$cuda" = 1 ]; then
  say "Debian's CUDA libtorch (contrib, non-free), cuDNN's download declined"
  chroot "$root" env SUITE="$suite" bash -c 'set -e
    echo "deb http://deb.debian.org/debian $SUITE contrib non-free" > /etc/apt/sources.list.d/engram-cuda.list
    echo "nvidia-cudnn nvidia-cudnn/question select I Decline" | debconf-set-selections
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libtorch-cuda-dev python3-torch-cuda libgloo-cuda-dev libnccl-dev >/dev/null
    lib=/usr/lib/x86_64-linux-gnu
    if [ ! -e $lib/libcudnn.so.9 ]; then
      mkdir -p /tmp/cudnn-stand-in && cd /tmp/cudnn-stand-in
      nm -D --undefined-only --with-symbol-versions $lib/libtorch_cuda.so $lib/libtorch_python.so 2>/dev/null \
        | grep -o "cudnn[A-Za-z0-9_]*@libcudnn.so.9" | sed "s/@.*//" | sort -u \
        | while read -r f; do echo "int $f(void) { return 3000; }"; done > cudnn.c   # 3000: CUDNN_STATUS_NOT_SUPPORTED
      echo "libcudnn.so.9 { global: *; };" > cudnn.map
      gcc -shared -fPIC -o $lib/libcudnn.so.9 -Wl,-soname,libcudnn.so.9 -Wl,--version-script=cudnn.map cudnn.c
      echo "check-debian: a stand-in libcudnn.so.9 with $(wc -l < cudnn.c) functions (no cuDNN without the download)"
    fi'
fi

say "a clone of $(git rev-parse --short HEAD) and ../shared"
rm -rf "$root/work/main" "$root/work/shared"
mkdir -p "$root/work"
git clone -q "$repo" "$root/work/main"
git -C "$root/work/main" checkout -q "$(git rev-parse HEAD)"
[ -d ../shared ] && cp -a ../shared "$root/work/shared"

say "CI=true bash .ci/run inside (log: $root/work/ci.log)"
set +e
chroot "$root" bash -c 'cd /work/main && CI=true bash .ci/run' >"$root/work/ci.log" 2>&1
status=$?
set -e
chroot "$root" bash -c 'dpkg-query -W -f="\${Package} \${Version}\n" libtorch-dev libtorch-cuda-dev python3-torch python3-torch-cuda nodejs gcc 2>/dev/null; true' | awk 'NF > 1' | sed 's/^/  /'
# The summary as node:test's TAP reporter ("# pass 470") or its spec reporter ("ℹ pass 470", Node 24's
# default) writes it; then the failed tests.
grep -E '^(# |ℹ )(tests|pass|fail|skipped) ' "$root/work/ci.log" | sed -E 's/^(# |ℹ )/  /' || true
grep -E '^not ok|^✖ ' "$root/work/ci.log" | grep -v '^✖ failing tests' | sort -u | sed 's/^/  /' || true
say "exit $status"
exit "$status"
