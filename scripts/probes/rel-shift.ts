// The relative position scores' shifts, each one native op: F.relShiftAdd (content + Transformer-XL's
// rel_shift) at Transformer-XL's sizes in bench:models (SPEC §10: [16, 4, 128, 256], a cache of
// 128) and on the corridor at 254 ([32, 4, 64, 256]), and F.skewAdd (content + relSkew's read of
// [.., Tq, Tk + Tq − 1] scores, relative positions that see later keys) at MemTransformer's
// ([16, 4, 144, 144], 16 memory tokens; its forward is ATen's add over a strided view). Forward, and forward + backward (the gradient to x; content's
// is the incoming gradient), fastest of `reps`. The build under test is the one loaded: compare two
// builds by running this with ENGRAM_ADDON=<path of each engram.node> in turn.
//
//   node dist/scripts/probes/rel-shift.js [--reps 30] [--threads 2]
import { F, grad, randn, setNumThreads, tidy, type Tensor } from '../../src/index.js';

const arg = (name: string, fallback: string) => { const i = process.argv.indexOf(`--${name}`); return i >= 0 ? process.argv[i + 1]! : fallback; };
const reps = Number(arg('reps', '30'));
setNumThreads(Number(arg('threads', '2')));

const cases = [
  { label: 'relShiftAdd, xl, bench:models', shape: [16, 4, 128, 256], width: 256, op: F.relShiftAdd },
  { label: 'relShiftAdd, xl, corridor 254', shape: [32, 4, 64, 256], width: 256, op: F.relShiftAdd },
  { label: 'skewAdd, mem-transformer, bench:models', shape: [16, 4, 144, 144], width: 287, op: (c: Tensor, x: Tensor) => F.skewAdd(c, x, 143, 286) },
] as const;
for (const { label, shape, width, op } of cases) {
  const content = randn([...shape]).keep();
  const x = randn([...shape.slice(0, 3), width]).requiresGrad_().keep();
  const upstream = randn([...shape]).keep();
  let forward = Infinity, both = Infinity;
  for (let r = 0; r < reps; r++) {
    tidy(() => {
      const t0 = performance.now();
      const y = op(content, x);
      y.view(-1).narrow(0, 0, 1).item();
      const t1 = performance.now();
      const [g] = grad([y], [x], { gradOutputs: [upstream] });
      g!.view(-1).narrow(0, 0, 1).item();
      const t2 = performance.now();
      forward = Math.min(forward, t1 - t0);
      both = Math.min(both, t2 - t0);
    });
  }
  console.log(`${label} [${shape.join(', ')}]: forward ${forward.toFixed(2)} ms, forward + backward ${both.toFixed(2)} ms (fastest of ${reps})`);
}
