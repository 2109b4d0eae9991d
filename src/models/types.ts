// The one interface every memory model implements (SPEC §0): a segment-level recurrent decoder.
//
//   forward(tokens [B, M], state) -> { logits [B, M, V], state, auxLoss }
//
// The state is whatever the model remembers between segments (a per-layer cache, memory tokens,
// ...). It is returned attached to the graph; the caller decides how far gradients run back
// through it (SegmentModel.detachState), so truncated BPTT is a training option, not a model one.
//
// The configuration is a union discriminated on `kind`: a mechanism's options (their schemas and
// defaults live with the mechanism in src/memory) exist, non-null, on their own kind only; so do
// the options that reproduce the reference code (docs/deviations.md), on the kinds they apply to.
// What a model reports about its memory is a Diagnostics record that inspection, the CLI and the
// training log print without knowing the kind.
import type { ZodType } from 'zod';
import type { Precision, Tensor } from '../tensor/index.js';
import type { Module } from '../nn/module.js';
import type { AdaptiveSpanOptions, AdaptiveSpanOptionsInput } from '../memory/adaptive-span.js';
import type { ExpireSpanOptions, ExpireSpanOptionsInput } from '../memory/expire-span.js';
import type { CompressiveOptions, CompressiveOptionsInput } from '../memory/compressive.js';
import type { RmtCacheOptions, RmtCacheOptionsInput } from '../memory/segment-layout.js';
import type { InitialMemory, SequentialWindow } from '../memory/sequential-window.js';

export type {
  AdaptiveSpanOptions, AdaptiveSpanOptionsInput, ExpireSpanOptions, ExpireSpanOptionsInput, CompressiveOptions, CompressiveOptionsInput,
  RmtCacheOptions, RmtCacheOptionsInput, InitialMemory, SequentialWindow,
};

/** What a model carries from one segment to the next: named tensors (lists for per-layer caches). */
export type MemoryState = Record<string, Tensor | Tensor[] | null>;

export interface SegmentOutput<S extends MemoryState = MemoryState> {
  /** [B, M, V] next-token logits for every position of the segment. */
  logits: Tensor;
  /** The state to pass with the next segment (attached to the graph). */
  state: S;
  /** Auxiliary loss to add to the task loss (0-d), or null when the model has none. */
  auxLoss: Tensor | null;
}

/**
 * What a model reports about its memory, as plain numbers under readable names ('spans',
 * 'live memories', ...), so that a consumer prints or plots every entry the same way.
 */
export interface Diagnostics {
  /** Single numbers (e.g. 'memories attended' by the last forward, mean over layers). */
  scalars: Record<string, number>;
  /** [layer]: one number per layer, of the last forward (e.g. Expire-Span's 'live memories'). */
  perLayer: Record<string, number[]>;
  /** [layer][head] (e.g. Adaptive-Span's 'spans' in tokens). */
  perHead: Record<string, number[][]>;
  /**
   * [layer][batch row][block position] of the last forward (e.g. Expire-Span's 'predicted span' of
   * every token); filled only while recordDiagnostics is on (it reads values back every forward).
   */
  perToken: Record<string, number[][][]>;
}

export const emptyDiagnostics = (): Diagnostics => ({ scalars: {}, perLayer: {}, perHead: {}, perToken: {} });

/**
 * A segment being decoded incrementally (SegmentModel.openSegment): its tokens arrive a few at a
 * time, and each feed costs the work of the new positions only (per-layer keys and values of the
 * earlier ones are kept). Runs without gradients, in evaluation mode.
 */
export interface OpenSegment<S extends MemoryState = MemoryState> {
  /** Positions fed so far (< the segment length the caller decodes with). */
  readonly length: number;
  /**
   * Appends tokens int64 [B, n] to the segment; returns the logits [B, n, V] of those positions,
   * the same as forward(all the segment's tokens so far, state) gives there.
   */
  feed(tokens: Tensor): Tensor;
  /**
   * Ends the segment: the state forward(the whole segment, state) would return, detached. The
   * caller owns it; the open segment cannot be fed afterwards.
   */
  commit(): S;
  /** Frees what the open segment holds (not the state it was opened on, which stays the caller's). */
  dispose(): void;
}

export interface SegmentModel<S extends MemoryState = MemoryState> extends Module {
  /** The configuration the model was built from (serialisable; saved beside the weights). */
  readonly config: ModelConfig;
  /** The state before the first segment of a batch of B streams. */
  initState(batch: number): S;
  forward(tokens: Tensor, state: S): SegmentOutput<S>;
  /**
   * How forward() and open segments run (default 'float32'): 'bf16' runs their matrix products in
   * bfloat16 under autocast, the weights staying float32 (src/tensor/precision.ts); the logits
   * and the state they return are float32 either way. A setting of the run, not of the weights:
   * checkpoints are the same in both, and the trainer, evaluation, decoding, serving and
   * inspection set it from their `precision` option.
   */
  precision: Precision;
  /** The same state with gradients stopped (new handles; the input state is left as it is). */
  detachState(state: S): S;
  /**
   * Starts decoding a segment incrementally from `state` (batch rows B), for kinds that can (all
   * built-in ones): see OpenSegment. `segmentLength` is the length the segment will have when
   * committed (what forward() would be given). The state must outlive the open segment.
   */
  openSegment?(state: S, batch: number, segmentLength: number): OpenSegment<S>;
  /**
   * True when a position's output depends on its segment's whole length, not only on the tokens up
   * to it (Expire-Span with its reference options: the initial memory and the key positions follow
   * the block length). Such a model decodes only through openSegment, which is told that length;
   * forward() on a part of a segment gives other logits than the whole segment gives there.
   */
  readonly dependsOnSegmentLength?: boolean;
  /**
   * Memories the last forward attended to besides the segment itself, mean over layers (and
   * batch rows): the cache for Transformer-XL and the sequential models (after Adaptive-Span's
   * trimming, Expire-Span's dropping; raw + compressed for Compressive), plus memory tokens. What
   * attention pays for; evaluation reports its mean. A plain number kept by forward, so it is
   * cheap enough to read after every step.
   */
  memoryFootprint?(): number;
  /** Called by the trainer after every optimiser step (e.g. Adaptive-Span clamps its spans). */
  afterOptimizerStep?(): void;
  /** Record the per-token diagnostics in every forward (off by default: it reads values back from the device). */
  recordDiagnostics: boolean;
  /** The mechanism's diagnostics after the last forward (may read values back: for logs and inspection, not per step). */
  diagnostics(): Diagnostics;
}

/** Kinds without options of their own. */
export type PlainModelKind = 'mem-bottleneck';

/**
 * Each kind's options: the configuration keys they sit under. A mechanism's options (adaptiveSpan,
 * expireSpan, compressive) belong to one kind; the options that reproduce the reference code
 * (docs/deviations.md) belong to every kind whose code path they change: `window` and
 * `initialMemory` to the sequential family, `finalNorm` to the Transformer-XL family, `rmtCache` to RMT.
 */
interface MechanismOptions {
  'transformer': { finalNorm: boolean };
  'xl': { finalNorm: boolean };
  'mem-transformer': { finalNorm: boolean };
  'rmt': { finalNorm: boolean; rmtCache: RmtCacheOptions };
  'sequential': { window: SequentialWindow; initialMemory: InitialMemory };
  'adaptive-span': { adaptiveSpan: AdaptiveSpanOptions; window: SequentialWindow; initialMemory: InitialMemory };
  'expire-span': { expireSpan: ExpireSpanOptions; window: SequentialWindow; initialMemory: InitialMemory };
  'compressive': { compressive: CompressiveOptions; initialMemory: InitialMemory };
  'feedback': { initialMemory: InitialMemory };
}
interface MechanismOptionsInput {
  'transformer': { finalNorm: boolean };
  'xl': { finalNorm: boolean };
  'mem-transformer': { finalNorm: boolean };
  'rmt': { finalNorm: boolean; rmtCache: RmtCacheOptionsInput };
  'sequential': { window: SequentialWindow; initialMemory: InitialMemory };
  'adaptive-span': { adaptiveSpan: AdaptiveSpanOptionsInput; window: SequentialWindow; initialMemory: InitialMemory };
  'expire-span': { expireSpan: ExpireSpanOptionsInput; window: SequentialWindow; initialMemory: InitialMemory };
  'compressive': { compressive: CompressiveOptionsInput; initialMemory: InitialMemory };
  'feedback': { initialMemory: InitialMemory };
}
/** The option keys every resolved configuration has (null on the kinds they do not belong to). */
type BaseOptionKey = 'adaptiveSpan' | 'expireSpan' | 'compressive';
/**
 * Option keys added later (the reference options): optional in a resolved configuration, since one
 * saved before they existed lacks them; the models read a missing one as its default.
 */
type LaterOptionKey = 'window' | 'initialMemory' | 'finalNorm' | 'rmtCache';
type OptionKey = BaseOptionKey | LaterOptionKey;

export type ModelKind = PlainModelKind | keyof MechanismOptions;

/** Hyper-parameters shared by all models (SPEC notation in brackets). */
export interface CommonModelConfig {
  vocabSize: number;
  /** Layers [N]. */
  layers: number;
  /** Hidden size [H]. */
  dModel: number;
  /** Heads [K]; dModel must be divisible by it. */
  heads: number;
  /** Feed-forward inner size. */
  dInner: number;
  dropout: number;
  /** Post-LN as the Transformer-XL reference code (LN(x + f(x))), or pre-LN (x + f(LN(x))). */
  norm: 'post' | 'pre';
  /**
   * Transformer-XL cache length per layer (0: none); for the sequential family, the maximum span
   * L: each query sees at most the L positions up to itself (Compressive: the raw memory length).
   */
  memLen: number;
  /** Memory tokens [m] (MemTransformer, MemBottleneck, RMT). */
  numMemTokens: number;
  /**
   * Each position's input also embeds the token before it in the segment (TokenEmbedding): a
   * one-layer route to "the value after key k" for associative retrieval. Off in the papers' models.
   */
  previousToken: boolean;
}

/** The value of option key O on kind K: its options, or null on a kind it does not belong to. */
type OptionOf<K extends ModelKind, O extends OptionKey> =
  K extends keyof MechanismOptions ? (O extends keyof MechanismOptions[K] ? MechanismOptions[K][O] : null) : null;

/**
 * The configuration of kind K: the common hyper-parameters, and every option key, non-null only on
 * the kinds it belongs to (null on the others, as they are saved in checkpoints).
 */
export type ModelConfigOf<K extends ModelKind> = CommonModelConfig & { kind: K } & { [O in BaseOptionKey]: OptionOf<K, O> } & {
  [O in LaterOptionKey]?: OptionOf<K, O> | undefined;
};

/** A resolved configuration (createModel / resolveModelConfig fill the defaults): a union discriminated on `kind`. */
export type ModelConfig = { [K in ModelKind]: ModelConfigOf<K> }[ModelKind];

/** A configuration of kind K as a user writes it: kind and vocabSize, the rest optional; only K's mechanism options. */
export type ModelConfigInputOf<K extends ModelKind> = Partial<Omit<CommonModelConfig, 'vocabSize'>> & { kind: K; vocabSize: number } & {
  [O in OptionKey]?: (K extends keyof MechanismOptionsInput ? (O extends keyof MechanismOptionsInput[K] ? MechanismOptionsInput[K][O] : never) : never) | null;
};

/** A configuration as a user writes it: a union discriminated on `kind`. */
export type ModelConfigInput = { [K in ModelKind]: ModelConfigInputOf<K> }[ModelKind];

/**
 * What the configuration of a kind requires of a memory size (memLen or numMemTokens): nothing
 * (it must be 0; `instead` says what to use for a positive one), or a positive size (`reason`).
 */
export type SizeRule =
  | { use: 'none'; instead?: string }
  | { use: 'optional' }
  | { use: 'required'; reason?: string };

/** One option key of a kind in the configuration: the key, its schema (with the defaults). */
export interface MechanismOptionsSpec<K extends keyof MechanismOptions = keyof MechanismOptions> {
  key: keyof MechanismOptions[K] & OptionKey;
  /** Parses the value given under the key (undefined when left out) and fills its defaults. */
  schema: ZodType;
  /** Completes the parsed options with defaults that depend on the rest of the configuration. */
  complete?: (parsed: never, config: CommonModelConfig) => MechanismOptions[K][keyof MechanismOptions[K]];
}

/** A kind's registry entry (./registry.ts): everything about the kind outside its model class. */
export interface ModelKindSpec<K extends ModelKind = ModelKind> {
  kind: K;
  build(config: ModelConfigOf<K>): SegmentModel;
  /** Its option keys (empty for a kind without any). */
  options: K extends keyof MechanismOptions ? readonly MechanismOptionsSpec<K>[] : readonly [];
  memLen: SizeRule;
  numMemTokens: SizeRule;
  /**
   * Checks the kind's options together once all are parsed (e.g. the reference's window needs the
   * reference's initial memory): a one-line message for a combination that makes no sense, or null.
   */
  check?: (config: CommonModelConfig & { kind: K } & { [O in OptionKey]: OptionOf<K, O> }) => string | null;
}

/** The entry of any one kind (a union over kinds). */
export type AnyModelKindSpec = { [K in ModelKind]: ModelKindSpec<K> }[ModelKind];
