// Engram from your own project (README, "use it from your project"; test/package.test.ts runs it).
import { createModel, train } from 'engram';

// A model by kind: the config's fields are those of its kind (memLen for 'xl', numMemTokens for 'rmt').
const xl = createModel({ kind: 'xl', vocabSize: 16, layers: 2, dModel: 32, heads: 2, dInner: 64, memLen: 8 });
console.log(`xl: ${xl.numParameters()} parameters`);
// Training from a configuration: an RMT on the copy task cut into 2 segments (about 300 steps learn it).
const result = await train({
  model: { kind: 'rmt', layers: 1, dModel: 32, heads: 2, dInner: 64, numMemTokens: 4 },
  data: { kind: 'task', name: 'copy', options: { sourceLength: 4, numSegments: 2 } },
  train: { steps: 2, batchSize: 8, evalEvery: 0 },
});
console.log(`rmt: ${result.parameters} parameters, ${result.metric?.name} ${result.metric?.value.toFixed(3)} after ${result.step} steps`);
xl.dispose();
