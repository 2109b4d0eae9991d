// Does a corridor run's decision depend on the cue? For held-out corridor samples, predict the
// turn from the sample as it is and from the same sample with the other cue colour, and count
// the right answers and the predictions that change. Used for the Expire-Span corridor result in
// docs/results/README.md:
//
//   node dist/examples/corridor-cue-flip.js docs/results/expire-corridor/expire-span-l-2-x-corridor--510 [samples]
import { CorridorTask, CORRIDOR_DECISION, CORRIDOR_FIRST_COLOUR, loadRun, noGrad, Rng, tensor, tidy, type SegmentModel } from '../src/index.js';

function predictTurn(model: SegmentModel, task: CorridorTask, tokens: number[]): number {
  const decision = tokens.indexOf(CORRIDOR_DECISION);
  const M = task.segmentLength;
  return noGrad(() => tidy(() => {
    let state = model.initState(1);
    let turn = -1;
    for (let start = 0; start < tokens.length; start += M) {
      const out = model.forward(tensor(Int32Array.from(tokens.slice(start, start + M)), { dtype: 'int64', shape: [1, M] }), state);
      state = out.state;
      if (decision >= start && decision < start + M) turn = out.logits.select(1, decision - start).argmax(-1).item();
    }
    return turn;
  }));
}

const dir = process.argv[2];
const samples = Number(process.argv[3] ?? 20);
if (!dir) {
  console.error('usage: node dist/examples/corridor-cue-flip.js <corridor run directory> [samples]');
  process.exit(2);
}
const run = await loadRun(dir);
const task = run.kind === 'task' ? run.task : null;
if (!(task instanceof CorridorTask) || task.numColours !== 2) {
  console.error(`${dir} is not a run of the 2-colour corridor task`);
  process.exit(2);
}
let correct = 0, changed = 0;
for (let s = 0; s < samples; s++) {
  const sample = task.sample(new Rng(100 + s));
  const decision = sample.tokens.indexOf(CORRIDOR_DECISION);
  const flipped = [...sample.tokens];
  flipped[0] = sample.tokens[0] === CORRIDOR_FIRST_COLOUR ? CORRIDOR_FIRST_COLOUR + 1 : CORRIDOR_FIRST_COLOUR;
  const turn = predictTurn(run.model, task, sample.tokens);
  if (turn === sample.targets[decision]) correct += 1;
  if (turn !== predictTurn(run.model, task, flipped)) changed += 1;
}
console.log(`${dir}: ${correct}/${samples} decisions right; flipping the cue changes ${changed}/${samples} predictions`);
run.model.dispose();
