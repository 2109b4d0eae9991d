// Streaming text in and out of a language model: generate() yields tokens as they are made,
// score() reads an input of any length in chunks and yields bits per token chunk by chunk.
//
// Both run on a TextSession: a Decoder (the model's memory committed at the last segment boundary
// and the open segment) and the stream's last token, held back until the token after it is known
// (scoring) or asked for (generating). Everything else the stream has seen is fed, so a session
// carries the model's memory across calls: scoring a text in two pieces on one session gives the
// bits of scoring it whole, and generating continues after whatever the session read.
//
// Characters the vocabulary has not seen map to the unknown id 0, as in evaluation on a corpus
// the vocabulary was not built from, and are counted (`unknown`); `unknown: 'error'` refuses them.
// Shapes: n tokens per feed, V vocabulary.
import { createReadStream } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import type { SegmentModel } from '../models/index.js';
import { configError, F, tensor, tidy, type Device } from '../tensor/index.js';
import { Rng } from '../tasks/random.js';
import { UNKNOWN_ID, type CharVocab } from '../tasks/vocab.js';
import type { LoadedRun } from '../train/objective.js';
import { inEvalMode } from '../train/evaluate.js';
import { sampleNext } from './sampling.js';
import { Decoder } from './decoder.js';

/** A character-level language model ready to read and write text. */
export interface TextModel {
  model: SegmentModel;
  vocab: CharVocab;
  /** Tokens per segment M, as in training. */
  segmentLength: number;
}

/** A language model's TextModel; a task run has no text to read and is refused. */
export function textModel(source: LoadedRun | TextModel): TextModel {
  if (!('kind' in source)) return source;
  if (source.kind !== 'lm') throw configError('textModel', `${source.dir} is a task run (${source.config.data.kind === 'task' ? source.config.data.name : 'task'}); text generation and scoring need a language-model run`);
  return { model: source.model, vocab: source.vocab, segmentLength: source.objective.segmentLength };
}

/** What to do with characters the vocabulary has not seen: map them to the unknown id 0 (default), or throw. */
export type UnknownPolicy = 'map' | 'error';

/** Ids of text; unseen characters become UNKNOWN_ID, or an error with policy 'error'. */
function encodeText(vocab: CharVocab, text: string, policy: UnknownPolicy, op: string): { ids: Int32Array; unknown: number } {
  const ids = vocab.encode(text);
  let unknown = 0;
  for (let i = 0; i < ids.length; i++) if (ids[i] === UNKNOWN_ID) unknown++;
  if (unknown > 0 && policy === 'error') {
    const ch = [...text].find((c) => vocab.idOf(c) === UNKNOWN_ID)!;
    const code = ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
    throw configError(op, `character ${JSON.stringify(ch)} (U+${code}) is not in the model's vocabulary; remove it or use unknown: 'map' to score it as the unknown id`);
  }
  return { ids, unknown };
}

/**
 * A model's memory carried over one text stream, across generate() and score() calls. One call
 * at a time (a second concurrent call is refused); dispose() frees the memory.
 */
export class TextSession {
  readonly decoder: Decoder;
  /** The stream's last token, not fed yet (null at the start of the stream). */
  #pending: number | null = null;
  #busy = false;

  constructor(readonly text: TextModel) {
    this.decoder = new Decoder(text.model, text.segmentLength);
  }

  /** Tokens the stream has read or written. */
  get position(): number {
    return this.decoder.position + (this.#pending === null ? 0 : 1);
  }

  /** Takes the session for one call (op); release() gives it back. */
  acquire(op: string): { release(): void } {
    if (this.#busy) throw configError(op, 'the session is in use by another generate or score; wait for it to finish');
    this.#busy = true;
    return { release: () => { this.#busy = false; } };
  }

  /** Appends ids to the stream and gives next-token logits [V] after them (ids may be empty when the stream is not). */
  next(ids: ArrayLike<number>): Float32Array {
    const feed = [...(this.#pending === null ? [] : [this.#pending]), ...Array.from(ids)];
    if (feed.length === 0) throw configError('TextSession.next', 'nothing to condition on: give at least one token');
    this.#pending = null;
    return inEvalMode(this.text.model, () => tidy(() => this.decoder.feed([feed]).select(0, 0).select(0, feed.length - 1).data() as Float32Array));
  }

  /** Holds a generated token back as the stream's last one. */
  hold(id: number): void {
    if (this.#pending !== null) throw configError('TextSession.hold', 'a token is held already');
    this.#pending = id;
  }

  /** Appends ids and gives the bits (base 2) of predicting each one from the stream before it, and how many were predicted. */
  bitsOf(ids: Int32Array): { bits: number; predicted: number } {
    if (ids.length === 0) return { bits: 0, predicted: 0 };
    const feed = this.#pending === null ? Array.from(ids.subarray(0, -1)) : [this.#pending, ...Array.from(ids.subarray(0, -1))];
    const targets = ids.subarray(ids.length - feed.length);
    this.#pending = ids[ids.length - 1]!;
    if (feed.length === 0) return { bits: 0, predicted: 0 };
    const nats = inEvalMode(this.text.model, () => tidy(() => {
      const logits = this.decoder.feed([feed]);
      const t = tensor(Int32Array.from(targets), { dtype: 'int64', shape: [targets.length], device: logits.device as Device });
      return F.crossEntropy(logits.reshape(-1, logits.shape[2]!), t, { reduction: 'sum' }).item();
    }));
    return { bits: nats / Math.LN2, predicted: feed.length };
  }

  dispose(): void {
    this.decoder.dispose();
  }
}

const nextTick = () => new Promise<void>((resolve) => setImmediate(resolve));

export interface GenerateOptions {
  /** Tokens to generate at most (default 200). */
  maxTokens?: number;
  /** 0: greedy (argmax); default 0.8. */
  temperature?: number;
  /** Sample among the k most likely tokens only (0, the default: all). */
  topK?: number;
  /** Sample among the most likely tokens whose probabilities sum to p (1, the default: all). */
  topP?: number;
  /** Stop at the first of these strings: it is not yielded (a session's stream still holds it, as the model wrote it). */
  stop?: readonly string[];
  /** Seed of the sampling (default 0): the same seed, prompt and options give the same tokens. */
  seed?: number;
  /** Aborting ends the generation after the current token (finishReason 'abort'). */
  signal?: AbortSignal;
  /** Continue this session's stream (the prompt follows what it read); by default a fresh one. */
  session?: TextSession;
  /** Characters of the prompt outside the vocabulary (default 'map'). */
  unknown?: UnknownPolicy;
}

export interface GeneratedToken {
  id: number;
  text: string;
  /** 0 for the first generated token. */
  index: number;
}

export interface GenerateSummary {
  text: string;
  /** Tokens generated (a stop string's tokens are not counted). */
  tokens: number;
  promptTokens: number;
  /** Prompt characters outside the vocabulary (mapped to the unknown id). */
  unknown: number;
  finishReason: 'length' | 'stop' | 'abort';
}

/** Checks generate's options; returns them with their defaults. */
function generateSettings(o: GenerateOptions) {
  const s = { maxTokens: o.maxTokens ?? 200, temperature: o.temperature ?? 0.8, topK: o.topK ?? 0, topP: o.topP ?? 1, stop: (o.stop ?? []).filter((x) => x.length > 0), seed: o.seed ?? 0 };
  const bad = (what: string) => { throw configError('generate', what); };
  if (!Number.isSafeInteger(s.maxTokens) || s.maxTokens < 0) bad(`maxTokens must be an integer >= 0 (got ${s.maxTokens})`);
  if (!(s.temperature >= 0) || !Number.isFinite(s.temperature)) bad(`temperature must be a finite number >= 0 (got ${s.temperature})`);
  if (!Number.isSafeInteger(s.topK) || s.topK < 0) bad(`topK must be an integer >= 0 (got ${s.topK})`);
  if (!(s.topP > 0 && s.topP <= 1)) bad(`topP must be in (0, 1] (got ${s.topP})`);
  if (!Number.isSafeInteger(s.seed)) bad(`seed must be a safe integer (got ${s.seed})`);
  return s;
}

/**
 * Continues a prompt, yielding each token as soon as it is made (the event loop runs between
 * tokens, so a server can stream them). Returns the summary when done:
 *
 *   for await (const t of generate(run, 'ROMEO:', { maxTokens: 100, stop: ['\n\n'] })) process.stdout.write(t.text);
 *
 * An empty prompt on a fresh stream starts from '\n'. Tokens that may begin a stop string are held
 * back until they are known not to; the stop string itself is not yielded.
 */
export async function* generate(source: LoadedRun | TextModel, prompt: string, options: GenerateOptions = {}): AsyncGenerator<GeneratedToken, GenerateSummary, undefined> {
  const text = textModel(source);
  const s = generateSettings(options);
  const session = options.session ?? new TextSession(text);
  if (session.text.model !== text.model) throw configError('generate', 'the session belongs to another model');
  const lease = session.acquire('generate');
  try {
    const { ids, unknown } = encodeText(text.vocab, prompt, options.unknown ?? 'map', 'generate');
    let written = '', count = 0;
    const summary = (finishReason: GenerateSummary['finishReason']): GenerateSummary => ({ text: written, tokens: count, promptTokens: ids.length, unknown, finishReason });
    if (options.signal?.aborted) return summary('abort');
    // the prompt joins the stream even when nothing is generated
    let logits = session.next(ids.length === 0 && session.position === 0 ? text.vocab.encode('\n') : ids);
    const rng = new Rng(s.seed);
    /** Generated tokens not yielded yet: their text may begin a stop string. */
    const held: GeneratedToken[] = [];
    let finish: GenerateSummary['finishReason'] = 'length';
    while (count + held.length < s.maxTokens) {
      if (count + held.length > 0) {
        await nextTick();
        if (options.signal?.aborted) {
          finish = 'abort';
          break;
        }
        logits = session.next([]);
      }
      const id = sampleNext(logits, s, rng);
      session.hold(id);
      held.push({ id, text: text.vocab.decode([id]), index: count + held.length });
      const heldText = held.map((t) => t.text).join('');
      const hit = firstStop(heldText, s.stop);
      // release what precedes a stop string, or else what can no longer begin one
      let release = hit >= 0 ? hit : heldText.length - stopPrefixLength(heldText, s.stop);
      while (held.length > 0 && held[0]!.text.length <= release) {
        const t = held.shift()!;
        release -= t.text.length;
        written += t.text;
        count++;
        yield t;
      }
      if (hit >= 0) return summary('stop');
    }
    for (const t of held) {
      written += t.text;
      count++;
      yield t;
    }
    return summary(finish);
  } finally {
    lease.release();
    if (!options.session) session.dispose();
  }
}

/** Index of the earliest stop string in text (-1: none). */
function firstStop(text: string, stops: readonly string[]): number {
  let first = -1;
  for (const stop of stops) {
    const i = text.indexOf(stop);
    if (i >= 0 && (first < 0 || i < first)) first = i;
  }
  return first;
}

/** Length of the longest end of text that begins some stop string (and is shorter than it). */
function stopPrefixLength(text: string, stops: readonly string[]): number {
  let longest = 0;
  for (const stop of stops) {
    for (let n = Math.min(stop.length - 1, text.length); n > longest; n--) {
      if (text.endsWith(stop.slice(0, n))) {
        longest = n;
        break;
      }
    }
  }
  return longest;
}

/** Collects a generation: the summary of generate() (its text without the prompt). */
export async function complete(source: LoadedRun | TextModel, prompt: string, options: GenerateOptions = {}): Promise<GenerateSummary> {
  const it = generate(source, prompt, options);
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
  }
}

// ---- scoring -------------------------------------------------------------------------------------------

/** What score() reads: a string, a file ({ path }), or chunks of text or UTF-8 bytes (a ReadStream, stdin). */
export type ScoreInput = string | { path: string } | AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>;

export interface ScoreOptions {
  /** Characters per yielded chunk (default 4096); the input is read and scored this much at a time. */
  chunkSize?: number;
  /** Continue this session's stream: the input's first character is predicted from what it read. */
  session?: TextSession;
  /** Characters outside the vocabulary (default 'map': scored as the unknown id 0, and counted). */
  unknown?: UnknownPolicy;
  /** Aborting stops after the current chunk. */
  signal?: AbortSignal;
}

export interface ScoreChunk {
  /** 0, 1, ... */
  index: number;
  /** Characters of the input in this chunk. */
  characters: number;
  /** Of them, outside the vocabulary. */
  unknown: number;
  /** Tokens predicted in this chunk (the stream's very first token has no prediction). */
  tokens: number;
  bits: number;
  /** bits / tokens (NaN when no token was predicted). */
  bitsPerToken: number;
  /** Over the input so far (this call's chunks). */
  totalTokens: number;
  totalBits: number;
  cumulativeBitsPerToken: number;
}

/** Pieces of text from a ScoreInput, read lazily; bytes are decoded as UTF-8 across piece boundaries. */
async function* textPieces(input: ScoreInput): AsyncGenerator<string> {
  if (typeof input === 'string') {
    yield input;
    return;
  }
  const source: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array> = 'path' in input ? createReadStream(input.path, { highWaterMark: 1 << 16 }) : input;
  const utf8 = new StringDecoder('utf8');
  let carry = '';
  for await (const piece of source) {
    let text = carry + (typeof piece === 'string' ? piece : utf8.write(piece));
    // a surrogate pair cut between two string pieces waits for its second half
    const last = text.charCodeAt(text.length - 1);
    carry = last >= 0xd800 && last <= 0xdbff ? text.slice(-1) : '';
    if (carry) text = text.slice(0, -1);
    if (text) yield text;
  }
  const rest = carry + utf8.end();
  if (rest) yield rest;
}

/**
 * Scores an input of any length, read in chunks and never whole, with the model's memory carried
 * from chunk to chunk (constant memory): yields each chunk's bits per token and the cumulative
 * figure. Over a whole text the cumulative bits per token equal an evaluation of that text as one
 * stream (evaluateLm with one stream). For a character model a token is a character.
 */
export async function* score(source: LoadedRun | TextModel, input: ScoreInput, options: ScoreOptions = {}): AsyncGenerator<ScoreChunk, ScoreChunk | null, undefined> {
  const text = textModel(source);
  const chunkSize = options.chunkSize ?? 4096;
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) throw configError('score', `chunkSize must be a positive integer (got ${chunkSize})`);
  const session = options.session ?? new TextSession(text);
  if (session.text.model !== text.model) throw configError('score', 'the session belongs to another model');
  const lease = session.acquire('score');
  let index = 0, totalTokens = 0, totalBits = 0;
  let last: ScoreChunk | null = null;
  /** Ids read and not scored yet (fewer than chunkSize between chunks). */
  let buffered = new Int32Array(0);
  const chunk = (ids: Int32Array): ScoreChunk => {
    const unknown = countUnknown(ids);
    const { bits, predicted } = session.bitsOf(ids);
    totalTokens += predicted;
    totalBits += bits;
    last = { index: index++, characters: ids.length, unknown, tokens: predicted, bits, bitsPerToken: bits / predicted, totalTokens, totalBits, cumulativeBitsPerToken: totalBits / totalTokens };
    return last;
  };
  try {
    for await (const piece of textPieces(input)) {
      const { ids } = encodeText(text.vocab, piece, options.unknown ?? 'map', 'score');
      const all = new Int32Array(buffered.length + ids.length);
      all.set(buffered);
      all.set(ids, buffered.length);
      let at = 0;
      for (; all.length - at >= chunkSize; at += chunkSize) {
        yield chunk(all.subarray(at, at + chunkSize));
        await nextTick();
        if (options.signal?.aborted) return last;
      }
      buffered = all.slice(at);
    }
    if (buffered.length > 0) yield chunk(buffered);
    return last;
  } finally {
    lease.release();
    if (!options.session) session.dispose();
  }
}

function countUnknown(ids: Int32Array): number {
  let n = 0;
  for (let i = 0; i < ids.length; i++) if (ids[i] === UNKNOWN_ID) n++;
  return n;
}
