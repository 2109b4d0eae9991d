// What an RMT carries between segments on associative retrieval (issue 13, item 2).
//
//   node dist/scripts/probes/rmt-memory.js --run DIR [--segments N] [--steps S] [--norm post|pre]
//        [--layers L] [--mem M] [--lr LR] [--batch B] [--previous-token true|false] [--json FILE]
//
// Trains (or resumes: the run directory is an ordinary Engram run) an RMT on associative retrieval
// cut into N segments, then measures on held-out samples:
//
//   accuracy by distance   accuracy of the answer grouped by how many segments before the last
//                          one the queried value sits (0: in the last segment itself)
//   gradient into memory   mean over samples of ‖∂ loss / ∂ memory entering segment τ‖, τ = 0..N-1
//                          (BPTT through the whole sample, as in training)
//   attention to memory    per layer, the share of attention weight that the segment's tokens, the
//                          answer position and the write block put on the read block (the memory
//                          coming in; the read block itself sees only the read block), the answer's
//                          on the sequence, and the write block's on its own segment
//   linear probe           for the memory written after segment τ [B, m·H], a multinomial logistic
//                          regression (trained on 4,096 samples, tested on 1,024) predicting the
//                          value of pair j and the key of pair j, for every pair already read
//
// Shapes: B batch, N segments, M segment length, m memory tokens, H hidden, K heads.
import { writeFileSync } from 'node:fs';
import {
  Adam, AssociativeRetrievalTask, F, IGNORE_INDEX, Linear, loadRun, noGrad, Rng, tensor, tidy, train,
  type SegmentModel, type SegmentState, type SegmentTransformer, type Tensor, type TrainConfigInput,
} from '../../src/index.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}
const runDir = arg('run', '');
if (!runDir) throw new Error('--run DIR is required (the run directory to train into or resume)');
const segments = Number(arg('segments', '3'));
const steps = Number(arg('steps', '5000'));
const norm = arg('norm', 'post') as 'post' | 'pre';
const layers = Number(arg('layers', '2'));
const memTokens = arg('mem', 'segment');
const lr = Number(arg('lr', '0.001'));
const batch = Number(arg('batch', '32'));
const previousToken = arg('previous-token', 'true') === 'true';
const jsonOut = arg('json', '');

// The figure3-associative-retrieval recipe's cell, with the knobs above.
const config: TrainConfigInput = {
  model: { kind: 'rmt', layers, dModel: 64, heads: 4, dInner: 128, previousToken, norm, numMemTokens: /^\d+$/.test(memTokens) ? Number(memTokens) : memTokens as 'segment' },
  data: { kind: 'task', name: 'associative-retrieval', options: { numSegments: segments } },
  train: { steps, batchSize: batch, bpttDepth: 'all', seed: 0, evalEvery: 500, evalBatches: 8, checkpointEvery: 500, logEvery: 100 },
  optim: { optimizer: 'adam', lr, clipGradNorm: 1 },
};
const trained = await train(config, { runDir, resume: true, progress: 'auto', label: `rmt ${segments} seg` });
console.log(`trained: step ${trained.step}, held-out accuracy ${trained.metric?.value.toFixed(3)}`);

const run = await loadRun(runDir);
if (run.kind !== 'task' || !(run.task instanceof AssociativeRetrievalTask)) throw new Error(`${runDir} is not an associative-retrieval run`);
const task = run.task;
const model = run.model as SegmentModel<SegmentState> & SegmentTransformer;
const P = task.numPairs, M = task.segmentLength, N = task.numSegments;
const m = model.memoryTokens!.count;
const segmentOf = (position: number): number => Math.floor(position / M);

/** Token rows [B, N·M] of `size` held-out samples (a seed no training batch uses). */
function heldOut(size: number, seed: number): { tokens: Tensor; targets: Tensor; rows: number[][] } {
  const b = task.batch(size, new Rng(seed));
  const rows: number[][] = [];
  const flat = Array.from(b.tokens.data() as BigInt64Array, Number);
  for (let i = 0; i < size; i++) rows.push(flat.slice(i * N * M, (i + 1) * N * M));
  b.answerMask?.dispose();
  return { tokens: b.tokens.keep(), targets: b.targets.keep(), rows };
}
/** Index of the queried pair of each row (the query key is at position 2P). */
const queriedPair = (row: number[]): number => {
  for (let j = 0; j < P; j++) if (row[2 * j] === row[2 * P]) return j;
  throw new Error('no pair matches the query');
};

// ---- accuracy by distance, gradient into memory, attention to memory --------------------------
const evalSet = heldOut(512, 1_000_001);
const attnModules = model.layers.map((layer) => layer.attn);
const report = tidy(() => {
  const memories: Tensor[] = []; // memory entering segment τ, [B, m, H]
  const attention: { answerToMemory: number[]; answerToSequence: number[]; sequenceToMemory: number[]; writeToMemory: number[]; writeToSegment: number[] }[] = [];
  let state = model.initState(512);
  let lastLogits: Tensor | null = null;
  for (let τ = 0; τ < N; τ++) {
    const memory = state.memory!;
    memory.retainGrad();
    memories.push(memory);
    attnModules.forEach((a) => { a.recordAttention = true; });
    const out = model.forward(evalSet.tokens.narrow(1, τ * M, M), state);
    // Layout of the segment's rows and keys: [read m | sequence M | write m] (no cache).
    const perLayer = attnModules.map((a) => {
      const w = a.lastAttention!.mean(1, false); // [B, T, T] averaged over heads
      const share = (rows: [number, number], keys: [number, number]): number =>
        w.narrow(1, rows[0], rows[1]).narrow(2, keys[0], keys[1]).sum(-1, false).mean().item();
      const answerRow = 2 * P + 1 - (N - 1) * M; // the '?' (where the answer is predicted) within the last segment
      return {
        answer: τ === N - 1 ? [share([m + answerRow, 1], [0, m]), share([m + answerRow, 1], [m, M])] : [NaN, NaN],
        sequence: share([m, M], [0, m]),
        writeMem: share([m + M, m], [0, m]),
        writeSeg: share([m + M, m], [m, M]),
      };
    });
    attention.push({
      answerToMemory: perLayer.map((p) => p.answer[0]!),
      answerToSequence: perLayer.map((p) => p.answer[1]!),
      sequenceToMemory: perLayer.map((p) => p.sequence),
      writeToMemory: perLayer.map((p) => p.writeMem),
      writeToSegment: perLayer.map((p) => p.writeSeg),
    });
    lastLogits = out.logits;
    state = out.state;
  }
  attnModules.forEach((a) => { a.recordAttention = false; });
  const targets = evalSet.targets.narrow(1, (N - 1) * M, M);
  const loss = F.crossEntropy(lastLogits!.reshape([-1, lastLogits!.shape[2]!]), targets.reshape([-1]), { ignoreIndex: IGNORE_INDEX });
  loss.backward();
  const gradientIntoMemory = memories.map((mem) => mem.grad!.reshape([512, -1]).norm(2, 1).mean().item() * 512);

  // Accuracy grouped by the segment distance of the queried value.
  const predicted = Array.from(lastLogits!.argmax(-1).data() as BigInt64Array, Number); // [B·M]
  const target = Array.from(targets.data() as BigInt64Array, Number);
  const byDistance = new Map<number, { right: number; total: number }>();
  evalSet.rows.forEach((row, i) => {
    const p = target.findIndex((t, k) => k >= i * M && k < (i + 1) * M && t !== IGNORE_INDEX);
    const distance = N - 1 - segmentOf(2 * queriedPair(row) + 1);
    const cell = byDistance.get(distance) ?? { right: 0, total: 0 };
    cell.total++;
    if (predicted[p] === target[p]) cell.right++;
    byDistance.set(distance, cell);
  });
  const accuracyByDistance = Object.fromEntries([...byDistance].sort((a, b) => a[0] - b[0]).map(([d, c]) => [d, { accuracy: c.right / c.total, samples: c.total }]));
  return { attention, gradientIntoMemory, accuracyByDistance, loss: loss.item() };
});
for (const p of model.parameters()) p.zeroGrad();

// ---- linear probes on the written memory ----------------------------------------------------------
/** The memory written after each segment, flattened: N tensors [B, m·H] (kept). */
function writtenMemories(tokens: Tensor, size: number): Tensor[] {
  return noGrad(() => tidy(() => {
    const out: Tensor[] = [];
    let state = model.initState(size);
    for (let τ = 0; τ < N; τ++) {
      state = model.forward(tokens.narrow(1, τ * M, M), state).state;
      out.push(state.memory!.reshape([size, -1]).keep());
    }
    return out;
  }));
}
const probeTrain = heldOut(4096, 2_000_003), probeTest = heldOut(1024, 3_000_005);
const featTrain = writtenMemories(probeTrain.tokens, 4096), featTest = writtenMemories(probeTest.tokens, 1024);
/** Test accuracy of a logistic regression from features to labels (classes 0..C-1). */
function probe(xTrain: Tensor, yTrain: number[], xTest: Tensor, yTest: number[], classes: number): number {
  const mean = xTrain.mean(0, true).keep(), std = xTrain.std(0, { keepdim: true }).add(1e-5).keep();
  const head = new Linear(xTrain.shape[1]!, classes);
  const opt = new Adam(head.parameters(), { lr: 1e-2 });
  const yT = tensor(yTrain, { dtype: 'int64' }).keep();
  for (let i = 0; i < 300; i++) {
    tidy(() => {
      opt.zeroGrad();
      const logits = head.forward(xTrain.sub(mean).div(std));
      F.crossEntropy(logits, yT).add(head.weight.pow(2).sum().mul(1e-4)).backward();
      opt.step();
    });
  }
  const acc = noGrad(() => tidy(() => {
    const pred = Array.from(head.forward(xTest.sub(mean).div(std)).argmax(-1).data() as BigInt64Array, Number);
    return pred.filter((p, i) => p === yTest[i]).length / yTest.length;
  }));
  head.dispose(); opt.dispose?.(); yT.dispose(); mean.dispose(); std.dispose();
  return acc;
}
const valueOf = (row: number, j: number, set: { rows: number[][] }): number => set.rows[row]![2 * j + 1]! - task.firstValue;
const keyOf = (row: number, j: number, set: { rows: number[][] }): number => set.rows[row]![2 * j]! - 2;
const probes: { afterSegment: number; pair: number; value: number; key: number }[] = [];
for (let τ = 0; τ < N - 1; τ++) {
  for (let j = 0; j < P; j++) {
    if (segmentOf(2 * j + 1) > τ) continue; // pair j's value not read yet
    const value = probe(featTrain[τ]!, probeTrain.rows.map((_, i) => valueOf(i, j, probeTrain)), featTest[τ]!, probeTest.rows.map((_, i) => valueOf(i, j, probeTest)), task.numValues);
    const key = probe(featTrain[τ]!, probeTrain.rows.map((_, i) => keyOf(i, j, probeTrain)), featTest[τ]!, probeTest.rows.map((_, i) => keyOf(i, j, probeTest)), task.numKeys);
    probes.push({ afterSegment: τ, pair: j, value, key });
  }
}

const result = { runDir, segments: N, segmentLength: M, memoryTokens: m, norm, layers, step: run.step, heldOutAccuracy: trained.metric?.value ?? null, ...report, probes };
const f = (x: number): string => (Number.isNaN(x) ? '  -  ' : x.toFixed(3));
console.log(`\nRMT, ${N} segments of ${M}, ${m} memory tokens, ${norm}-LN, ${layers} layers, step ${run.step}: held-out accuracy ${f(result.heldOutAccuracy ?? NaN)}`);
console.log('accuracy by distance of the queried value (segments before the last):',
  Object.entries(report.accuracyByDistance).map(([d, c]) => `${d}: ${f(c.accuracy)} (${c.samples})`).join(', '));
console.log('‖∂ loss/∂ memory entering segment τ‖ (τ = 0..N-1):', report.gradientIntoMemory.map((g) => g.toExponential(2)).join(', '));
report.attention.forEach((a, τ) => {
  console.log(`segment ${τ}: per layer  sequence→memory ${a.sequenceToMemory.map(f).join(' ')} | write→memory ${a.writeToMemory.map(f).join(' ')} | write→segment ${a.writeToSegment.map(f).join(' ')}` +
    (τ === N - 1 ? ` | answer→memory ${a.answerToMemory.map(f).join(' ')} | answer→sequence ${a.answerToSequence.map(f).join(' ')}` : ''));
});
for (const p of probes) console.log(`probe: memory after segment ${p.afterSegment}, pair ${p.pair}: value ${f(p.value)} (chance 0.1), key ${f(p.key)} (chance ${f(1 / task.numKeys)})`);
if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify(result, null, 1)}\n`);
for (const t of [...featTrain, ...featTest, evalSet.tokens, evalSet.targets, probeTrain.tokens, probeTrain.targets, probeTest.tokens, probeTest.targets]) t.dispose();
run.model.dispose();
