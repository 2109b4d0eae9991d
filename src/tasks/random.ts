// The data layer's own random numbers: the same seed gives the same samples on every machine,
// whatever libtorch's generator (CPU or CUDA, any version) would have drawn.
//
// Generator: xoshiro128** 1.1 (Blackman & Vigna, https://prng.di.unimi.it/xoshiro128starstar.c),
// 128 bits of state, period 2^128 - 1, 32-bit outputs; Math.imul keeps it in exact 32-bit integer
// arithmetic, so results never depend on floating point. The state is seeded from a safe integer
// by splitmix32 (the 32-bit variant of Steele et al.'s SplitMix: add the golden-ratio increment,
// then a murmur3-style finaliser), four draws, one per state word.
import { configError } from '../tensor/errors.js';

const TWO_32 = 4294967296;

/** splitmix32 step: returns [output, next state], both unsigned 32-bit. */
function splitmix32(state: number): [number, number] {
  const next = (state + 0x9e3779b9) >>> 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return [(z ^ (z >>> 16)) >>> 0, next];
}

const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k));

export class Rng {
  #s0 = 0;
  #s1 = 0;
  #s2 = 0;
  #s3 = 0;

  /** A generator seeded from any safe integer (negative ones too); all 53 bits matter. */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) throw configError('Rng', `seed must be a safe integer, got ${seed}`);
    const big = BigInt(seed);
    const lo = Number(BigInt.asUintN(32, big));
    const hi = Number(BigInt.asUintN(32, big >> 32n));
    // hi folded in through one splitmix round so that seeds 2^32 apart differ in every word
    let state = (lo ^ splitmix32(hi)[0]) >>> 0;
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [out, next] = splitmix32(state);
      words.push(out);
      state = next;
    }
    this.setState(words);
  }

  /** A generator with an exact state (four uint32 words, not all zero), e.g. from state(). */
  static fromState(words: readonly number[]): Rng {
    const r = new Rng(0);
    r.setState(words);
    return r;
  }

  /** The four uint32 words of the state: save them to continue the sequence later exactly. */
  state(): number[] {
    return [this.#s0, this.#s1, this.#s2, this.#s3];
  }

  setState(words: readonly number[]): void {
    if (words.length !== 4 || words.some((w) => !Number.isInteger(w) || w < 0 || w >= TWO_32) || words.every((w) => w === 0)) {
      throw configError('Rng', `a state is four uint32 words, not all zero; got [${words.join(', ')}]`);
    }
    [this.#s0, this.#s1, this.#s2, this.#s3] = words as [number, number, number, number];
  }

  /** The next uniform unsigned 32-bit integer. */
  nextUint32(): number {
    const s1 = this.#s1;
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    this.#s2 ^= this.#s0;
    this.#s3 ^= s1;
    this.#s1 ^= this.#s2;
    this.#s0 ^= this.#s3;
    this.#s2 ^= t;
    this.#s3 = rotl(this.#s3, 11);
    this.#s0 >>>= 0;
    this.#s1 >>>= 0;
    this.#s2 >>>= 0;
    this.#s3 >>>= 0;
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  float(): number {
    const a = this.nextUint32() >>> 5; // 27 bits
    const b = this.nextUint32() >>> 6; // 26 bits
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** Uniform integer in [0, n), n a positive integer <= 2^32; unbiased (rejection of the short tail). */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_32) throw configError('Rng.int', `n must be an integer in [1, 2^32], got ${n}`);
    const limit = TWO_32 - (TWO_32 % n); // multiples of n below 2^32
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  /** Uniform integer in [low, high], both ends included. */
  intBetween(low: number, high: number): number {
    if (!(high >= low)) throw configError('Rng.intBetween', `high (${high}) < low (${low})`);
    return low + this.int(high - low + 1);
  }

  /** True with probability p. */
  bernoulli(p: number): boolean {
    return this.float() < p;
  }

  /** Shuffles an array in place (Fisher–Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i]!;
      items[i] = items[j]!;
      items[j] = tmp;
    }
    return items;
  }

  /** k distinct integers from [0, n), in random order (partial Fisher–Yates). */
  sampleWithoutReplacement(n: number, k: number): number[] {
    if (!Number.isInteger(k) || k < 0 || k > n) throw configError('Rng.sampleWithoutReplacement', `need 0 <= k <= n, got k=${k}, n=${n}`);
    const pool = Array.from({ length: n }, (_, i) => i);
    for (let i = 0; i < k; i++) {
      const j = i + this.int(n - i);
      const tmp = pool[i]!;
      pool[i] = pool[j]!;
      pool[j] = tmp;
    }
    return pool.slice(0, k);
  }

  /** An independent generator seeded from this one's next outputs (advances this one by two draws). */
  fork(): Rng {
    const hi = this.nextUint32() & 0x1fffff; // 21 bits: hi * 2^32 + lo stays a safe integer
    const lo = this.nextUint32();
    return new Rng(hi * TWO_32 + lo);
  }
}
