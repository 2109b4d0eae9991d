// Leak tests: a long training loop must hold its native tensor count and resident memory flat, and
// the two ways a tensor's memory is returned outside tidy() (the garbage collector, dispose()) must
// work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnSync } from 'node:child_process';
import {
  Adam, DEFAULT_HEAP_RETENTION, EngramError, F, HEAP_BLOCK_MAX, heapRetention, heapRetentionEnv, heapRetentionFromEnv, liveTensors, manualSeed, ones,
  randn, setHeapRetention, tidy, zeros, type Tensor,
} from '../src/index.js';

// The test runner starts node without --expose-gc; the flag can still be set at run time, and a
// fresh context created afterwards gets the gc() function.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Collects garbage until the FinalizationRegistry has freed what it can (its callbacks run from the event loop). */
async function collectGarbage(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const MiB = 2 ** 20;

/**
 * Resident memory with garbage out of the way. V8 can leave megabytes of dead objects in its old
 * space between full collections (after a forced GC, a healthy loop measured an RSS sawtooth of up
 * to ~15 MiB: young garbage promoted, then freed by the next full GC), and it returns freed pages to the OS
 * from a background thread a little after a collection: so collect, let that thread run, and take
 * the lowest of a few readings. Memory that is really held cannot drop out of the minimum.
 */
async function settledRss(): Promise<number> {
  let lowest = Infinity;
  for (let i = 0; i < 5; i++) {
    gc();
    await sleep(20);
    lowest = Math.min(lowest, process.memoryUsage().rss);
  }
  return lowest;
}

// ---- the training loop ---------------------------------------------------------------------------------------
// A 2-layer MLP regressing random targets. Shapes:
//   x [batch 16, in 8]   w1 [hidden 32, in 8]   b1 [32]   h = relu(x w1^T + b1) [16, 32]
//   y [16, 1]            w2 [1, hidden 32]      b2 [1]    prediction = h w2^T + b2 [16, 1]
const STEPS = 30_000;
/** RSS is first sampled after these many steps: V8's heap and malloc's arenas grow to their working size first. */
const WARMUP_STEPS = 10_000;
/** The measured steps are cut into this many intervals, RSS sampled at each boundary. */
const INTERVALS = 4;
const STEPS_PER_INTERVAL = (STEPS - WARMUP_STEPS) / INTERVALS;

/**
 * A leak grows RSS in every interval; warm-up does not. A healthy loop's RSS is not perfectly flat
 * after a short warm-up: it measured one-off steps of +1.5 to +3 MiB somewhere between 2,000 and
 * 20,000 steps (V8's young generation and malloc's arenas reaching their working size; old space
 * after a full GC stayed at ~9.2 MiB), then stayed flat to 82,000 steps to within 0.3 MiB. So the
 * test asks that at least one interval be flat: the smallest leak it must catch, a detached scalar
 * kept by mistake, measured 0.75 to 1.1 KiB per step (natively a TensorImpl, a StorageImpl, its
 * allocation and a handle slot; in JS a Tensor and its finalizer registration), and its native
 * part alone ~0.5 KiB per step, 2.4 MiB per 5,000-step interval; a leaked activation such as h
 * also keeps its autograd graph, ~5 KiB per step. 1.2 MiB is half the smallest of these and 4x
 * the flat loop's noise. The total over all intervals must also stay below a bound that a
 * one-off step passes and a leak of 0.5 KiB per step (9.8 MiB over 20,000 steps) does not.
 */
const FLAT_INTERVAL_LIMIT = 1.2 * MiB;
const RSS_GROWTH_LIMIT = 8 * MiB;

test(`${STEPS} Adam steps of a small MLP inside tidy() keep tensor count and resident memory flat`, async () => {
  manualSeed(1234);
  await collectGarbage();
  const baseline = liveTensors();
  const x = randn([16, 8]);
  const y = randn([16, 1]);
  const w1 = randn([32, 8]).mul_(0.3).requiresGrad_();
  const b1 = zeros([32], { requiresGrad: true });
  const w2 = randn([1, 32]).mul_(0.2).requiresGrad_();
  const b2 = zeros([1], { requiresGrad: true });
  const opt = new Adam([w1, b1, w2, b2], { lr: 1e-3 });

  const trainStep = (): number =>
    tidy(() => {
      opt.zeroGrad();
      const h = F.relu(F.linear(x, w1, b1));
      const loss = F.mseLoss(F.linear(h, w2, b2), y);
      loss.backward();
      opt.step();
      return loss.item();
    });

  const firstLoss = trainStep();
  for (let s = 1; s < 5; s++) trainStep();
  // Data, parameters, and Adam's two state tensors per parameter; nothing per step.
  const liveAfterFirstSteps = liveTensors();
  assert.equal(liveAfterFirstSteps, baseline + 6 + 8);

  let lastLoss = firstLoss;
  for (let s = 5; s < WARMUP_STEPS; s++) trainStep();
  const rssSamples = [await settledRss()];
  for (let i = 0; i < INTERVALS; i++) {
    for (let s = 0; s < STEPS_PER_INTERVAL; s++) lastLoss = trainStep();
    rssSamples.push(await settledRss());
  }
  const liveAtEnd = liveTensors();

  const intervalGrowth = rssSamples.slice(1).map((rss, i) => rss - rssSamples[i]!);
  const flattest = Math.min(...intervalGrowth);
  const growth = rssSamples[INTERVALS]! - rssSamples[0]!;
  const mib = (bytes: number): string => (bytes / MiB).toFixed(2);
  console.log(
    `memory: liveTensors ${liveAfterFirstSteps} after 5 steps, ${liveAtEnd} after ${STEPS}; ` +
    `RSS ${mib(rssSamples[0]!)} MiB after ${WARMUP_STEPS} steps, then per ${STEPS_PER_INTERVAL} steps ` +
    `${intervalGrowth.map((g) => (g >= 0 ? '+' : '') + mib(g)).join(' ')} MiB ` +
    `(${mib(growth)} MiB in all, ${(growth / (STEPS - WARMUP_STEPS)).toFixed(0)} B per step); loss ${firstLoss.toFixed(4)} -> ${lastLoss.toExponential(2)}`,
  );
  assert.equal(liveAtEnd, liveAfterFirstSteps);
  assert.ok(flattest < FLAT_INTERVAL_LIMIT, `RSS grew in every interval of ${STEPS_PER_INTERVAL} steps, by at least ${mib(flattest)} MiB: a leak`);
  assert.ok(growth < RSS_GROWTH_LIMIT, `RSS grew by ${mib(growth)} MiB over ${STEPS - WARMUP_STEPS} steps`);
  // The loop trained (so the steps above did real work).
  assert.ok(lastLoss < 0.01 * firstLoss, `loss ${firstLoss} -> ${lastLoss}`);

  opt.dispose();
  for (const t of [x, y, w1, b1, w2, b2]) t.dispose();
  assert.equal(liveTensors(), baseline);
});

// ---- lifetimes outside tidy() ----------------------------------------------------------------------------------

test('tensors made outside any scope and dropped are freed by the garbage collector', async () => {
  await collectGarbage();
  const before = liveTensors();
  (() => {
    for (let i = 0; i < 100; i++) randn([64]).mul(2); // 200 tensors, no reference kept
  })();
  assert.equal(liveTensors(), before + 200);
  await collectGarbage();
  assert.equal(liveTensors(), before);
});

test('dispose() frees a kept tensor at once, and the garbage collector does not free it again', async () => {
  await collectGarbage();
  const before = liveTensors();
  let kept: Tensor | undefined;
  tidy(() => {
    kept = randn([8]).mul(2).keep(); // randn's result is freed with the scope, the product survives it
  });
  assert.equal(liveTensors(), before + 1);
  assert.deepEqual(kept!.shape, [8]);
  kept!.dispose();
  assert.equal(liveTensors(), before);
  assert.ok(kept!.isDisposed);
  assert.throws(() => kept!.add(1), (e: unknown) => e instanceof EngramError && e.kind === 'disposed');
  kept!.dispose(); // twice is harmless

  // Native ids are reused: a tensor made now may get the disposed tensor's id. Dropping the
  // disposed handle and collecting must not free it (the finalizer was unregistered by dispose()).
  const successor = randn([8]);
  kept = undefined;
  await collectGarbage();
  assert.equal(liveTensors(), before + 1);
  assert.equal(successor.add(1).shape[0], 8);
  successor.dispose();
});

test('unscoped tensors report their bytes to V8, so garbage collection frees them between ticks', async () => {
  const { setImmediate: tick } = await import('node:timers/promises');
  const before = liveTensors();
  // 100 tensors of 16 MiB dropped unscoped: the JS heap barely grows, so only the reported
  // native bytes can make V8 collect (without them every one stays alive: 1.6 GiB).
  for (let i = 0; i < 100; i++) {
    ones([4, 2 ** 20]);
    await tick();
  }
  await tick();
  assert.ok(liveTensors() - before < 40, `${liveTensors() - before} of 100 dropped tensors still alive`);
});

test('inside tidy nothing is reported, and a tensor escaping the scope is (its GC pressure returns)', async () => {
  const { setImmediate: tick } = await import('node:timers/promises');
  const before = liveTensors();
  for (let i = 0; i < 100; i++) {
    tidy(() => ones([4, 2 ** 20])); // escapes the scope: unscoped from here on
    await tick();
  }
  await tick();
  assert.ok(liveTensors() - before < 40, `${liveTensors() - before} of 100 escaped tensors still alive`);
});

// ---- the C heap's freed memory kept for reuse (setHeapRetention) ------------------------------------------------

test('heap retention: the default at load, ENGRAM_HEAP_RETENTION and the user\'s own malloc settings, bad values named', () => {
  assert.equal(heapRetention(), heapRetentionFromEnv(process.env)); // what the environment asked for at load
  assert.equal(heapRetentionFromEnv({}), DEFAULT_HEAP_RETENTION);
  assert.equal(heapRetentionFromEnv({ ENGRAM_HEAP_RETENTION: '256' }), 256 * MiB);
  assert.equal(heapRetentionFromEnv({ ENGRAM_HEAP_RETENTION: '0' }), 0);
  assert.equal(heapRetentionFromEnv({ ENGRAM_HEAP_RETENTION: 'off' }), null);
  assert.equal(heapRetentionFromEnv({ MALLOC_TRIM_THRESHOLD_: '65536' }), null);
  assert.equal(heapRetentionFromEnv({ GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=65536' }), null);
  assert.equal(heapRetentionFromEnv({ GLIBC_TUNABLES: 'glibc.malloc.tcache_count=0' }), DEFAULT_HEAP_RETENTION);
  for (const bad of ['lots', '-1', '4096']) {
    assert.throws(() => heapRetentionFromEnv({ ENGRAM_HEAP_RETENTION: bad }),
      (e: unknown) => e instanceof EngramError && e.kind === 'config' && e.message.includes('ENGRAM_HEAP_RETENTION') && e.message.includes(bad));
  }
  for (const bad of [-1, 1.5, 2 ** 31]) {
    assert.throws(() => setHeapRetention(bad), (e: unknown) => e instanceof EngramError && e.kind === 'config' && e.message.includes('setHeapRetention'));
  }
  // at load, a bad value is one line on stderr and glibc's own settings, not an import that throws
  const index = new URL('../src/index.js', import.meta.url).href;
  const bad = spawnSync(process.execPath, ['--input-type=module', '-e', `const m = await import(${JSON.stringify(index)}); console.log(JSON.stringify(m.heapRetention()));`], {
    encoding: 'utf8', env: { ...process.env, ENGRAM_HEAP_RETENTION: 'lots' },
  });
  assert.equal(bad.status, 0, bad.stderr);
  assert.equal(bad.stdout.trim(), 'null');
  assert.deepEqual(bad.stderr.trim().split('\n'), ["engram: ENGRAM_HEAP_RETENTION: must be MiB in [0, 2047] or 'off', got 'lots'; malloc left as glibc configures it"]);
  const env = heapRetentionEnv();
  if (heapRetention() === null) assert.deepEqual(env, {});
  else assert.deepEqual(env, { MALLOC_TRIM_THRESHOLD_: String(heapRetention()), MALLOC_MMAP_THRESHOLD_: String(HEAP_BLOCK_MAX) });
});

test('heap retention: a loop that frees 40 MiB of tensors each round faults its pages in once, not every round', () => {
  // Each child: ten rounds of ten 4 MiB tensors written and freed together, counting minor page
  // faults over rounds 2-10. glibc's own thresholds hand the freed 40 MiB (the heap's top) back
  // to the OS every round, so each round faults ~10,000 pages in again; kept, they are reused.
  const index = new URL('../src/index.js', import.meta.url).href;
  const script = `
    const { zeros, tidy, heapRetention } = await import(${JSON.stringify(index)});
    const round = () => tidy(() => { for (let i = 0; i < 10; i++) zeros([2 ** 20]); });
    round();
    const before = process.resourceUsage().minorPageFault;
    for (let r = 0; r < 9; r++) round();
    console.log(JSON.stringify({ faults: process.resourceUsage().minorPageFault - before, retention: heapRetention() }));`;
  const run = (retention: string): { faults: number; retention: number | null } => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8', env: { ...process.env, ENGRAM_HEAP_RETENTION: retention, MALLOC_TRIM_THRESHOLD_: undefined, MALLOC_MMAP_THRESHOLD_: undefined, GLIBC_TUNABLES: undefined },
    });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as { faults: number; retention: number | null };
  };
  const glibc = run('off'), kept = run('1024');
  console.log(`heap retention: minor page faults over 9 rounds of 40 MiB freed: glibc's defaults ${glibc.faults}, 1 GiB kept ${kept.faults}`);
  assert.equal(glibc.retention, null);
  if (kept.retention === null) return; // not glibc: setHeapRetention changed nothing (it said so)
  assert.equal(kept.retention, 1024 * MiB);
  assert.ok(glibc.faults > 9 * 5000, `glibc's defaults faulted only ${glibc.faults} pages in 9 rounds: the test no longer shows the trimming it guards against`);
  assert.ok(kept.faults < glibc.faults / 4, `with 1 GiB kept: ${kept.faults} faults against ${glibc.faults}`);
});
