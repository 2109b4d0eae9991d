// The memory tasks of the Expire-Span and Feedback papers (SPEC §8): long copy, corridor, object
// collision, algorithmic. Each generator is checked against its definition by re-deriving the
// answers independently from the emitted tokens (replaying programs, re-simulating collisions),
// plus option errors, seeded determinism and segment shapes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Rng, makeTask, taskNames, IGNORE_INDEX, START, EngramError, tidy, liveTensors, createModel, manualSeed, evaluateTask,
  resolveTrainConfig, splitSegments,
  LongCopyTask, LONG_COPY_BLANK, LONG_COPY_FIRST_SYMBOL, CorridorTask, CORRIDOR_DECISION, CORRIDOR_FIRST_COLOUR,
  ObjectCollisionTask, COLLISION_GRID, COLLISION_COLOURS, COLLISION_FRAME_TOKENS, COLLISION_X, COLLISION_Y, COLLISION_COLOUR,
  COLLISION_QUERY, FIRST_QUADRANT_LABEL, AlgorithmicTask, ALGORITHMIC_VARIABLES,
  type SegmentedTask, type TaskSample,
} from '../src/index.js';
import { checkTaskRow } from './helpers.js';

const isConfigError = (pattern: RegExp) => (e: unknown) => e instanceof EngramError && e.kind === 'config' && pattern.test(e.message);

/** checkTaskRow, and what these tasks add: no segment is padding only, and every scored position is an answer. */
function checkRow(task: SegmentedTask, s: TaskSample): void {
  checkTaskRow(task, s);
  assert.ok(task.length <= task.numSegments * task.segmentLength && task.length > (task.numSegments - 1) * task.segmentLength, 'no segment is padding only');
  s.targets.forEach((t, p) => assert.equal(s.answerMask[p], t !== IGNORE_INDEX, `answer positions are the scored ones (${p})`));
}

const scored = (s: TaskSample): number[] => s.targets.flatMap((t, p) => (t !== IGNORE_INDEX ? [p] : []));

// ---- long copy -------------------------------------------------------------------------------------------------

test('long-copy: source, blanks, start, then the source again; scored on the reproduced tokens only', () => {
  const n = 7, delay = 40;
  const task = new LongCopyTask({ length: n, delay, numSymbols: 5 });
  assert.equal(task.length, 2 * n + delay);
  assert.equal(task.vocabSize, LONG_COPY_FIRST_SYMBOL + 5);
  assert.equal(task.chance, 1 / 5);
  const rng = new Rng(3);
  const seen = new Set<number>();
  for (let k = 0; k < 30; k++) {
    const s = task.sample(rng);
    checkRow(task, s);
    const source = s.tokens.slice(0, n);
    for (const t of source) {
      assert.ok(t >= LONG_COPY_FIRST_SYMBOL && t < LONG_COPY_FIRST_SYMBOL + 5);
      seen.add(t);
    }
    assert.deepEqual(s.tokens.slice(n, n + delay), new Array<number>(delay).fill(LONG_COPY_BLANK));
    assert.equal(s.tokens[n + delay], START);
    // the full sequence is tokens plus the last target: its tail must be the source
    const reproduced = [...s.tokens.slice(n + delay + 1, task.length), s.targets[task.length - 1]!];
    assert.deepEqual(reproduced, source);
    assert.deepEqual(scored(s), Array.from({ length: n }, (_, i) => n + delay + i), 'scored from the start token on');
    assert.deepEqual(scored(s).map((p) => s.targets[p]), source);
  }
  assert.equal(seen.size, 5, 'every symbol drawn');
  // the last reproduced symbol is only a target, never an input
  assert.match(task.decode(task.sample(new Rng(3)).tokens), /^[0-4]{7}\[\.×40\]\|[0-4]{6}$/);
});

test('long-copy: thousands of blanks cut by segmentLength, the last segment padded', () => {
  const task = makeTask('long-copy', { length: 5, delay: 3000, segmentLength: 256 });
  assert.equal(task.length, 3010);
  assert.equal(task.numSegments, 12); // ceil(3010 / 256)
  assert.equal(task.segmentLength, 256);
  const s = task.sample(new Rng(1));
  checkRow(task, s);
  assert.deepEqual(scored(s), [3005, 3006, 3007, 3008, 3009]);
  tidy(() => {
    const b = task.batch(2, new Rng(1));
    assert.deepEqual(b.tokens.shape, [2, 12 * 256]);
    const segments = splitSegments(b.tokens, task.numSegments, task.segmentLength);
    assert.equal(segments.length, 12);
    for (const seg of segments) assert.deepEqual(seg.shape, [2, 256]);
    assert.deepEqual((b.tokens.toArray() as number[][])[0], s.tokens, 'batch row 0 is the first sample of the same seed');
  });
  // by count, like the other tasks; by length, a segment longer than the sample is the sample
  assert.equal(makeTask('long-copy', { length: 4, delay: 8, numSegments: 4 }).segmentLength, 4);
  const whole = makeTask('long-copy', { length: 4, delay: 8, segmentLength: 1000 });
  assert.deepEqual([whole.numSegments, whole.segmentLength], [1, 16]);
});

// ---- corridor ----------------------------------------------------------------------------------------------------

test('corridor: cue, Lc fillers, decision; the one target at the decision is the turn the cue implies', () => {
  const Lc = 25;
  const task = new CorridorTask({ length: Lc, numColours: 3, numFillers: 4 });
  assert.equal(task.length, Lc + 2);
  assert.equal(task.chance, 1 / 3);
  const rng = new Rng(5);
  const colourCount = [0, 0, 0];
  const fillers = new Set<number>();
  for (let k = 0; k < 300; k++) {
    const s = task.sample(rng);
    checkRow(task, s);
    const colour = s.tokens[0]! - CORRIDOR_FIRST_COLOUR;
    assert.ok(colour >= 0 && colour < 3, 'the first token is a colour cue');
    colourCount[colour]!++;
    for (let i = 1; i <= Lc; i++) {
      assert.ok(s.tokens[i]! >= task.firstFiller && s.tokens[i]! < task.firstFiller + 4, 'fillers in between');
      fillers.add(s.tokens[i]!);
    }
    assert.equal(s.tokens[Lc + 1], CORRIDOR_DECISION);
    assert.deepEqual(scored(s), [Lc + 1], 'scored at the decision token only');
    assert.equal(s.targets[Lc + 1]! - task.firstTurn, colour, 'colour i means turn i');
  }
  for (const c of colourCount) assert.ok(c > 70 && c < 130, `colours uniform: ${colourCount}`);
  assert.equal(fillers.size, 4);
  // one filler kind: every corridor cell alike
  const plain = new CorridorTask({ length: 6, numFillers: 1 });
  const s = plain.sample(new Rng(2));
  assert.equal(new Set(s.tokens.slice(1, 7)).size, 1);
  assert.match(plain.decode(s.tokens), /^[AB]000000\?$/);
});

// ---- object collision ----------------------------------------------------------------------------------------

interface CollisionReplay {
  collisions: number;
  colourChanges: number;
  framesAfterFirstCollision: number;
  queriesOfLastCollision: number;
  quadrants: number[];
}

/**
 * Re-derives every label from the emitted frames alone: collisions are two equal cells, remembered
 * per (colour 1, colour 2) pair with their quadrant; checks each frame's fields and motion.
 */
function replayCollisions(task: ObjectCollisionTask, s: TaskSample): CollisionReplay {
  const C = COLLISION_COLOURS, half = COLLISION_GRID / 2;
  const last = new Map<number, number>();
  const r: CollisionReplay = { collisions: 0, colourChanges: 0, framesAfterFirstCollision: 0, queriesOfLastCollision: 0, quadrants: [0, 0, 0, 0, 0] };
  let lastPair = -1;
  let previous: number[] | null = null;
  for (let f = 0; f < task.frames; f++) {
    const at = f * COLLISION_FRAME_TOKENS;
    const frame = s.tokens.slice(at, at + COLLISION_FRAME_TOKENS);
    const x = [frame[0]! - COLLISION_X, frame[3]! - COLLISION_X], y = [frame[1]! - COLLISION_Y, frame[4]! - COLLISION_Y];
    const colour = [frame[2]! - COLLISION_COLOUR, frame[5]! - COLLISION_COLOUR];
    const query = [frame[6]! - COLLISION_QUERY, frame[7]! - COLLISION_QUERY];
    for (const v of [...x, ...y]) assert.ok(v >= 0 && v < COLLISION_GRID, `cell coordinate ${v} in frame ${f}`);
    for (const c of [...colour, ...query]) assert.ok(c >= 0 && c < C, `colour ${c} in frame ${f}`);
    if (previous) {
      // velocities ~ N(0, 0.5²): a cell moves by a few units at most between frames
      for (let i = 0; i < 4; i++) assert.ok(Math.abs([...x, ...y][i]! - previous[i]!) <= 4, `frame ${f} jumps`);
      r.colourChanges += (colour[0] !== previous[4] ? 1 : 0) + (colour[1] !== previous[5] ? 1 : 0);
    }
    previous = [...x, ...y, ...colour];
    if (x[0] === x[1] && y[0] === y[1]) {
      lastPair = colour[0]! * C + colour[1]!;
      last.set(lastPair, 1 + 2 * (x[0]! >= half ? 1 : 0) + (y[0]! >= half ? 1 : 0));
      r.collisions++;
    }
    const pair = query[0]! * C + query[1]!;
    if (lastPair >= 0) {
      r.framesAfterFirstCollision++;
      if (pair === lastPair) r.queriesOfLastCollision++;
    }
    const quadrant = last.get(pair) ?? 0;
    r.quadrants[quadrant]!++;
    const expected = quadrant > 0 || task.scoreNoCollision ? FIRST_QUADRANT_LABEL + quadrant : IGNORE_INDEX;
    for (let i = 0; i < COLLISION_FRAME_TOKENS - 1; i++) assert.equal(s.targets[at + i], IGNORE_INDEX, 'labels only on the last token');
    assert.equal(s.targets[at + COLLISION_FRAME_TOKENS - 1], expected, `label of frame ${f}`);
  }
  return r;
}

test('object-collision: every label re-derived from the emitted frames (quadrant of the queried pair’s last collision)', () => {
  const task = new ObjectCollisionTask({ frames: 3000, segmentLength: 512 });
  assert.equal(task.length, 24000);
  assert.equal(task.numSegments, 47);
  assert.equal(task.vocabSize, 48);
  assert.equal(task.chance, 1 / 4);
  const rng = new Rng(9);
  const total: CollisionReplay = { collisions: 0, colourChanges: 0, framesAfterFirstCollision: 0, queriesOfLastCollision: 0, quadrants: [0, 0, 0, 0, 0] };
  for (let k = 0; k < 4; k++) {
    const s = task.sample(rng);
    checkRow(task, s);
    const r = replayCollisions(task, s);
    total.collisions += r.collisions;
    total.colourChanges += r.colourChanges;
    total.framesAfterFirstCollision += r.framesAfterFirstCollision;
    total.queriesOfLastCollision += r.queriesOfLastCollision;
    r.quadrants.forEach((q, i) => (total.quadrants[i]! += q));
  }
  const frames = 4 * 3000;
  assert.ok(total.collisions > 50, `collisions happen: ${total.collisions}`);
  for (let q = 1; q <= 4; q++) assert.ok(total.quadrants[q]! > 200, `quadrant ${q} labelled: ${total.quadrants}`);
  // colour redrawn with p = 0.05 among 5 colours: it changes with p = 0.04 per particle and frame
  const changeRate = total.colourChanges / (2 * (frames - 4));
  assert.ok(changeRate > 0.033 && changeRate < 0.047, `colour change rate ${changeRate}`);
  // the most recent collision's pair is asked 0.4 of the time, plus 1/25 of the uniform draws
  const easyRate = total.queriesOfLastCollision / total.framesAfterFirstCollision;
  assert.ok(Math.abs(easyRate - (0.4 + 0.6 / 25)) < 0.03, `easy query rate ${easyRate}`);
});

test('object-collision: scoreNoCollision scores label 0 too; the decoded frame shows the SPEC fields', () => {
  const task = new ObjectCollisionTask({ frames: 200, scoreNoCollision: true, easyQueryProb: 0 });
  assert.equal(task.chance, 1 / 5);
  assert.deepEqual([task.numSegments, task.segmentLength], [7, 256]); // default: the reference's block of 256
  const s = task.sample(new Rng(4));
  checkRow(task, s);
  replayCollisions(task, s);
  assert.equal(scored(s).length, 200, 'every frame labelled');
  assert.ok(s.targets.includes(FIRST_QUADRANT_LABEL), 'label 0 present early on');
  const first = task.decode(s.tokens).split(' | ')[0]!;
  assert.match(first, /^\d+,\d+,[A-E] \d+,\d+,[A-E] \?[a-e][a-e]$/);
  const [x] = first.split(',');
  assert.equal(Number(x), s.tokens[0]! - COLLISION_X);
});

// ---- algorithmic ---------------------------------------------------------------------------------------------

interface ProgramStats {
  programs: number;
  prints: number;
  kinds: Set<string>;
}

/**
 * Replays the token stream as a program: END resets the variables; every statement must be valid
 * (assigned variables only, `=` on a new one, values in 1..10 even in an `if` body whose condition
 * fails, which runs on a copy); each `print v ;` must carry v's value on its `;`, nothing else a label.
 */
function replayProgram(task: AlgorithmicTask, s: TaskSample): ProgramStats {
  const words = s.tokens.slice(0, task.length).map((t) => task.words[t - 1]!);
  const labels = s.targets.slice(0, task.length);
  const variables: readonly string[] = ALGORITHMIC_VARIABLES.slice(0, task.numVariables);
  const stats: ProgramStats = { programs: 0, prints: 0, kinds: new Set() };
  let values = new Map<string, number>();
  let statements = 0;
  let i = 0;
  const valueOf = (w: string): number => {
    const v = values.get(w);
    assert.ok(v !== undefined, `${w} read before any assignment at ${i}`);
    return v;
  };
  // runs one simple statement (=, ++, --) starting at i on vals; false when it is cut by the sample's end
  const simple = (vals: Map<string, number>): boolean => {
    if (i + 2 >= words.length) return false;
    const [v, op] = [words[i]!, words[i + 1]!];
    assert.ok(variables.includes(v), `a variable at ${i}: ${v}`);
    if (op === '=') {
      if (i + 3 >= words.length) return false;
      assert.ok(!vals.has(v), `${v} assigned twice in one program (at ${i})`);
      vals.set(v, Number(words[i + 2]));
      assert.equal(words[i + 3], ';');
      i += 4;
    } else {
      assert.ok(op === '++' || op === '--', `statement ${op} at ${i}`);
      assert.ok(vals.has(v), `${v} used before assignment`);
      vals.set(v, vals.get(v)! + (op === '++' ? 1 : -1));
      assert.equal(words[i + 2], ';');
      i += 3;
    }
    stats.kinds.add(op);
    for (const x of vals.values()) assert.ok(x >= 1 && x <= 10, `value ${x} out of 1..10 at ${i}`);
    return true;
  };
  while (i < words.length) {
    const start = i;
    const w = words[i]!;
    if (w === 'END') {
      assert.equal(statements, task.numStatements, 'statements per program');
      stats.programs++;
      statements = 0;
      values = new Map();
      i++;
      continue;
    }
    if (w === 'print') {
      if (i + 2 >= words.length) break;
      const value = valueOf(words[i + 1]!);
      assert.equal(words[i + 2], ';');
      assert.equal(labels[i + 2], task.valueId(value), `printed value at ${i + 2}`);
      labels[i + 2] = IGNORE_INDEX; // checked
      stats.prints++;
      stats.kinds.add('print');
      i += 3;
    } else if (w === 'if') {
      if (i + 4 >= words.length) break;
      const left = valueOf(words[i + 1]!);
      const op = words[i + 2]!;
      const right = variables.includes(words[i + 3]!) ? valueOf(words[i + 3]!) : Number(words[i + 3]);
      assert.ok(op === '<' || op === '>', `comparison ${op}`);
      assert.ok(right >= 1 && right <= 10);
      assert.equal(words[i + 4], ':');
      i += 5;
      const holds = op === '<' ? left < right : left > right;
      stats.kinds.add(`if ${holds}`);
      if (!simple(holds ? values : new Map(values))) break;
    } else if (!simple(values)) {
      break;
    }
    statements++;
    assert.ok(statements <= task.numStatements, `program longer than ${task.numStatements} statements at ${start}`);
  }
  assert.ok(labels.every((l) => l === IGNORE_INDEX), 'no label outside a print');
  return stats;
}

test('algorithmic: replaying each program gives every label; values stay in 1..10; statements per program', () => {
  for (const numVariables of [3, 5]) {
    const task = new AlgorithmicTask({ numVariables, numStatements: 30, length: 1000 });
    assert.equal(task.vocabSize, numVariables + 10 + 10 + 1);
    assert.equal(task.chance, 1 / 10);
    assert.deepEqual([task.numSegments, task.segmentLength], [16, 64]); // default: the reference's block of 64
    const rng = new Rng(numVariables);
    const used = new Set<string>();
    let programs = 0, prints = 0;
    const kinds = new Set<string>();
    for (let k = 0; k < 6; k++) {
      const s = task.sample(rng);
      checkRow(task, s);
      const stats = replayProgram(task, s);
      programs += stats.programs;
      prints += stats.prints;
      for (const kind of stats.kinds) kinds.add(kind);
      for (const t of s.tokens) if (t > 0 && t <= numVariables) used.add(task.words[t - 1]!);
    }
    assert.ok(programs >= 6 * 5, `several whole programs per sample: ${programs}`);
    assert.ok(prints > 6 * 40, `prints: ${prints}`);
    assert.deepEqual([...kinds].sort(), ['++', '--', '=', 'if false', 'if true', 'print']);
    assert.equal(used.size, numVariables, 'every variable appears');
  }
  const s = new AlgorithmicTask({ length: 40 }).sample(new Rng(1));
  assert.match(new AlgorithmicTask({ length: 40 }).decode(s.tokens), /^[xyz] = (10|[1-9]) ;/);
});

test('algorithmic: the default sample is 512 tokens, about one 100-statement program, cut in segments of 64', () => {
  const task = makeTask('algorithmic');
  assert.deepEqual([task.length, task.numSegments, task.segmentLength, task.numStatements, task.numVariables], [512, 8, 64, 100, 3]);
  const s = task.sample(new Rng(2));
  checkRow(task, s);
  replayProgram(task, s);
  const five = makeTask('algorithmic', { numVariables: 5, numSegments: 4, numStatements: 10 });
  assert.deepEqual([five.numSegments, five.segmentLength], [4, 128]);
  replayProgram(five, five.sample(new Rng(3)));
});

// ---- shared: options, determinism, registry, training integration --------------------------------------------------

test('the memory tasks validate their options with config errors naming the problem', () => {
  assert.throws(() => makeTask('long-copy', { delay: -1 }), isConfigError(/delay must be an integer in \[0,/));
  assert.throws(() => makeTask('long-copy', { sourceLength: 4 } as object), isConfigError(/unknown option 'sourceLength'; allowed: length, delay, numSymbols, numSegments, segmentLength/));
  assert.throws(() => makeTask('long-copy', { numSymbols: 1 }), isConfigError(/numSymbols/));
  assert.throws(() => makeTask('long-copy', { numSegments: 2, segmentLength: 8 }), isConfigError(/numSegments or segmentLength, not both/));
  assert.throws(() => makeTask('long-copy', { segmentLength: 0 }), isConfigError(/segmentLength must be an integer/));
  assert.throws(() => makeTask('long-copy', { length: 5, delay: 0, numSegments: 6 }), isConfigError(/padding only/));
  assert.throws(() => makeTask('corridor', { numColours: 1 }), isConfigError(/numColours must be an integer in \[2, 26\]/));
  assert.throws(() => makeTask('corridor', { numFillers: 0 }), isConfigError(/numFillers/));
  assert.throws(() => makeTask('object-collision', { frames: 0 }), isConfigError(/frames must be an integer in \[1,/));
  assert.throws(() => makeTask('object-collision', { easyQueryProb: 1.5 }), isConfigError(/easyQueryProb must be a number in \[0, 1\]/));
  assert.throws(() => makeTask('object-collision', { scoreNoCollision: 'yes' as never }), isConfigError(/scoreNoCollision must be true or false/));
  assert.throws(() => makeTask('object-collision', { gridSize: 8 } as object), isConfigError(/unknown option 'gridSize'/));
  assert.throws(() => makeTask('algorithmic', { numVariables: 4 }), isConfigError(/numVariables must be 3 or 5/));
  assert.throws(() => makeTask('algorithmic', { numStatements: 0 }), isConfigError(/numStatements/));
  assert.throws(() => makeTask('algorithmic', { length: 1.5 }), isConfigError(/length must be an integer/));
});

const memoryTasks = (): SegmentedTask[] => [
  makeTask('long-copy', { length: 6, delay: 30, segmentLength: 16 }),
  makeTask('corridor', { length: 20, numSegments: 2 }),
  makeTask('object-collision', { frames: 12, segmentLength: 32, scoreNoCollision: true }),
  makeTask('algorithmic', { length: 90, segmentLength: 32 }),
];

test('memory tasks with their default options: the sizes each file documents, deterministic, decodable', () => {
  const sizes = (name: 'long-copy' | 'corridor' | 'object-collision' | 'algorithmic') => {
    const t = makeTask(name);
    return [t.length, t.numSegments, t.segmentLength];
  };
  assert.deepEqual(sizes('long-copy'), [2 * 16 + 256, 1, 288]);
  assert.deepEqual(sizes('corridor'), [102, 1, 102]);
  assert.deepEqual(sizes('object-collision'), [2048, 8, 256]);
  assert.deepEqual(sizes('algorithmic'), [512, 8, 64]);
  for (const name of ['long-copy', 'corridor', 'object-collision', 'algorithmic'] as const) {
    const task = makeTask(name);
    const a = task.sample(new Rng(11)), b = task.sample(new Rng(11));
    assert.deepEqual(a, b, name);
    assert.notDeepEqual(a.tokens, task.sample(new Rng(12)).tokens, name);
    checkRow(task, a);
    assert.ok(task.decode(a.tokens).length > 0);
  }
});

test('memory tasks: registered; the same seed gives the same batch (= the samples in order), another seed another', () => {
  for (const name of ['long-copy', 'corridor', 'object-collision', 'algorithmic']) assert.ok(taskNames.includes(name as never), name);
  const before = liveTensors();
  for (const task of memoryTasks()) {
    tidy(() => {
      const T = task.numSegments * task.segmentLength;
      const rows = (seed: number) => {
        const b = task.batch(3, new Rng(seed));
        assert.deepEqual(b.tokens.shape, [3, T]);
        assert.deepEqual(b.targets.shape, [3, T]);
        assert.deepEqual(b.answerMask!.shape, [3, T]);
        assert.equal(b.answerMask!.dtype, 'bool');
        return [b.tokens.toArray(), b.targets.toArray(), b.answerMask!.toArray()];
      };
      assert.deepEqual(rows(11), rows(11), task.name);
      assert.notDeepEqual(rows(11), rows(12), task.name);
      const rng = new Rng(11);
      const samples = [task.sample(rng), task.sample(rng), task.sample(rng)];
      const [tokens, targets, mask] = rows(11);
      assert.deepEqual(tokens, samples.map((s) => s.tokens), task.name);
      assert.deepEqual(targets, samples.map((s) => s.targets), task.name);
      assert.deepEqual(mask, samples.map((s) => s.answerMask), task.name);
    });
  }
  assert.equal(liveTensors(), before, 'no tensor leaked');
});

test('memory tasks: a tiny model evaluates on each (targets fit the vocabulary); configs take segmentLength', () => {
  const before = liveTensors();
  for (const task of memoryTasks()) {
    manualSeed(0);
    const model = createModel({ kind: 'xl', vocabSize: task.vocabSize, layers: 1, dModel: 8, heads: 2, dInner: 16, memLen: task.segmentLength });
    const m = evaluateTask(model, task, { batches: 1, batchSize: 2, seed: 1 });
    const rng = new Rng(1);
    const expectedTokens = scored(task.sample(rng)).length + scored(task.sample(rng)).length;
    assert.equal(m.tokens, expectedTokens, `${task.name}: loss over the scored positions`);
    assert.ok(Number.isFinite(m.loss) && m.accuracy >= 0 && m.accuracy <= 1, `${task.name}: ${JSON.stringify(m)}`);
    model.dispose();
  }
  assert.equal(liveTensors(), before, 'no tensor leaked');
  const config = resolveTrainConfig({ data: { kind: 'task', name: 'long-copy', options: { length: 4, delay: 1000, segmentLength: 128 } }, model: { kind: 'xl' } });
  assert.equal(config.model.memLen, 128, 'the memory defaults to the task’s segment length');
  assert.throws(() => resolveTrainConfig({ data: { kind: 'task', name: 'corridor', options: { numColors: 2 } } }), isConfigError(/unknown option 'numColors'/));
});
