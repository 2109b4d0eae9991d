// One rank of the collectives checks in test/distributed.test.ts (started twice, with MASTER_ADDR,
// MASTER_PORT, WORLD_SIZE and RANK set). Prints one JSON line: what it observed, or the error.
//   collectives   all-reduce (sum, mean), broadcast, all-gather, barrier, gradient averaging
//   die           rank 1 exits right after joining; rank 0's all-reduce must fail naming rank 1
//   hang          rank 1 stops responding; rank 0's all-reduce must time out naming rank 1
import { distEnvFrom, ProcessGroup, EngramError, tensor, type Tensor } from '../src/index.js';

const mode = process.argv[2] ?? 'collectives';
const env = distEnvFrom();
if (!env) throw new Error('WORLD_SIZE is not set');
const pg = ProcessGroup.init(env, { timeoutSeconds: mode === 'hang' ? 4 : 20, bucketBytes: 8 });
const r = pg.rank;
const list = (t: Tensor) => Array.from(t.data() as Float32Array);

try {
  if (mode === 'collectives') {
    const a = tensor([r + 1, 10 * (r + 1)]);
    pg.allReduce([a]);
    const m = tensor([r + 1, 10 * (r + 1)]);
    pg.allReduce([m], { average: true });
    const b = tensor([r, r, r]);
    pg.broadcast([b], 1);
    const gathered = pg.allGather(tensor([[r, -r]])).map((t) => Array.from(t.data() as Float32Array));
    pg.barrier();
    // two parameters whose gradients land in different buckets (8 bytes each)
    const w1 = tensor([1, 2], { requiresGrad: true }), w2 = tensor([3], { requiresGrad: true });
    w1.mul(r + 1).sum().add(w2.mul(2 * (r + 1)).sum()).backward();
    pg.averageGradients([w1, w2]);
    const counts = pg.sumNumbers([r + 0.5, 1]);
    console.log(JSON.stringify({ rank: r, sum: list(a), mean: list(m), broadcast: list(b), gathered, grads: [list(w1.grad!), list(w2.grad!)], counts }));
  } else {
    if (r === 1) {
      if (mode === 'die') process.exit(3);
      await new Promise((resolve) => setTimeout(resolve, 15_000)); // joined, then never calls a collective
      process.exit(0);
    }
    try {
      pg.allReduce([tensor([1])]);
      console.log(JSON.stringify({ rank: r, error: null }));
    } catch (e) {
      const err = e as EngramError;
      console.log(JSON.stringify({ rank: r, error: { kind: err.kind, message: err.message, isEngram: err instanceof EngramError } }));
    }
  }
} finally {
  pg.destroy();
}
