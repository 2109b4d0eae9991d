// Built-in experiment recipes. The default is what `npm start` and a bare `engram experiment` run:
// RMT against Transformer-XL and the memory-less baseline on copy split into 1, 2, 4 and 6 segments,
// the shape of the RMT paper's first table (SPEC §9) at a size that trains in a few minutes on
// two CPU cores. recipes/*.json hold the same recipe and the paper-sized ones.
import type { RecipeInput } from './experiment.js';

export const defaultRecipe: RecipeInput = {
  name: 'copy-rmt-vs-xl',
  description:
    'Copy (SPEC §8) with 8 source symbols (24 tokens: source, start token, the source twice) cut into 1, 2, 4 and 6 segments. ' +
    'Baseline: a transformer that sees one segment; Transformer-XL: a cache of one segment (memLen = segment length); ' +
    'RMT: 8 memory tokens carried across segments, BPTT through the whole sample. 2 layers, d_model 64, Adam 1e-3, 600 steps of 32 samples; accuracy on 256 held-out samples.',
  base: {
    model: { layers: 2, dModel: 64, heads: 4, dInner: 128 },
    data: { kind: 'task', name: 'copy', options: { sourceLength: 8 } },
    train: { steps: 600, batchSize: 32, bpttDepth: 'all', seed: 0, evalEvery: 100, evalBatches: 8, checkpointEvery: 100, logEvery: 10 },
    optim: { optimizer: 'adam', lr: 1e-3, clipGradNorm: 1 },
  },
  models: [
    { name: 'Transformer (baseline)', config: { model: { kind: 'transformer' } } },
    { name: 'Transformer-XL', config: { model: { kind: 'xl' } } },
    { name: 'RMT', config: { model: { kind: 'rmt', numMemTokens: 8 } } },
  ],
  settingsTitle: 'segments',
  settings: [1, 2, 4, 6].map((n) => ({ name: String(n), x: n, config: { data: { options: { numSegments: n } } } })),
  metric: 'accuracy',
};

export const builtinRecipes: Record<string, RecipeInput> = { [defaultRecipe.name]: defaultRecipe };
