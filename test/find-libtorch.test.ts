// scripts/find-libtorch.mjs on libtorch folders laid out as a pip torch package is (files only, no
// build): libtorch's version and the C++ standard its headers need, the include folders a CUDA
// build needs for NCCL's process groups, which collective backends' headers the build will see
// (part of the addon's build stamp), and whether NCCL is compiled in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('../../scripts/find-libtorch.mjs', import.meta.url));

interface Found { version: string; cxxStandard: string; include: string[]; cuda: boolean; collectiveHeaders: { gloo: boolean; nccl: boolean }; ncclFlag: number }

function find(libtorch: string, env: Record<string, string> = {}): Found {
  const clean = { ...process.env };
  delete clean.CUDA_HOME;
  delete clean.CUDA_PATH;
  const r = spawnSync(process.execPath, [script], { env: { ...clean, LIBTORCH: libtorch, ...env }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Found;
}

function touch(path: string, text = ''): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

const versionDefines = (major: number, minor: number, patch: number): string =>
  `#pragma once\n#define TORCH_VERSION_MAJOR ${major}\n#define TORCH_VERSION_MINOR ${minor}\n#define TORCH_VERSION_PATCH ${patch}\n`;

/** site-packages/torch with libtorch's files (empty), and its sibling nvidia/<part>/include folders. */
function sitePackages(root: string, o: { cuda: boolean; nvidia: string[] }): string {
  const torch = join(root, 'site-packages', 'torch');
  touch(join(torch, 'include', 'torch', 'csrc', 'api', 'include', 'torch', 'torch.h'));
  touch(join(torch, 'lib', 'libtorch.so'));
  touch(join(torch, 'lib', 'libc10.so'));
  if (o.cuda) touch(join(torch, 'lib', 'libtorch_cuda.so'));
  for (const header of o.nvidia) touch(join(root, 'site-packages', 'nvidia', header));
  return torch;
}

const systemGloo = ['/usr/local/include', '/usr/include'].some((d) => existsSync(join(d, 'gloo', 'algorithm.h')));
// Without CUDA_HOME or CUDA_PATH, the script falls back to this machine's /usr/local/cuda when it has one.
const defaultToolkit = existsSync('/usr/local/cuda/include/cuda_runtime_api.h') ? ['/usr/local/cuda/include'] : [];

test("a CUDA pip torch: its nvidia/*/include folders follow libtorch's, and NCCL's headers are seen there", () => {
  const root = mkdtempSync(join(tmpdir(), 'engram-find-libtorch-'));
  try {
    const torch = sitePackages(root, { cuda: true, nvidia: ['nccl/include/nccl.h', 'cuda_runtime/include/cuda_runtime_api.h', 'cublas/lib/libcublas.so.12'] });
    const found = find(torch);
    const nvidia = join(root, 'site-packages', 'torch', '..', 'nvidia');
    assert.equal(found.cuda, true);
    assert.deepEqual(found.include, [join(torch, 'include'), join(torch, 'include', 'torch', 'csrc', 'api', 'include'),
      join(nvidia, 'cuda_runtime', 'include'), join(nvidia, 'nccl', 'include'), ...defaultToolkit], 'a part without include/ (cublas here) adds nothing');
    assert.deepEqual(found.collectiveHeaders, { gloo: systemGloo, nccl: true });
    assert.equal(found.ncclFlag, 1, 'NCCL compiled in');
    const optedOut = find(torch, { ENGRAM_NCCL: '0' });
    assert.deepEqual([optedOut.collectiveHeaders.nccl, optedOut.ncclFlag], [true, 0], 'ENGRAM_NCCL=0 leaves NCCL out though its headers are there');

    // Without NCCL's package, a CUDA toolkit's runtime header alone does not make nccl.
    rmSync(join(nvidia, 'nccl'), { recursive: true });
    rmSync(join(nvidia, 'cuda_runtime'), { recursive: true });
    const toolkit = join(root, 'cuda');
    touch(join(toolkit, 'include', 'cuda_runtime_api.h'));
    const withToolkit = find(torch, { CUDA_HOME: toolkit });
    assert.deepEqual(withToolkit.include.slice(2), [join(toolkit, 'include')]);
    assert.equal(withToolkit.collectiveHeaders.nccl, ['/usr/local/include', '/usr/include'].some((d) => existsSync(join(d, 'nccl.h'))));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a CPU-only libtorch folder: no CUDA folders, no nccl, even beside nvidia packages', () => {
  const root = mkdtempSync(join(tmpdir(), 'engram-find-libtorch-'));
  try {
    const torch = sitePackages(root, { cuda: false, nvidia: ['nccl/include/nccl.h', 'cuda_runtime/include/cuda_runtime_api.h'] });
    const found = find(torch);
    assert.equal(found.cuda, false);
    assert.equal(found.include.length, 2);
    assert.deepEqual(found.collectiveHeaders, { gloo: systemGloo, nccl: false });
    assert.equal(found.ncclFlag, 0);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("libtorch's version from either header, and C++20 from 2.12 on or where ATen.h demands it", () => {
  const root = mkdtempSync(join(tmpdir(), 'engram-find-libtorch-'));
  try {
    const torch = sitePackages(root, { cuda: false, nvidia: [] });
    const include = join(torch, 'include');
    const apiVersion = join(include, 'torch', 'csrc', 'api', 'include', 'torch', 'version.h');
    assert.deepEqual([find(torch).version, find(torch).cxxStandard], ['unknown', 'c++17']);

    touch(apiVersion, versionDefines(2, 11, 0)); // up to 2.8 or so the defines are here
    assert.deepEqual([find(torch).version, find(torch).cxxStandard], ['2.11.0', 'c++17']);
    touch(apiVersion, versionDefines(2, 12, 0));
    assert.equal(find(torch).cxxStandard, 'c++20');

    // Later: torch/version.h only includes torch/headeronly/version.h (Debian's 2.14.1 has this).
    touch(apiVersion, '#include <torch/headeronly/version.h>\n');
    touch(join(include, 'torch', 'headeronly', 'version.h'), versionDefines(2, 14, 1));
    assert.deepEqual([find(torch).version, find(torch).cxxStandard], ['2.14.1', 'c++20']);

    // No readable version: ATen.h's own requirement decides.
    rmSync(join(include, 'torch', 'headeronly'), { recursive: true });
    touch(join(include, 'ATen', 'ATen.h'), '#pragma once\n#if !defined(_MSC_VER) && __cplusplus < 202002L\n#error C++20 or later compatible compiler is required to use ATen.\n#endif\n');
    assert.deepEqual([find(torch).version, find(torch).cxxStandard], ['unknown', 'c++20']);
    touch(join(include, 'ATen', 'ATen.h'), '#pragma once\n');
    assert.equal(find(torch).cxxStandard, 'c++17');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
