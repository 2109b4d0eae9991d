// Progress of a run for people: a progress bar on a terminal (loss, tokens/s, ETA), plain
// periodic lines otherwise (logs, CI, pipes). Machine-readable records go to the JSONL log instead.
import cliProgress from 'cli-progress';

export type ProgressMode = 'auto' | 'bar' | 'lines' | 'none';

export interface StepInfo {
  loss: number;
  accuracy?: number;
  tokensPerSec: number;
  lr: number;
  /** A curriculum's stage, e.g. 'stage 2/5 (3 segments)'. */
  stage?: string;
}

export interface ProgressReporter {
  start(total: number, from: number): void;
  update(step: number, info: StepInfo): void;
  /** A line of its own (an evaluation, a checkpoint), printed above the bar. */
  note(line: string): void;
  stop(): void;
}

/** Where progress goes: any text sink; 'bar' needs a terminal (process.stderr or a tty.WriteStream).
 *  Declared here so that Engram's declarations compile without Node's types. */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

export interface ProgressOptions {
  /** Where to write (default process.stderr: stdout stays for results). */
  stream?: ProgressStream;
  /** Prefix of every line, e.g. the experiment cell. */
  label?: string;
  /** Plain-line mode: a line every this many steps. */
  every?: number;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

const fmt = (x: number, digits = 3): string => (Number.isFinite(x) ? x.toFixed(digits) : String(x));

export function createProgress(mode: ProgressMode, options: ProgressOptions = {}): ProgressReporter {
  const stream = options.stream ?? process.stderr;
  const resolved = mode === 'auto' ? (stream.isTTY ? 'bar' : 'lines') : mode;
  if (resolved === 'none') return { start() {}, update() {}, note() {}, stop() {} };
  const label = options.label ? `[${options.label}] ` : '';
  if (resolved === 'lines') return new LineProgress(stream, label, options.every ?? 50);
  return new BarProgress(stream, label);
}

class LineProgress implements ProgressReporter {
  #total = 0;
  #from = 0;
  #started = 0;
  constructor(readonly stream: ProgressStream, readonly label: string, readonly every: number) {}
  start(total: number, from: number): void {
    this.#total = total;
    this.#from = from;
    this.#started = performance.now();
  }
  update(step: number, info: StepInfo): void {
    if (step % this.every !== 0 && step !== this.#total) return;
    const elapsed = (performance.now() - this.#started) / 1000;
    const eta = ((this.#total - step) * elapsed) / Math.max(1, step - this.#from);
    const acc = info.accuracy !== undefined && Number.isFinite(info.accuracy) ? `  acc ${fmt(info.accuracy)}` : '';
    const stage = info.stage ? `  ${info.stage}` : '';
    this.stream.write(`${this.label}step ${step}/${this.#total}${stage}  loss ${fmt(info.loss)}${acc}  ${Math.round(info.tokensPerSec)} tok/s  lr ${info.lr.toExponential(2)}  ETA ${formatDuration(eta)}\n`);
  }
  note(line: string): void {
    this.stream.write(`${this.label}${line}\n`);
  }
  stop(): void {}
}

class BarProgress implements ProgressReporter {
  readonly #multi: cliProgress.MultiBar;
  #bar: cliProgress.SingleBar | null = null;
  constructor(stream: ProgressStream, readonly label: string) {
    this.#multi = new cliProgress.MultiBar({
      stream: stream as NodeJS.WriteStream, // a terminal: cli-progress moves its cursor
      format: `${label}{bar} {value}/{total}{stage} | loss {loss}{acc} | {tps} tok/s | lr {lr} | ETA {eta_formatted}`,
      barsize: 24,
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 50,
      fps: 5,
    }, cliProgress.Presets.shades_classic);
  }
  start(total: number, from: number): void {
    this.#bar = this.#multi.create(total, from, { loss: '-', acc: '', tps: '-', lr: '-', stage: '' });
  }
  update(step: number, info: StepInfo): void {
    const acc = info.accuracy !== undefined && Number.isFinite(info.accuracy) ? ` acc ${fmt(info.accuracy)}` : '';
    this.#bar?.update(step, { loss: fmt(info.loss), acc, tps: Math.round(info.tokensPerSec), lr: info.lr.toExponential(2), stage: info.stage ? ` | ${info.stage}` : '' });
  }
  note(line: string): void {
    this.#multi.log(`${this.label}${line}\n`);
    this.#multi.update(); // draw now: stop() would drop lines still buffered
  }
  stop(): void {
    this.#multi.stop();
  }
}
