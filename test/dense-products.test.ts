// Linear layers' float32 products on oneDNN's sgemm (ENGRAM_DENSE_MATMUL=onednn, what 'auto' picks
// where libtorch's OpenBLAS is held to narrower vectors than the processor has) give what ATen's mm
// gives (=aten): values and gradients of linear, the fused feed-forward and linear over a cat, and a
// second derivative. Each setting runs in its own process, since the choice is made once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const worker = fileURLToPath(new URL('./dense-products-worker.js', import.meta.url));

function runWith(choice: string): { denseProducts: string; out: Record<string, number[][]> } {
  const r = spawnSync(process.execPath, [worker], { env: { ...process.env, ENGRAM_DENSE_MATMUL: choice }, encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { denseProducts: string; out: Record<string, number[][]> };
}

test("linear, feedForward and linearOverCat on oneDNN's sgemm equal ATen's mm, gradients and a second derivative included", (t) => {
  const aten = runWith('aten'), onednn = runWith('onednn');
  assert.equal(aten.denseProducts, 'aten');
  if (onednn.denseProducts !== 'onednn') {
    t.skip("this libtorch has no oneDNN sgemm loaded: linear's products stay ATen's");
    return;
  }
  for (const [name, expected] of Object.entries(aten.out)) {
    const got = onednn.out[name]!;
    assert.equal(got.length, expected.length, name);
    expected.forEach((e, i) => {
      assert.equal(got[i]!.length, e.length, `${name}[${i}]`);
      assert.ok(e.length > 0, `${name}[${i}] has a value`);
      const scale = Math.max(1, ...e.map(Math.abs));
      const worst = Math.max(...e.map((v, j) => Math.abs(v - got[i]![j]!)));
      assert.ok(worst <= 1e-5 * scale, `${name}[${i}]: oneDNN differs from ATen by ${worst} (scale ${scale})`);
    });
  }
});
