#!/usr/bin/env node
// Locates a libtorch for the native addon and prints what the build needs, as JSON.
//
//   LIBTORCH=/path  a libtorch folder (include/, lib/) or a pip `torch` package folder (same layout);
//   otherwise       Debian's libtorch-dev (headers in /usr/include/torch, libraries in the multiarch dir).
//
// Exit code 0 with the JSON on stdout when found; 1 with a reason on stderr when not.
// Used by binding.gyp (`--field NAME` prints one field) and by scripts/setup.sh (`--check`).
import { existsSync, readFileSync, readdirSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { arch } from 'node:os';

function firstExisting(paths) {
  return paths.find((p) => existsSync(p));
}

function fromFolder(root) {
  const include = join(root, 'include');
  const lib = join(root, 'lib');
  if (!existsSync(join(include, 'torch', 'csrc', 'api', 'include', 'torch', 'torch.h'))) {
    return { error: `LIBTORCH=${root} has no include/torch/csrc/api/include/torch/torch.h (is it a libtorch or pip torch folder?)` };
  }
  if (!existsSync(join(lib, 'libtorch.so')) && !existsSync(join(lib, 'libtorch_cpu.so'))) {
    return { error: `LIBTORCH=${root} has no lib/libtorch.so` };
  }
  return { include: [include, join(include, 'torch', 'csrc', 'api', 'include')], lib: realLibFolder(lib), cmake: join(root, 'share', 'cmake', 'Torch', 'TorchConfig.cmake') };
}

// Debian's python3-torch(-cuda) package folder links lib/libtorch.so to the system's copy and has
// no libtorch_cuda.so beside it: link against (and set the rpath to) the folder the link leads to.
function realLibFolder(lib) {
  const torch = join(lib, 'libtorch.so');
  return existsSync(torch) ? dirname(realpathSync(torch)) : lib;
}

function fromSystem() {
  const multiarch = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' }[arch()] ?? '';
  const lib = firstExisting([join('/usr/lib', multiarch), '/usr/lib', '/usr/local/lib'].filter((d) => existsSync(join(d, 'libtorch.so'))));
  const include = firstExisting(['/usr/include', '/usr/local/include'].filter((d) => existsSync(join(d, 'torch', 'csrc', 'api', 'include', 'torch', 'torch.h'))));
  if (!lib || !include) return { error: 'no system libtorch (Debian: apt-get install libtorch-dev)' };
  return { include: [include, join(include, 'torch', 'csrc', 'api', 'include')], lib, cmake: join(lib, 'cmake', 'Torch', 'TorchConfig.cmake') };
}

// The C++11 ABI flag must match libtorch's, or the addon fails to link or load in odd ways.
function cxx11Abi(found) {
  if (existsSync(found.cmake)) {
    const m = /_GLIBCXX_USE_CXX11_ABI=([01])/.exec(readFileSync(found.cmake, 'utf8'));
    if (m) return Number(m[1]);
  }
  // No CMake config: old-ABI builds have no `__cxx11` symbols in libc10.
  const c10 = join(found.lib, 'libc10.so');
  return existsSync(c10) && readFileSync(c10).includes('__cxx11') ? 1 : 0;
}

// The version's defines are in torch/version.h up to 2.8 or so; later ones moved them to
// torch/headeronly/version.h (in the include root), which torch/version.h includes.
function version(found) {
  const headers = [join(found.include[1], 'torch', 'version.h'), join(found.include[0], 'torch', 'headeronly', 'version.h')];
  for (const header of headers.filter((h) => existsSync(h))) {
    const text = readFileSync(header, 'utf8');
    const part = (k) => (new RegExp(`#define TORCH_VERSION_${k} (\\d+)`).exec(text) ?? [])[1];
    if (part('MAJOR') && part('MINOR')) return [part('MAJOR'), part('MINOR'), part('PATCH') ?? '0'].join('.');
  }
  return 'unknown';
}

// libtorch 2.12 and later require C++20 in their headers (ATen.h's #error); older ones build as
// C++17. The header itself decides where the version cannot be read.
function cxxStandard(found, v) {
  const [major, minor] = v.split('.').map(Number);
  if (major > 2 || (major === 2 && minor >= 12)) return 'c++20';
  const aten = join(found.include[0], 'ATen', 'ATen.h');
  return v === 'unknown' && existsSync(aten) && /C\+\+20 or later/.test(readFileSync(aten, 'utf8')) ? 'c++20' : 'c++17';
}

// A CUDA libtorch's NCCL process groups need NCCL's and the CUDA runtime's headers. Debian has them
// in /usr/include (libnccl-dev, nvidia-cuda-dev); a pip torch package has them in its sibling
// nvidia/<part>/include folders (nvidia-nccl-cu12, nvidia-cuda-runtime-cu12, ...); else a CUDA
// toolkit (CUDA_HOME, CUDA_PATH, /usr/local/cuda). Theirs come after libtorch's own.
function cudaIncludes(found, root) {
  const dirs = [];
  const nvidia = root ? join(root, '..', 'nvidia') : '';
  if (nvidia && existsSync(nvidia)) {
    for (const part of readdirSync(nvidia).sort()) {
      if (existsSync(join(nvidia, part, 'include'))) dirs.push(join(nvidia, part, 'include'));
    }
  }
  const toolkit = [process.env.CUDA_HOME, process.env.CUDA_PATH, '/usr/local/cuda']
    .filter((d) => d)
    .map((d) => join(d, 'include'))
    .find((d) => existsSync(join(d, 'cuda_runtime_api.h')));
  if (toolkit) dirs.push(toolkit);
  return dirs.filter((d) => !found.include.includes(d));
}

// Which process-group backends the build will find headers for (native/src/dist_ops.cpp checks the
// same with __has_include): part of the build's stamp, so installing them later rebuilds the addon.
function collectiveHeaders(include, cuda) {
  const search = [...include, '/usr/local/include', '/usr/include'];
  const has = (header) => search.some((d) => existsSync(join(d, header)));
  return { gloo: has('gloo/algorithm.h'), nccl: cuda && has('nccl.h') && has('cuda_runtime_api.h') };
}

export function findLibtorch() {
  const root = process.env.LIBTORCH;
  const found = root ? fromFolder(resolve(root)) : fromSystem();
  if (found.error) return found;
  const libs = readdirSync(found.lib);
  // libtorch_cuda registers the CUDA backend from static initialisers: it must be linked even
  // though no symbol of it is referenced (hence --no-as-needed in binding.gyp).
  const cuda = libs.includes('libtorch_cuda.so');
  const include = [...found.include, ...(cuda ? cudaIncludes(found, root ? resolve(root) : '') : [])];
  const headers = collectiveHeaders(include, cuda);
  const v = version(found);
  return {
    source: root ? 'LIBTORCH' : 'system',
    version: v,
    // -I/usr/include would reorder the compiler's own system headers (breaks #include_next).
    include: include.filter((d) => d !== '/usr/include'),
    lib: found.lib,
    cxx11Abi: cxx11Abi(found),
    cxxStandard: cxxStandard(found, v),
    cuda,
    // 1/0 for the preprocessor (buildInfo().cuda; native/src/dist_ops.cpp's NCCL needs it).
    cudaFlag: cuda ? 1 : 0,
    collectiveHeaders: headers,
    // 1/0: compile NCCL's process groups (native/src/dist_ops.cpp) where the headers are, unless
    // ENGRAM_NCCL=0 (a build whose NCCL headers do not fit this libtorch still gets the rest).
    ncclFlag: headers.nccl && process.env.ENGRAM_NCCL !== '0' ? 1 : 0,
    libraries: ['-ltorch', '-ltorch_cpu', '-lc10', ...(cuda ? ['-ltorch_cuda', '-lc10_cuda'] : [])],
  };
}

const isMain = import.meta.url === `file://${process.argv[1]}`;
if (isMain) {
  const found = findLibtorch();
  if (found.error) {
    process.stderr.write(`libtorch not found: ${found.error}\n`);
    process.exit(1);
  }
  const field = process.argv.indexOf('--field');
  if (field >= 0) {
    const value = found[process.argv[field + 1]];
    process.stdout.write(Array.isArray(value) ? value.join(' ') : String(value));
  } else if (!process.argv.includes('--check')) {
    process.stdout.write(JSON.stringify(found, null, 2) + '\n');
  }
}
