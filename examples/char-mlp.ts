// The engine end to end, before any model of Engram's own: a character-level MLP language model
// (Bengio et al. 2003 shape: embed the previous C characters, one hidden layer, softmax) trained
// with Adam, warmup + cosine LR and gradient clipping on tinyshakespeare, then evaluated in bits
// per character on a held-out tail and saved as safetensors.
//
//   node dist/examples/char-mlp.js [--data FILE] [--steps N] [--context C] [--out DIR] [--seed S]
import { parseArgs } from 'node:util';
import { readFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  tensor, randn, zeros, tidy, noGrad, manualSeed, randint, F, configError, ioError, saveSafetensors,
  AdamW, clipGradNorm, LrScheduler, cosineDecay, type Tensor,
} from '../src/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values: args } = parseArgs({
  options: {
    data: { type: 'string', default: join(root, '..', 'shared', 'data', 'tinyshakespeare.txt') },
    steps: { type: 'string', default: '10000' },
    context: { type: 'string', default: '16' },
    batch: { type: 'string', default: '128' },
    out: { type: 'string', default: join(root, 'runs', 'char-mlp') },
    seed: { type: 'string', default: '0' },
  },
});
const int = (name: keyof typeof args): number => {
  const v = Number(args[name]);
  if (!Number.isInteger(v) || v <= 0) throw configError('char-mlp', `--${name} must be a positive integer, got '${args[name]}'`);
  return v;
};
const steps = int('steps'), context = int('context'), batch = int('batch');
manualSeed(Number(args.seed));

if (!existsSync(args.data!)) throw ioError('char-mlp', `--data: no such file ${args.data}`);
const text = await readFile(args.data!, 'utf8');
const vocab = [...new Set(text)].sort();
const ids = Int32Array.from(text, (c) => vocab.indexOf(c));
const split = Math.floor(ids.length * 0.9);
const train = tensor(ids.subarray(0, split)).long().keep();
const heldOut = tensor(ids.subarray(split)).long().keep();
console.log(`data: ${args.data} (${text.length} chars, vocab ${vocab.length}); train ${split}, held-out ${ids.length - split}`);

// Parameters. Shapes: E [V, d], W1 [h, C*d], W2 [V, h].
const d = 32, hidden = 512, V = vocab.length;
const param = (t: Tensor) => t.requiresGrad_().keep();
const params = {
  embed: param(randn([V, d]).mul(0.1)),
  w1: param(randn([hidden, context * d]).mul(1 / Math.sqrt(context * d))),
  b1: param(zeros([hidden])),
  w2: param(randn([V, hidden]).mul(1 / Math.sqrt(hidden))),
  b2: param(zeros([V])),
};

// windows(data, starts [B]) -> x [B, C] (previous characters), y [B] (next character)
function windows(data: Tensor, starts: Tensor): { x: Tensor; y: Tensor } {
  const offsets = tensor(Array.from({ length: context }, (_, i) => i), { dtype: 'int64' });
  const idx = starts.unsqueeze(1).add(offsets); // [B, C]
  return { x: data.index([idx]), y: data.index([starts.add(context)]) };
}
function logits(x: Tensor): Tensor {
  const h = F.embedding(x, params.embed).flatten(1); // [B, C*d]
  return F.linear(F.linear(h, params.w1, params.b1).tanh(), params.w2, params.b2); // [B, V]
}

const optimizer = new AdamW(Object.values(params), { lr: 3e-3, weightDecay: 0.01 });
const scheduler = new LrScheduler(optimizer, cosineDecay({ totalSteps: steps, warmupSteps: 200, minLr: 1e-4 }));
const started = performance.now();
for (let step = 1; step <= steps; step++) {
  const loss = tidy(() => {
    const { x, y } = windows(train, randint(0, split - context - 1, [batch]));
    const loss = F.crossEntropy(logits(x), y);
    optimizer.zeroGrad();
    loss.backward();
    clipGradNorm(Object.values(params), 1.0);
    optimizer.step();
    scheduler.step();
    return loss.item();
  });
  if (step % 1000 === 0 || step === 1) {
    const s = (performance.now() - started) / 1000;
    console.log(`step ${step}/${steps}  loss ${loss.toFixed(3)}  bpc ${(loss / Math.LN2).toFixed(3)}  ${((step * batch) / s).toFixed(0)} predictions/s`);
  }
}

// Held-out bits per character over every window of the tail (in chunks).
const bpc = noGrad(() => {
  let total = 0, count = 0;
  const n = heldOut.shape[0]! - context;
  for (let start = 0; start < n; start += 4096) {
    total += tidy(() => {
      const starts = tensor(Array.from({ length: Math.min(4096, n - start) }, (_, i) => start + i), { dtype: 'int64' });
      const { x, y } = windows(heldOut, starts);
      return F.crossEntropy(logits(x), y, { reduction: 'sum' }).item();
    });
    count += Math.min(4096, n - start);
  }
  return total / count / Math.LN2;
});
const uniform = Math.log2(V);
console.log(`held-out bpc ${bpc.toFixed(3)} (uniform over the vocabulary: ${uniform.toFixed(3)})`);

await mkdir(resolve(args.out!), { recursive: true });
const file = join(resolve(args.out!), 'weights.safetensors');
await saveSafetensors(file, params, { vocab: JSON.stringify(vocab.join('')), context: String(context) });
console.log(`saved ${file}`);
