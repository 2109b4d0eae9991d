// ModelConfig and createModel's input are unions discriminated on `kind`: a wrong kind, or a
// mechanism's options on another kind, are compile-time errors for a TypeScript user. The lines
// marked ts-expect-error are the test: `tsc -p .` (the build) fails if any of them stops being an
// error. At run time the same configurations are rejected with a message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createModel, resolveModelConfig, type ModelConfig } from '../src/index.js';

test('a kind that does not exist and options on the wrong kind do not compile, and throw at run time', () => {
  // @ts-expect-error: 'lstm' is not a model kind
  assert.throws(() => createModel({ kind: 'lstm', vocabSize: 10 }), /kind 'lstm' is not one of/);
  // @ts-expect-error: expireSpan options belong to kind 'expire-span'
  assert.throws(() => createModel({ kind: 'xl', vocabSize: 10, memLen: 4, expireSpan: { ramp: 4 } }), /belong to kind 'expire-span'/);
  // @ts-expect-error: an option of the mechanism that it does not have
  assert.throws(() => createModel({ kind: 'expire-span', vocabSize: 10, memLen: 4, expireSpan: { span: 4 } }), /expireSpan/);
  // @ts-expect-error: the sequential family's window is not an option of kind 'xl'
  assert.throws(() => createModel({ kind: 'xl', vocabSize: 10, memLen: 4, window: 'before-query' }), /window options belong to kinds/);
  // @ts-expect-error: rmtCache belongs to kind 'rmt'
  assert.throws(() => createModel({ kind: 'mem-transformer', vocabSize: 10, numMemTokens: 2, rmtCache: { rows: 'all' } }), /belong to kind 'rmt'/);
  // @ts-expect-error: finalNorm is not an option of the sequential family
  assert.throws(() => createModel({ kind: 'feedback', vocabSize: 10, memLen: 4, finalNorm: false }), /finalNorm options belong to kinds/);
});

test("a resolved configuration narrows on kind: the mechanism's options are there, typed, with their defaults", () => {
  const config: ModelConfig = resolveModelConfig({ kind: 'expire-span', vocabSize: 10, memLen: 8 });
  assert.equal(config.kind, 'expire-span');
  if (config.kind === 'expire-span') {
    const ramp: number = config.expireSpan.ramp; // non-null on its own kind: no '!' needed
    assert.equal(ramp, 32);
  }
  const xl = resolveModelConfig({ kind: 'xl', vocabSize: 10, memLen: 8 });
  if (xl.kind === 'xl') {
    const none: null = xl.expireSpan;
    assert.equal(none, null);
  }
});
