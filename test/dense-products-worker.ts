// Run by test/dense-products.test.ts in a child process whose ENGRAM_DENSE_MATMUL picks the library
// of linear layers' float32 products (read once, when the addon first decides): prints which one ran
// and the values and gradients of linear, feedForward and linearOverCat on seeded inputs, as JSON.
import { F, buildInfo, grad, manualSeed, randn, tidy, type Tensor } from '../src/index.js';

manualSeed(7);
const leaf = (shape: number[]): Tensor => randn(shape).requiresGrad_();
const x = leaf([3, 37, 48]), w = leaf([64, 48]), b = leaf([64]);
const w2 = leaf([48, 64]), b2 = leaf([48]);
const first = randn([3, 20, 48]); // a detached piece (Transformer-XL's cache)

const values = (ts: (Tensor | null)[]): number[][] => ts.map((t) => (t === null ? [] : Array.from(t.data() as Float32Array)));
const out: Record<string, number[][]> = {};
tidy(() => {
  const inputs = [x, w, b];
  const y = F.linear(x, w, b);
  out.linear = values([y, ...grad(y.mul(y).sum(), inputs)]);
  const noBias = F.linear(x, w);
  out.linearNoBias = values([noBias, ...grad(noBias.sum(), [x, w])]);
  const ff = F.feedForward(x, w, b, w2, b2);
  out.feedForward = values([ff, ...grad(ff.mul(ff).sum(), [x, w, b, w2, b2])]);
  const cat = F.linearOverCat(first, x, w, b);
  out.linearOverCat = values([cat, ...grad(cat.mul(cat).sum(), [x, w, b])]);
  // A second derivative through linear: d/dw of sum(d(sum(y²))/dx).
  const [dx] = grad(F.linear(x, w, b).pow(2).sum(), [x], { createGraph: true });
  out.secondOrder = values(grad(dx!.sum(), [w]));
});
console.log(JSON.stringify({ denseProducts: buildInfo().denseProducts, out }));
