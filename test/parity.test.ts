// Parity with the papers' public PyTorch code (../shared/fixtures/parity, its README): per model
// kind, Engram-named weights, tokens, and the log-probs the reference code computed on them, as it
// is ('as-is') and with named semantic changes ('patched:<change>'). Each case's config.json lists
// under engramMatches the variants Engram's default output agrees with today; this test holds
// Engram to them (max |Δ log-prob| over every segment, row, position and vocabulary entry within
// the fixture's threshold: 1e-9 in float64, 1e-4 in float32), with the state carried from segment
// to segment as in training. Options that reproduce the remaining reference semantics are issue
// work still to do; until then the other variants are not asserted.
import test from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createModel, getDefaultDtype, loadSafetensors, noGrad, setDefaultDtype, tensor, tidy,
  type DType, type MemoryState, type ModelConfigInput, type Tensor,
} from '../src/index.js';

const FIXTURES = fileURLToPath(new URL('../../../shared/fixtures/parity/', import.meta.url));

interface FixtureConfig {
  case: string;
  createModel: ModelConfigInput;
  dtypes: DType[];
  thresholds: Record<string, number>;
  engramMatches: Record<string, string[]>;
}

const cases = existsSync(FIXTURES)
  ? readdirSync(FIXTURES).filter((d) => existsSync(join(FIXTURES, d, 'config.json'))).sort()
  : [];

test('parity fixtures: every kind matches the reference variants it is recorded to match', { skip: cases.length === 0 ? `no fixtures at ${FIXTURES}` : false }, async () => {
  const before = getDefaultDtype();
  const checked: string[] = [];
  try {
    for (const name of cases) {
      const dir = join(FIXTURES, name);
      const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as FixtureConfig;
      for (const dtype of cfg.dtypes) {
        const sub = join(dir, dtype);
        const expected = cfg.engramMatches[dtype] ?? [];
        if (!existsSync(sub) || expected.length === 0) continue;
        setDefaultDtype(dtype);
        const model = createModel(cfg.createModel);
        const weights = await loadSafetensors(join(sub, 'model.safetensors'));
        const reference = await loadSafetensors(join(sub, 'reference.safetensors')); // variant -> [S, B, M, V]
        try {
          model.eval();
          model.loadStateDict(weights);
          const tk = JSON.parse(readFileSync(join(sub, 'tokens.json'), 'utf8')) as { tokens: number[][][]; segments: number; batch: number };
          // max |Δ log-prob| per expected variant, over all segments
          const worst = new Map(expected.map((v) => [v, 0]));
          noGrad(() => {
            let state: MemoryState = model.initState(tk.batch);
            for (let s = 0; s < tk.segments; s++) {
              const next: MemoryState = tidy(() => {
                const tokens = tensor(tk.tokens[s]!, { dtype: 'int64' }); // [B, M]
                const out = model.forward(tokens, state);
                const logp = out.logits.double().logSoftmax(-1); // [B, M, V]
                for (const variant of expected) {
                  const ref = reference[variant];
                  assert.ok(ref, `${name}/${dtype}: reference.safetensors has no variant '${variant}'`);
                  worst.set(variant, Math.max(worst.get(variant)!, logp.sub(ref.select(0, s).double()).abs().max().item()));
                }
                return model.detachState(out.state);
              });
              state = next;
            }
          });
          for (const [variant, diff] of worst) {
            assert.ok(diff <= cfg.thresholds[dtype]!, `${name} ${dtype} against '${variant}': max |Δ log-prob| ${diff.toExponential(2)} > ${cfg.thresholds[dtype]}`);
            checked.push(`${name}/${dtype}/${variant}`);
          }
        } finally {
          model.dispose();
          for (const t of [...Object.values(weights), ...Object.values(reference)] as Tensor[]) t.dispose();
        }
      }
    }
  } finally {
    setDefaultDtype(before);
  }
  // Every model family has a case (a fixture folder removed by mistake would otherwise pass quietly).
  for (const kind of ['transformer', 'xl', 'rmt', 'mem-transformer', 'sequential', 'adaptive-span', 'expire-span', 'compressive', 'feedback']) {
    assert.ok(cases.some((c) => c === kind || c.startsWith(`${kind}-`)), `no parity case for ${kind}`);
  }
  assert.ok(checked.length >= 20, `only ${checked.length} variant checks ran`);
});
