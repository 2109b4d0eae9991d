// The PyTorch twin (python/engram_torch.py) against Engram: for every model kind, and the variants
// that take other code paths (post- and pre-LN, previousToken, RMT with and without a cache,
// Compressive's three compression functions and its remainder path, Expire-Span with memories
// dropped and with drop off, Adaptive-Span trimming static and dynamic spans, Feedback with a span
// shorter than a segment), a tiny Engram model with perturbed weights is saved as a model folder,
// run over 4 segments with the state carried (eval mode, batch 2), and the twin loads the folder
// and must give the same logits: max |Δ| <= 1e-9 in float64, <= 1e-4 in float32, and the same
// state shapes. In training mode (dropout 0) the objective, every segment's auxiliary loss (span
// losses, Compressive's reconstruction loss) and every parameter's gradient must agree as well.
// One Python process checks every case. Skipped when no Python can import torch.
// Cached decoding: for every case, Engram's Decoder (cached: incremental decoding) reads a prompt
// across a segment boundary and decodes greedily past 3 more; the twin's Decoder must give the same
// tokens and logits (float32, <= 1e-4), on its cached path for every kind that has one.
// ENGRAM_TWIN_VERBOSE=1 prints the driver's report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CharVocab, createModel, crossEntropySum, Decoder, loadModel, manualSeed, tidy, zeros, noGrad, randint, randn, resolveTrainConfig, saveModel, saveSafetensors, setDefaultDtype, stack, tensor,
  type DType, type ModelConfigInput, type SegmentModel, type Tensor,
} from '../src/index.js';
import { pythonWithTorch } from './helpers.js';

const twin = fileURLToPath(new URL('../../python/engram_torch.py', import.meta.url));
// ENGRAM_TWIN_PYTHON: another Python to check the twin with (e.g. one with torch 2.x)
const py = process.env.ENGRAM_TWIN_PYTHON ?? pythonWithTorch();
const skip = py ? false : 'no Python with torch (/usr/bin/python3 -c "import torch" fails): install python3-torch to compare the PyTorch twin';

const V = 23;
const VOCAB = 'abcdefghijklmnopqrstuv'; // 22 characters + the unknown id = V
const SEGMENTS = 4, BATCH = 2, M = 4;
const tiny = { vocabSize: V, layers: 2, dModel: 16, heads: 2, dInner: 24 };

interface Case {
  name: string;
  config: ModelConfigInput;
  /** Sets weights a plain perturbation would not reach (spans). */
  adjust?: (model: SegmentModel) => void;
  /** Checks on Engram's state after the last segment (that the path under test was taken). */
  check?: (state: Record<string, unknown>) => void;
}

const set = (model: SegmentModel, name: string, values: number[]) =>
  noGrad(() => { model.stateDict()[name]!.copy_(tensor(values, { dtype: model.stateDict()[name]!.dtype })); });

const cacheLengths = (state: Record<string, unknown>, key = 'cache') => (state[key] as Tensor[]).map((t) => t.shape[1]!);

const CASES: Case[] = [
  { name: 'transformer', config: { ...tiny, kind: 'transformer' } },
  { name: 'transformer-pre-prev', config: { ...tiny, kind: 'transformer', norm: 'pre', previousToken: true } },
  { name: 'xl', config: { ...tiny, kind: 'xl', memLen: 6 } },
  { name: 'xl-pre-short', config: { ...tiny, kind: 'xl', memLen: 3, norm: 'pre' } },
  { name: 'mem-transformer', config: { ...tiny, kind: 'mem-transformer', numMemTokens: 2 } },
  { name: 'mem-transformer-cache-pre', config: { ...tiny, kind: 'mem-transformer', numMemTokens: 1, memLen: 4, norm: 'pre' } },
  { name: 'mem-bottleneck', config: { ...tiny, kind: 'mem-bottleneck', numMemTokens: 2, memLen: 4, previousToken: true } },
  { name: 'rmt', config: { ...tiny, kind: 'rmt', numMemTokens: 2 } },
  { name: 'rmt-cache', config: { ...tiny, kind: 'rmt', numMemTokens: 3, memLen: 5 } },
  { name: 'rmt-m1-pre', config: { ...tiny, kind: 'rmt', numMemTokens: 1, norm: 'pre' } },
  { name: 'sequential', config: { ...tiny, kind: 'sequential', memLen: 6 } },
  { name: 'sequential-pre-short-prev', config: { ...tiny, kind: 'sequential', memLen: 3, norm: 'pre', previousToken: true } },
  {
    name: 'adaptive-span-trimmed', config: { ...tiny, kind: 'adaptive-span', memLen: 16, adaptiveSpan: { ramp: 2, trimStep: 2 } },
    adjust: (m) => { set(m, 'adaptiveSpans.0.spanRatio', [0.1, 0.25]); set(m, 'adaptiveSpans.1.spanRatio', [0.6, 0.05]); },
  },
  { name: 'adaptive-span-dynamic-pre', config: { ...tiny, kind: 'adaptive-span', memLen: 12, norm: 'pre', adaptiveSpan: { ramp: 3, trimStep: 4, dynamic: true, init: 0.3 } } },
  {
    name: 'expire-span-dropping', config: { ...tiny, kind: 'expire-span', memLen: 16, expireSpan: { ramp: 2, initFraction: 0.1 } },
    // memories expire and are dropped: far fewer kept than the 16 positions seen
    check: (s) => assert.ok(cacheLengths(s).every((n) => n < SEGMENTS * M - M), `cache lengths ${cacheLengths(s)}`),
  },
  { name: 'expire-span-pre', config: { ...tiny, kind: 'expire-span', memLen: 8, norm: 'pre', expireSpan: { ramp: 3, initFraction: 0.4, preDiv: 2 } } },
  {
    name: 'expire-span-no-drop', config: { ...tiny, kind: 'expire-span', memLen: 6, expireSpan: { ramp: 2, drop: false } },
    check: (s) => assert.deepEqual(cacheLengths(s), [7, 7]),
  },
  { name: 'compressive-mean', config: { ...tiny, kind: 'compressive', memLen: 4, compressive: { rate: 2, fn: 'mean', compressedLen: 3 } } },
  { name: 'compressive-max', config: { ...tiny, kind: 'compressive', memLen: 4, compressive: { rate: 2, fn: 'max' } } },
  {
    name: 'compressive-conv-pre-remainder', config: { ...tiny, kind: 'compressive', memLen: 3, norm: 'pre', compressive: { rate: 3, fn: 'conv', compressedLen: 2 } },
    check: (s) => assert.ok((s.compressed as Tensor[]).every((t) => t.shape[1] === 2)),
  },
  { name: 'feedback', config: { ...tiny, kind: 'feedback', memLen: 6 } },
  { name: 'feedback-pre-short', config: { ...tiny, kind: 'feedback', memLen: 3, norm: 'pre', previousToken: true } },
];

/** Every parameter moved off its initialisation (LayerNorms, biases, zero-initialised predictors and merge logits). */
function perturb(model: SegmentModel): void {
  noGrad(() => {
    for (const [name, p] of model.namedParameters()) {
      const scale = /spanPredictors\..*weight/.test(name) ? 0.35 : /mergeLogits|\.u$|\.v$/.test(name) ? 0.5 : /spanRatio|spanBias/.test(name) ? 0 : 0.2;
      if (scale > 0) p.add_(randn(p.shape).mul(scale));
    }
  });
}

/** The shapes of a state's tensors by key (lists per layer), as the driver reports the twin's. */
function stateShapes(state: Record<string, unknown>): Record<string, number[][] | null> {
  const shapes = (v: unknown) => (v === null ? null : (Array.isArray(v) ? (v as Tensor[]) : [v as Tensor]).map((t) => [...t.shape]));
  return Object.fromEntries(Object.entries(state).map(([k, v]) => [k, shapes(v)]));
}

/**
 * Training mode over the same segments (dropout 0, so deterministic): the objective the trainer
 * backpropagates, Σ_s CE_s / (B·M) + aux_s with the state carried attached (full BPTT), each
 * segment's auxiliary loss (NaN: none), and the gradient of every parameter ('grad.<name>').
 */
function trainingPass(model: SegmentModel, tokens: Tensor): Record<string, Tensor> {
  model.train();
  const targets = randint(0, V, [SEGMENTS, BATCH, M], { dtype: 'int64' });
  const out: Record<string, Tensor> = { targets };
  tidy(() => {
    let state = model.initState(BATCH);
    let objective: Tensor | null = null;
    const aux: number[] = [];
    for (let s = 0; s < SEGMENTS; s++) {
      const o = model.forward(tokens.select(0, s), state);
      const term = crossEntropySum(o.logits, targets.select(0, s)).div(BATCH * M);
      const total = o.auxLoss ? term.add(o.auxLoss) : term;
      objective = objective ? objective.add(total) : total;
      aux.push(o.auxLoss ? o.auxLoss.item() : NaN);
      state = o.state;
    }
    objective!.backward();
    out['train.objective'] = objective!.detach().keep();
    out['train.aux'] = tensor(aux, { dtype: 'float64' }).keep();
    for (const [name, p] of model.namedParameters()) out[`grad.${name}`] = (p.grad ?? zeros(p.shape)).clone().keep();
  });
  model.eval();
  return out;
}

/** Writes the case's model folder and Engram's logits; returns the parameter count and the final state's shapes. */
/** The case's model (seeded, perturbed, eval mode) saved as a model folder in dir, in the current default dtype. */
async function saveCaseModel(dir: string, c: Case, seed: number): Promise<SegmentModel> {
  manualSeed(seed);
  const model = createModel(c.config);
  perturb(model);
  c.adjust?.(model);
  model.eval();
  const { vocabSize: _, ...modelInput } = c.config; // the training config takes it from the data
  const training = resolveTrainConfig({ model: modelInput, data: { kind: 'lm', corpus: 'unused.txt', segmentLength: M }, train: { bpttDepth: 1 } });
  await saveModel(model, dir, { training, vocab: VOCAB });
  return model;
}

async function writeCase(dir: string, c: Case, dtype: DType): Promise<{ params: number; shapes: Record<string, number[][] | null> }> {
  setDefaultDtype(dtype);
  try {
    const model = await saveCaseModel(dir, c, 7);
    const tokens = randint(0, V, [SEGMENTS, BATCH, M], { dtype: 'int64' });
    let shapes: Record<string, number[][] | null> = {};
    const logits = noGrad(() => {
      let state = model.initState(BATCH);
      const out: Tensor[] = [];
      for (let s = 0; s < SEGMENTS; s++) {
        const o = model.forward(tokens.select(0, s), state);
        out.push(o.logits);
        state = o.state;
      }
      c.check?.(state);
      shapes = stateShapes(state);
      return stack(out); // [S, B, M, V]
    });
    const train = trainingPass(model, tokens);
    await saveSafetensors(join(dir, 'engram.safetensors'), { tokens, logits, ...train });
    const params = model.numParameters();
    model.dispose();
    return { params, shapes };
  } finally {
    setDefaultDtype('float32');
  }
}

const BPC_TEXT = 'abc dcba'; // ' ' is not in the vocabulary: the unknown id

/** Engram's bits per character of text from a model folder: each character after the first predicted, segment by segment, state carried. */
async function engramBitsPerCharacter(dir: string, text: string): Promise<number> {
  setDefaultDtype('float64');
  const { model, config } = await loadModel(dir);
  try {
    const ids = Array.from(CharVocab.fromString(config.vocab!).encode(text));
    let state = model.initState(1);
    let total = 0;
    for (let start = 0; start < ids.length - 1; start += config.segmentLength) {
      const input = ids.slice(start, Math.min(start + config.segmentLength, ids.length - 1));
      const target = ids.slice(start + 1, start + 1 + input.length);
      const out = noGrad(() => model.forward(tensor([input], { dtype: 'int64' }), state)); // a few tiny tensors, left to the GC
      total += crossEntropySum(out.logits, tensor([target], { dtype: 'int64' })).item();
      state = out.state;
    }
    return total / (ids.length - 1) / Math.LN2;
  } finally {
    model.dispose();
    setDefaultDtype('float32');
  }
}

// One process for every case: load each folder, run the segments, report max |Δ logits|; then the
// twin's refusals and its command line.
const DRIVER = `
import io, json, sys, contextlib, torch
sys.path.insert(0, sys.argv[1])
import engram_torch as et
cases = json.loads(sys.stdin.read())
out = {"diffs": {}, "shapes": {}, "train": {}}
torch.manual_seed(0)
for case in cases:
    model = et.load_model(case["dir"])
    data, _ = et.read_safetensors(case["dir"] + "/engram.safetensors")
    state = model.init_state(data["tokens"].shape[1])
    worst = 0.0
    with torch.no_grad():
        for s in range(data["tokens"].shape[0]):
            logits, state, _ = model(data["tokens"][s], state)
            assert logits.dtype == data["logits"].dtype, (logits.dtype, data["logits"].dtype)
            worst = max(worst, float((logits - data["logits"][s]).abs().max()))
    out["diffs"][case["name"]] = worst
    # training mode (dropout 0): the objective, each segment's auxiliary loss, every parameter's gradient
    model.train()
    state = model.init_state(data["tokens"].shape[1])
    objective, aux = 0, []
    for s in range(data["tokens"].shape[0]):
        logits, state, aux_loss = model(data["tokens"][s], state)
        V = logits.shape[-1]
        term = torch.nn.functional.cross_entropy(logits.reshape(-1, V), data["targets"][s].reshape(-1), reduction="sum") / data["targets"][s].numel()
        objective = objective + (term + aux_loss if aux_loss is not None else term)
        aux.append(float("nan") if aux_loss is None else float(aux_loss))
    objective.backward()
    grads = {n: (p.grad if p.grad is not None else torch.zeros_like(p)) for n, p in model.named_parameters()}
    out["train"][case["name"]] = {
        "objective": abs(float(objective) - float(data["train.objective"])),
        "aux": [a != a if b != b else abs(a - b) for a, b in zip(aux, data["train.aux"].tolist())],
        "grad": max(float((grads[n] - data["grad." + n]).abs().max()) for n in grads),
        "names": sorted(grads) == sorted(k[5:] for k in data if k.startswith("grad.")),
    }
    shapes = lambda v: None if v is None else [list(t.shape) for t in (v if isinstance(v, list) else [v])]
    out["shapes"][case["name"]] = {k: shapes(v) for k, v in state.items()}
refusals = []
base = {"kind": "sequential", "vocabSize": 5, "memLen": 4}
for bad in [{"initialMemory": "zeros"}, {"norm": "rms"}, {"kind": "compressive", "compressive": {"fn": "attention"}},
            {"kind": "expire-span", "expireSpan": {"ramp": 2, "windowIncludesSelf": False}}, {"window": "before-query"},
            {"window": "with-query", "initialMemory": "empty"}]:
    try:
        et.build_model({**base, **bad})
        refusals.append(None)
    except et.ConfigError as e:
        refusals.append(str(e))
out["refusals"] = refusals
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    et._main([cases[0]["dir"], "--text", "${BPC_TEXT}"])
out["main"] = buf.getvalue()
print(json.dumps(out))
`;

test('the PyTorch twin gives Engram\'s logits for every kind (float64 <= 1e-9, float32 <= 1e-4)', { skip }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'engram-twin-'));
  try {
    const cases: { name: string; dir: string; dtype: DType; params: number; shapes: Record<string, number[][] | null>; tol: number }[] = [];
    for (const dtype of ['float64', 'float32'] as const) {
      for (const c of CASES) {
        const dir = join(root, `${c.name}-${dtype}`);
        const { params, shapes } = await writeCase(dir, c, dtype);
        cases.push({ name: `${c.name} ${dtype}`, dir, dtype, params, shapes, tol: dtype === 'float64' ? 1e-9 : 1e-4 });
      }
    }
    const r = spawnSync(py!, ['-c', DRIVER, join(twin, '..')], { input: JSON.stringify(cases), encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, `the twin's driver failed:\n${r.stderr}`);
    const out = JSON.parse(r.stdout) as { diffs: Record<string, number>; train: Record<string, { objective: number; aux: (number | boolean)[]; grad: number; names: boolean }>; shapes: Record<string, unknown>; refusals: (string | null)[]; main: string };
    if (process.env.ENGRAM_TWIN_VERBOSE) console.log(JSON.stringify(out, null, 1));
    const failures = cases.filter((c) => !(out.diffs[c.name]! <= c.tol)).map((c) => `${c.name}: max |Δ| ${out.diffs[c.name]} > ${c.tol}`);
    assert.deepEqual(failures, [], failures.join('\n'));
    assert.equal(Object.keys(out.diffs).length, cases.length);
    // training mode: the same objective, auxiliary losses (or none) and gradients
    const trainFailures = cases.flatMap((c) => {
      const t = out.train[c.name]!;
      const bad = [t.objective, t.grad, ...t.aux.map((a) => (a === true ? 0 : a === false ? Infinity : a))].some((d) => !(Number(d) <= c.tol));
      return bad || !t.names ? [`${c.name}: training ${JSON.stringify(t)}`] : [];
    });
    assert.deepEqual(trainFailures, [], trainFailures.join('\n'));
    // the same memory after the last segment (e.g. Expire-Span's kept memories per layer, which the logits cannot show)
    for (const c of cases) assert.deepEqual(out.shapes[c.name], c.shapes, `${c.name}: the state's shapes`);
    // a field or value the twin does not implement is refused, naming it
    assert.match(out.refusals[0]!, /initialMemory="zeros"/);
    assert.match(out.refusals[1]!, /norm="rms"/);
    assert.match(out.refusals[2]!, /compressive\.fn="attention"/);
    assert.match(out.refusals[3]!, /windowIncludesSelf=false/);
    assert.match(out.refusals[4]!, /window="before-query"/); // a reference-reproducing option at another value than Engram's
    assert.equal(out.refusals[5], null); // ... and at Engram's own, accepted
    // the command line: the parameter count as Engram counts it, and a bits-per-character figure
    assert.match(out.main, new RegExp(`kind transformer, ${cases[0]!.params.toLocaleString('en-US')} parameters`));
    const bpc = /bits per character: (\d+\.\d+) over 8 characters/.exec(out.main);
    assert.ok(bpc, out.main);
    assert.equal(bpc[1], (await engramBitsPerCharacter(cases[0]!.dir, BPC_TEXT)).toFixed(4));
    // the twin ships with the package
    const pkg = JSON.parse(readFileSync(join(twin, '..', '..', 'package.json'), 'utf8')) as { files: string[] };
    assert.ok(pkg.files.includes('python'), "package.json's files include python/");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

// Greedy decoding: a prompt of 6 tokens (a segment boundary inside it), then 14 tokens each the
// argmax of the logits before it: 19 positions fed, boundaries (commits) after 4, 8, 12 and 16.
const PROMPT = [3, 5, 7, 1, 2, 9];
const GENERATED = 14;
// Kinds whose twin decodes on the recompute path (no open_segment in the twin): checked against Engram's cached path all the same.
const TWIN_RECOMPUTES = new Set(['mem-bottleneck', 'feedback']);

/** Engram's cached greedy decoding of the case's model: the tokens and the logits [GENERATED, V] each was chosen from. */
function engramGreedy(model: SegmentModel): { tokens: number[]; logits: Tensor } {
  const decoder = new Decoder(model, M);
  assert.equal(decoder.cached, true, `${model.config.kind}: Engram decodes on the cached path`);
  try {
    const tokens: number[] = [];
    const rows = tidy(() => {
      let logits = decoder.feed([PROMPT]).select(0, 0).select(0, PROMPT.length - 1); // [V]
      const out: Tensor[] = [];
      for (let i = 0; i < GENERATED; i++) {
        if (i > 0) logits = decoder.feed([[tokens[i - 1]!]]).select(0, 0).select(0, 0);
        out.push(logits);
        tokens.push(logits.argmax(0).item());
      }
      return stack(out); // [GENERATED, V]
    });
    assert.equal(decoder.position, PROMPT.length + GENERATED - 1);
    return { tokens, logits: rows };
  } finally {
    decoder.dispose();
  }
}

const DECODE_DRIVER = `
import json, sys, torch
sys.path.insert(0, sys.argv[1])
import engram_torch as et
cases = json.loads(sys.stdin.read())
out = {}
for case in cases:
    model = et.load_model(case["dir"])
    data, _ = et.read_safetensors(case["dir"] + "/decode.safetensors")
    prompt, count = data["prompt"].tolist(), data["tokens"].numel()
    decoder_cached = et.Decoder(model, case["segment"]).cached
    tokens, logits = et.greedy(model, case["segment"], prompt, count)
    # the twin's own recompute path agrees with its cached one
    again, recomputed = et.greedy(model, case["segment"], prompt, count, cached=False)
    out[case["name"]] = {"cached": decoder_cached, "tokens": tokens, "diff": float((logits - data["logits"]).abs().max()),
                         "recompute": again == tokens and float((recomputed - logits).abs().max()) <= 1e-5}
print(json.dumps(out))
`;

test("the twin's cached decoding gives Engram's greedy tokens and logits across 4 segment boundaries (float32 <= 1e-4)", { skip }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'engram-twin-decode-'));
  try {
    const cases: { name: string; dir: string; segment: number; tokens: number[] }[] = [];
    for (const c of CASES) {
      const dir = join(root, c.name);
      const model = await saveCaseModel(dir, c, 11);
      try {
        const { tokens, logits } = engramGreedy(model);
        await saveSafetensors(join(dir, 'decode.safetensors'), { prompt: tensor([PROMPT], { dtype: 'int64' }).view(-1), tokens: tensor([tokens], { dtype: 'int64' }).view(-1), logits });
        logits.dispose();
        cases.push({ name: c.name, dir, segment: M, tokens });
      } finally {
        model.dispose();
      }
    }
    const r = spawnSync(py!, ['-c', DECODE_DRIVER, join(twin, '..')], { input: JSON.stringify(cases), encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, `the twin's decoding driver failed:\n${r.stderr}`);
    const out = JSON.parse(r.stdout) as Record<string, { cached: boolean; tokens: number[]; diff: number; recompute: boolean }>;
    if (process.env.ENGRAM_TWIN_VERBOSE) console.log(JSON.stringify(out, null, 1));
    const failures = cases.flatMap((c) => {
      const t = out[c.name]!;
      const kind = CASES.find((x) => x.name === c.name)!.config.kind;
      const bad: string[] = [];
      if (t.cached !== !TWIN_RECOMPUTES.has(kind)) bad.push(`twin cached path ${t.cached}`);
      if (JSON.stringify(t.tokens) !== JSON.stringify(c.tokens)) bad.push(`tokens ${t.tokens} != Engram's ${c.tokens}`);
      if (!(t.diff <= 1e-4)) bad.push(`max |Δ logits| ${t.diff} > 1e-4`);
      if (!t.recompute) bad.push("the twin's recompute path differs from its cached path");
      return bad.length ? [`${c.name}: ${bad.join('; ')}`] : [];
    });
    assert.deepEqual(failures, [], failures.join('\n'));
    // xl, rmt and expire-span each decode a stream of varied tokens in some case (greedy decoding of
    // a random model often settles on one token, which would leave the positions less tested)
    for (const kind of ['xl', 'rmt', 'expire-span']) {
      const own = cases.filter((c) => CASES.find((x) => x.name === c.name)!.config.kind === kind);
      assert.ok(own.some((c) => new Set(c.tokens).size > 3), `${kind}: ${own.map((c) => `${c.name} ${c.tokens}`).join('; ')}`);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("bench/models_twin.py standalone: one run of a kind at SPEC §10's sizes, and with --profile torch.profiler's top ops before its JSON line", { skip }, () => {
  const script = fileURLToPath(new URL('../../bench/models_twin.py', import.meta.url));
  const r = spawnSync(py!, [script, '--kind', 'transformer', '--threads', '1', '--vocab', '32', '--warmup', '0', '--steps', '1', '--rounds', '1', '--profile'],
    { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  const last = JSON.parse(lines.pop()!) as { kind: string; tokensPerSec: number; params: number };
  assert.equal(last.kind, 'transformer');
  assert.ok(last.tokensPerSec > 0 && last.params > 0);
  assert.match(lines.join('\n'), /aten::mm/, 'the profile table lists the matrix products');
  assert.match(lines.join('\n'), /Self CPU time total/);
});
