// Experiments: a grid of model variants × settings (e.g. numbers of segments), each cell one run,
// or (`seeds`) one run per training seed, reported as their mean with every seed's value.
//
//   <out>/<model>--<setting>/    a run directory (log.jsonl, checkpoint, result.json);
//                                with seeds, <model>--<setting>--seed-<n>/ per seed
//   <out>/results.json           every cell's headline numbers
//   <out>/results.md             the comparison table (rows: models, columns: settings)
//   <out>/plot.svg               the metric against the setting, one line per model
//
// Cells run in turn. A rerun skips cells that have a result for the same configuration, resumes a
// cell interrupted after a checkpoint, continues a finished cell from its checkpoint when only what
// a resumed run may change differs (more steps: a grid trained longer across sessions; fewer steps
// than a cell has taken is an error, nothing removed), and starts over a cell whose configuration
// changed otherwise.
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { configError, EngramError, engramError } from '../tensor/index.js';
import { writeFileAtomic } from '../tensor/serialize.js';
import { deepMerge, parseWith, resolveTrainConfig, sameConfig, type TrainConfig, type TrainConfigInput } from './config.js';
import { readCheckpointMeta, hasCheckpoint } from './checkpoint.js';
import { RESULT_FILE, train, unresumableChanges, type TrainEvent, type TrainResult } from './trainer.js';
import type { Metrics } from './metrics.js';
import { headlineMetric } from './objective.js';
import type { ProgressMode } from './progress.js';
import { formatDuration } from './progress.js';
import { lineChart } from './plot.js';

const partialConfig = z.record(z.string(), z.unknown());

export const recipeSchema = z.strictObject({
  name: z.string().min(1).regex(/^[\w.-]+$/, 'letters, digits, _, . and - only (it names the output folder)'),
  description: z.string().default(''),
  /** The configuration every cell starts from. */
  base: partialConfig.default({}),
  /** Rows: model variants, merged over base and the setting. */
  models: z.array(z.strictObject({ name: z.string().min(1), config: partialConfig.default({}) })).min(1),
  /** Columns: settings, merged over base; `x` places them on the plot's x axis (default 1, 2, ...). */
  settings: z.array(z.strictObject({ name: z.string().min(1), x: z.number().optional(), config: partialConfig.default({}) })).min(1),
  /** Title of the settings axis (e.g. 'segments'). */
  settingsTitle: z.string().default('setting'),
  /**
   * Training seeds (train.seed): every cell runs once per seed, and the tables show the mean over
   * the seeds with each seed's value. Default: one run per cell with the configuration's seed.
   */
  seeds: z.array(z.number().int()).min(1).refine((xs) => new Set(xs).size === xs.length, 'each seed once').optional(),
  /** What the table shows; default accuracy for tasks, bpc for language modelling. */
  metric: z.enum(['accuracy', 'exactMatch', 'bpc', 'loss']).optional(),
  /** Published numbers to show beside ours, by model name then setting name. */
  published: z.record(z.string(), z.record(z.string(), z.number().nullable())).optional(),
  publishedSource: z.string().optional(),
  /**
   * A cost table (one row per cell: parameters, time per step, peak memory, memories attended);
   * default: on when the recipe has a single setting.
   */
  costTable: z.boolean().optional(),
});

export type Recipe = z.output<typeof recipeSchema>;
export type RecipeInput = z.input<typeof recipeSchema>;
export type MetricName = NonNullable<Recipe['metric']>;

export function parseRecipe(input: unknown): Recipe {
  const recipe = parseWith(recipeSchema, input, 'parseRecipe', 'invalid recipe');
  for (const [what, list] of [['model', recipe.models], ['setting', recipe.settings]] as const) {
    const names = list.map((x) => x.name);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup) throw configError('parseRecipe', `two ${what}s are named '${dup}'; give each ${what} its own name`);
  }
  return recipe;
}

/** A folder-safe name: 'RMT (4 mem)' -> 'rmt-4-mem'. */
export const slug = (s: string): string => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'x';

export interface ExperimentCell {
  model: string;
  setting: string;
  /** The training seed when the recipe lists seeds, else null. */
  seed: number | null;
  dir: string;
  config: TrainConfig;
}

/** The cells of a recipe, in run order (setting by setting, every model in each), configs resolved. */
export function experimentCells(recipe: Recipe, out: string, overrides: TrainConfigInput = {}): ExperimentCell[] {
  const cells: ExperimentCell[] = [];
  for (const setting of recipe.settings) {
    for (const model of recipe.models) {
      const merged = deepMerge(deepMerge(deepMerge(recipe.base, setting.config), model.config), overrides);
      let config: TrainConfig;
      try {
        config = resolveTrainConfig(merged);
      } catch (e) {
        if (e instanceof EngramError) throw engramError('config', 'experimentCells', `recipe cell '${model.name}' × '${setting.name}': ${e.message}`, e);
        throw e;
      }
      const dir = join(out, `${slug(model.name)}--${slug(setting.name)}`);
      if (!recipe.seeds) cells.push({ model: model.name, setting: setting.name, seed: null, dir, config });
      for (const seed of recipe.seeds ?? []) {
        cells.push({ model: model.name, setting: setting.name, seed, dir: `${dir}--seed-${seed}`, config: { ...config, train: { ...config.train, seed } } });
      }
    }
  }
  return cells;
}

export interface CellResult {
  model: string;
  setting: string;
  seed: number | null;
  dir: string;
  /** 'ran': trained now; 'resumed': continued from a checkpoint (interrupted, or given more steps); 'skipped': finished before. */
  status: 'ran' | 'resumed' | 'skipped' | 'aborted';
  finalEval: Metrics | null;
  bestEval: Metrics | null;
  parameters: number;
  /** Training seconds. */
  elapsed: number;
  tokensPerSec: number;
  secondsPerStep: number | null;
  peakHeapBytes: number | null;
}

export interface ExperimentResult {
  recipe: Recipe;
  out: string;
  metric: MetricName;
  cells: CellResult[];
  /** True when every cell finished. */
  complete: boolean;
  table: string;
  files: { results: string; table: string; plot: string };
}

export interface ExperimentOptions {
  /** Output folder (default runs/experiments/<recipe name>). */
  out?: string;
  /** Merged over every cell (e.g. more steps, to continue a finished grid). */
  overrides?: TrainConfigInput;
  progress?: ProgressMode;
  signal?: AbortSignal;
  /** A line per cell as it starts and ends (default: nothing). */
  log?: (line: string) => void;
  /** The training events of every cell. */
  onEvent?: (cell: ExperimentCell, event: TrainEvent) => void;
}

type SavedResult = Omit<TrainResult, 'losses'>;

function readResult(dir: string): SavedResult | null {
  const path = join(dir, RESULT_FILE);
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as SavedResult;
  } catch {
    return null;
  }
}

interface CellPlan {
  action: 'skip' | 'resume' | 'restart' | 'train';
  done: SavedResult | null;
  /** Steps of the cell's checkpoint (0 without one). */
  trained: number;
}

/**
 * What a (re)run does with a cell's folder: skip a finished cell of the same configuration, resume
 * from the checkpoint when only what a resumed run may change differs (more steps included), start
 * over when anything else changed, or train a new cell.
 */
async function planCell(cell: ExperimentCell): Promise<CellPlan> {
  const done = readResult(cell.dir);
  const meta = hasCheckpoint(cell.dir) ? await readCheckpointMeta(cell.dir) : null;
  const saved = done?.config ?? meta?.config ?? null;
  if (!saved) return { action: 'train', done, trained: 0 };
  const trained = meta?.step ?? 0;
  const continuable = meta !== null && unresumableChanges(saved, cell.config).length === 0;
  if (done?.finished && (sameConfig(done.config, cell.config) || (continuable && trained === cell.config.train.steps))) return { action: 'skip', done, trained };
  return { action: continuable ? 'resume' : 'restart', done, trained };
}

/** Runs (or completes) every cell of a recipe, then writes the table, the plot and results.json. */
export async function runExperiment(recipeInput: Recipe | RecipeInput, options: ExperimentOptions = {}): Promise<ExperimentResult> {
  const recipe = parseRecipe(recipeInput);
  const out = options.out ?? join('runs', 'experiments', recipe.name);
  const log = options.log ?? (() => {});
  const cells = experimentCells(recipe, out, options.overrides ?? {});
  mkdirSync(out, { recursive: true });
  for (const cell of cells) { // before any training: a cell that has taken more steps than asked stops the grid
    const plan = await planCell(cell);
    if (plan.action === 'resume' && plan.trained > cell.config.train.steps) {
      throw configError('experiment', `${cell.dir} has trained ${plan.trained} steps, more than the ${cell.config.train.steps} asked; nothing was changed: ask for at least ${plan.trained} steps, or give another --out (--fresh starts the grid over)`);
    }
  }
  const results: CellResult[] = [];
  let stopped = false;
  for (const [i, cell] of cells.entries()) {
    const label = `${cell.model} / ${cell.setting}${cell.seed === null ? '' : ` / seed ${cell.seed}`}`;
    const counter = `[${i + 1}/${cells.length}]`;
    if (stopped || options.signal?.aborted) {
      stopped = true;
      break;
    }
    const plan = await planCell(cell);
    if (plan.action === 'skip') {
      log(`${counter} ${label}: finished before, skipped`);
      results.push(cellResult(cell, 'skipped', plan.done!));
      continue;
    }
    if (plan.action === 'restart') {
      log(`${counter} ${label}: its configuration changed, starting it over`);
      rmSync(cell.dir, { recursive: true, force: true });
    }
    const status: CellResult['status'] = plan.action === 'resume' ? 'resumed' : 'ran';
    log(`${counter} ${label}: ${status === 'resumed' ? 'resuming from its checkpoint' : 'training'} (${cell.dir})`);
    const r = await train(cell.config, {
      runDir: cell.dir, resume: true, overwrite: true, progress: options.progress ?? 'none', label, // a cell's folder is the experiment's own
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onEvent ? { onEvent: (e: TrainEvent) => options.onEvent!(cell, e) } : {}),
    });
    if (!r.finished) {
      results.push(cellResult(cell, 'aborted', r));
      stopped = true;
      break;
    }
    results.push(cellResult(cell, status, r));
    const metric = recipeMetric(recipe, cell.config);
    log(`${counter} ${label}: ${metric} ${fmtMetric(r.finalEval, metric)} in ${formatDuration(r.elapsed)} (${Math.round(r.tokensPerSec)} tok/s)`);
  }
  const metric = recipeMetric(recipe, cells[0]!.config);
  const table = resultsTable(recipe, results, metric);
  const files = { results: join(out, 'results.json'), table: join(out, 'results.md'), plot: join(out, 'plot.svg') };
  const complete = !stopped && results.length === cells.length;
  const write = (path: string, text: string) => writeFileAtomic(path, async (fh) => { await fh.writeFile(text); }, 'experiment');
  await write(files.results, `${JSON.stringify({ recipe, metric, complete, cells: results }, null, 2)}\n`);
  await write(files.table, `# ${recipe.name}\n\n${recipe.description ? `${recipe.description}\n\n` : ''}${table}`);
  await write(files.plot, resultsPlot(recipe, results, metric));
  return { recipe, out, metric, cells: results, complete, table, files };
}

function cellResult(cell: ExperimentCell, status: CellResult['status'], r: SavedResult): CellResult {
  return {
    model: cell.model, setting: cell.setting, seed: cell.seed, dir: cell.dir, status,
    finalEval: r.finalEval, bestEval: r.bestEval, parameters: r.parameters, elapsed: r.elapsed, tokensPerSec: r.tokensPerSec,
    secondsPerStep: r.secondsPerStep ?? null, peakHeapBytes: r.peakHeapBytes ?? null,
  };
}

function recipeMetric(recipe: Recipe, config: TrainConfig): MetricName {
  return recipe.metric ?? headlineMetric(config.data);
}

const metricTitles: Record<MetricName, string> = {
  accuracy: 'per-token answer accuracy', exactMatch: 'exact match', bpc: 'bits per character', loss: 'loss (nats per token)',
};

/** The metric's value, or null when it is missing or not finite. */
function metricValue(m: Metrics | null, metric: MetricName): number | null {
  const v = m?.[metric];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function fmtMetric(m: Metrics | null, metric: MetricName): string {
  return metricValue(m, metric)?.toFixed(3) ?? '–';
}

/**
 * The final metric of a model × setting: the cell's, or with seeds the mean over the seeds that
 * finished (null when none did), with each seed's value ('–' for one not finished).
 */
export function cellMetric(recipe: Recipe, cells: CellResult[], model: string, setting: string, metric: MetricName): { value: number | null; perSeed: string[] | null } {
  const value = (c: CellResult | undefined) => metricValue(c?.finalEval ?? null, metric);
  const mine = cells.filter((c) => c.model === model && c.setting === setting);
  if (!recipe.seeds) return { value: value(mine[0]), perSeed: null };
  const values = recipe.seeds.map((seed) => value(mine.find((c) => c.seed === seed)));
  const done = values.filter((v): v is number => v !== null);
  return { value: done.length ? done.reduce((a, b) => a + b, 0) / done.length : null, perSeed: values.map((v) => (v === null ? '–' : v.toFixed(3))) };
}

/** The markdown tables: the metric (with published numbers when the recipe has them), then times. */
export function resultsTable(recipe: Recipe, cells: CellResult[], metric: MetricName): string {
  const header = `| model \\ ${recipe.settingsTitle} | ${recipe.settings.map((s) => s.name).join(' | ')} |`;
  const rule = `|---|${recipe.settings.map(() => '---:').join('|')}|`;
  const published = recipe.published;
  const rows = recipe.models.map((m) => {
    const values = recipe.settings.map((s) => {
      const { value, perSeed } = cellMetric(recipe, cells, m.name, s.name, metric);
      const ours = (value?.toFixed(3) ?? '–') + (perSeed ? ` [${perSeed.join(' / ')}]` : '');
      const paper = published?.[m.name]?.[s.name];
      return published ? `${ours} (${paper === undefined || paper === null ? '–' : paper.toFixed(3)})` : ours;
    });
    return `| ${m.name} | ${values.join(' | ')} |`;
  });
  const times = recipe.models.map((m) => `| ${m.name} | ${recipe.settings.map((s) => {
    const mine = cells.filter((c) => c.model === m.name && c.setting === s.name);
    return mine.length ? formatDuration(mine.reduce((t, c) => t + c.elapsed, 0)) : '–';
  }).join(' | ')} |`);
  const total = cells.reduce((s, c) => s + c.elapsed, 0);
  const seeds = recipe.seeds ? `\nWith seeds ${recipe.seeds.join(', ')}: the mean over the seeds, each seed's value in square brackets; times summed over the seeds.\n` : '';
  const note = seeds + (published ? `\nIn brackets: published numbers${recipe.publishedSource ? ` (${recipe.publishedSource})` : ''}.\n` : '');
  const lines = [
    `${metricTitles[metric]} on held-out samples at the end of training:`, '', header, rule, ...rows, note,
    `training time (total ${formatDuration(total)}):`, '', header, rule, ...times, '',
  ];
  if (recipe.costTable ?? recipe.settings.length === 1) lines.push(...costTable(recipe, cells, metric));
  lines.push(...answersTable(recipe, cells));
  return lines.join('\n');
}

/**
 * For tasks whose exact match is split by kind of sample (quadratic equations: with and without
 * real roots), one row per cell: exact match overall and per kind, and distinct answers per
 * sample, predicted and expected: a model that scores by giving one memorised answer shows here.
 */
function answersTable(recipe: Recipe, cells: CellResult[]): string[] {
  const kinds = [...new Set(cells.flatMap((c) => Object.keys(c.finalEval?.exactMatchBy ?? {})))];
  if (!kinds.length) return [];
  const single = recipe.settings.length === 1;
  const f = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(3));
  const rows = cells.map((c) => {
    const m = c.finalEval;
    return `| ${cellName(c, single)} | ${f(m?.exactMatch)} | ${kinds.map((k) => f(m?.exactMatchBy?.[k])).join(' | ')} | ${f(m?.exactMatchGenerated)} | ${f(m?.distinctAnswers)} | ${f(m?.distinctTargets)} |`;
  });
  return [
    'exact match by kind of sample (teacher-forced), of the answers generated token by token, and distinct generated answers per sample within a held-out batch (expected: what a perfect model gives):',
    '', `| model | exact | ${kinds.map((k) => `exact ${k}`).join(' | ')} | exact generated | distinct generated | distinct expected |`,
    `|---|---:|${kinds.map(() => '---:').join('|')}|---:|---:|---:|`, ...rows, '',
  ];
}

/**
 * One row per cell: the metric, parameters, training time per step, the peak C heap (sampled at
 * the end of each forward pass: weights, optimiser state, data and saved activations) and the
 * memories attended besides the segment (mean over evaluation forwards and layers).
 */
function costTable(recipe: Recipe, cells: CellResult[], metric: MetricName): string[] {
  const single = recipe.settings.length === 1;
  const rows = cells.map((c) => {
    const mib = c.peakHeapBytes === null ? '–' : (c.peakHeapBytes / 2 ** 20).toFixed(0);
    const ms = c.secondsPerStep === null ? '–' : (c.secondsPerStep * 1000).toFixed(0);
    const memory = c.finalEval?.memory;
    const name = cellName(c, single);
    return `| ${name} | ${fmtMetric(c.finalEval, metric)} | ${c.parameters.toLocaleString('en-US')} | ${ms} | ${mib} | ${memory === undefined ? '–' : memory.toFixed(1)} |`;
  });
  return [
    'cost per cell (ms/step: training time per optimiser step; peak heap: C-heap high-water mark at the end of the forward passes; memories: keys attended besides the segment, mean over evaluation forwards and layers):',
    '', `| model | ${metric} | parameters | ms/step | peak heap MiB | memories |`, '|---|---:|---:|---:|---:|---:|', ...rows, '',
  ];
}

/** A cell's name in the per-cell tables: the model, the setting unless there is one only, the seed if any. */
function cellName(c: CellResult, singleSetting: boolean): string {
  return [c.model, ...(singleSetting ? [] : [c.setting]), ...(c.seed === null ? [] : [`seed ${c.seed}`])].join(' / ');
}

/** The metric against the settings, one line per model (with seeds, their mean). */
export function resultsPlot(recipe: Recipe, cells: CellResult[], metric: MetricName): string {
  const xOf = (i: number) => recipe.settings[i]!.x ?? i + 1;
  return lineChart({
    title: `${recipe.name}: ${metricTitles[metric]}`,
    xLabel: recipe.settingsTitle,
    yLabel: metricTitles[metric],
    xTicks: recipe.settings.map((s, i) => ({ x: xOf(i), label: s.name })),
    ...(metric === 'accuracy' || metric === 'exactMatch' ? { yDomain: [0, 1] as [number, number] } : {}),
    series: recipe.models.map((m) => ({
      name: m.name,
      points: recipe.settings.map((s, i) => ({ x: xOf(i), y: cellMetric(recipe, cells, m.name, s.name, metric).value })),
    })),
  });
}
