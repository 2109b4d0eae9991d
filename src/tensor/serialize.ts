// Saving and loading tensors: safetensors (written here in TS, over toArrayBuffer/fromArray) and
// PyTorch .pt files (through libtorch's pickler in the addon).
//
// - Saving snapshots every tensor's bytes synchronously, before the first await: what lands on
//   disk is the state at the call, even if training goes on (in-place updates, dispose, tidy)
//   while the write is in flight.
// - Files are written atomically: into a temporary file in the target's directory, flushed, then
//   renamed over the target. A failed or interrupted save leaves the old file (or none) in place,
//   never a truncated one, and removes its temporary file.
// - Every failure is an EngramError of kind 'io' naming the file and the problem.
//
// The safetensors layout (https://github.com/huggingface/safetensors):
//   8 bytes      N, little-endian u64: the length of the header
//   N bytes      UTF-8 JSON object {"__metadata__": {str: str}?, name: {"dtype", "shape",
//                "data_offsets": [begin, end]}, ...}, padded with spaces so that 8 + N is a
//                multiple of 8
//   the rest     the tensors' bytes, little-endian, C order, back to back in the header's order;
//                offsets are relative to the start of this section.
// Tensors are ordered as the reference implementation orders them (widest dtype first, then by
// name), so every tensor's data is aligned to its element size in the file.
import { randomBytes } from 'node:crypto';
import { open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { native } from './native.js';
import { dtypeCode, dtypeName, type DType } from './dtype.js';
import { EngramError, ioError } from './errors.js';
import { fromId, Tensor, type Device } from './tensor.js';

export interface LoadOptions {
  /** Where the loaded tensors live (default 'cpu'). */
  device?: Device;
}

/** What a safetensors header says, without the data. */
export interface SafetensorsHeader {
  metadata: Record<string, string>;
  /** In file order. */
  tensors: Record<string, { dtype: DType; shape: number[]; dataOffsets: [number, number] }>;
}

// ---- dtypes ----------------------------------------------------------------------------------------

const stCode: Record<DType, string> = {
  float32: 'F32', float64: 'F64', bfloat16: 'BF16', float16: 'F16', int64: 'I64', int32: 'I32',
  int16: 'I16', int8: 'I8', uint8: 'U8', bool: 'BOOL',
};
const dtypeOfSt = new Map<string, DType>(Object.entries(stCode).map(([k, v]) => [v, k as DType]));
const itemSize: Record<DType, number> = {
  float32: 4, float64: 8, bfloat16: 2, float16: 2, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1,
};
// The reference writer sorts tensors by its Dtype enum, descending (BOOL < U8 < I8 < F8_* < I16 < U16 <
// F16 < BF16 < I32 < U32 < F32 < F64 < I64 < U64), then by name (bytewise).
const stRank: Record<DType, number> = {
  bool: 0, uint8: 1, int8: 2, int16: 5, float16: 7, bfloat16: 8, int32: 9, float32: 11, float64: 12, int64: 13,
};
// Dtypes of the format that Engram has no tensor type for.
const unsupportedSt = new Set(['U16', 'U32', 'U64', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'F4', 'F6_E2M3', 'F6_E3M2', 'C64']);

/** The reference implementation's limit on the header (100 MB). */
const MAX_HEADER = 100_000_000;
const LITTLE_ENDIAN = endianness() === 'LE';

// ---- errors ----------------------------------------------------------------------------------------

const describe = (e: unknown): string => (e instanceof EngramError ? e.torchMessage : e instanceof Error ? e.message : String(e));

// ---- safetensors: writing --------------------------------------------------------------------------

interface Prepared {
  header: Buffer; // 8-byte length + padded JSON
  parts: Uint8Array[]; // tensor bytes, in header order
  dataLength: number;
}

function checkTensors(op: string, target: string, tensors: Record<string, Tensor>): [string, Tensor][] {
  if (tensors === null || typeof tensors !== 'object') throw ioError(op, `${target}: tensors must be an object of name -> Tensor`);
  const entries = Object.entries(tensors);
  for (const [name, t] of entries) {
    if (!(t instanceof Tensor)) throw ioError(op, `${target}: '${name}' is not a Tensor`);
    if (t.isDisposed) throw ioError(op, `${target}: tensor '${name}' is disposed`);
  }
  return entries;
}

function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

// Synchronous: snapshots the tensors' bytes.
function prepareSafetensors(op: string, target: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): Prepared {
  if (!LITTLE_ENDIAN) throw ioError(op, `${target}: safetensors needs a little-endian machine`);
  const entries = checkTensors(op, target, tensors);
  const header: Record<string, unknown> = {};
  if (metadata !== undefined && metadata !== null) {
    if (typeof metadata !== 'object') throw ioError(op, `${target}: metadata must be an object of string -> string`);
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw ioError(op, `${target}: metadata '${k}' is a ${typeof v}, not a string`);
    }
    define(header, '__metadata__', { ...metadata });
  }
  const items = entries.map(([name, t]) => {
    if (name === '__metadata__') throw ioError(op, `${target}: '__metadata__' is reserved and cannot name a tensor`);
    return { name, t, dtype: t.dtype, shape: t.shape };
  });
  items.sort((a, b) => stRank[b.dtype] - stRank[a.dtype] || compareBytes(a.name, b.name));
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const { name, t, dtype, shape } of items) {
    let bytes: ArrayBuffer;
    try {
      bytes = native.toArrayBuffer(t.id);
    } catch (e) {
      throw ioError(op, `${target}: cannot read tensor '${name}': ${describe(e)}`, e);
    }
    const expected = shape.reduce((a, b) => a * b, 1) * itemSize[dtype];
    if (bytes.byteLength !== expected) throw ioError(op, `${target}: tensor '${name}' gave ${bytes.byteLength} bytes, expected ${expected}`);
    define(header, name, { dtype: stCode[dtype], shape, data_offsets: [offset, offset + bytes.byteLength] });
    parts.push(new Uint8Array(bytes));
    offset += bytes.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json, 'utf8') % 8)) % 8);
  const body = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + body.length);
  out.writeBigUInt64LE(BigInt(body.length), 0);
  body.copy(out, 8);
  return { header: out, parts, dataLength: offset };
}

// An own enumerable property, also for names such as '__proto__'.
function define(obj: object, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** The bytes of a safetensors file holding these tensors (and optional string metadata). */
export function toSafetensorsBytes(tensors: Record<string, Tensor>, metadata?: Record<string, string>): Uint8Array {
  const { header, parts, dataLength } = prepareSafetensors('toSafetensorsBytes', '<bytes>', tensors, metadata);
  const out = Buffer.allocUnsafe(header.length + dataLength);
  header.copy(out, 0);
  let at = header.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Saves tensors to a safetensors file (readable by safetensors.torch.load_file and every other
 * safetensors reader). Names must be unique strings other than '__metadata__'; non-contiguous
 * and CUDA tensors are written as their contiguous CPU copies. The tensors' values are taken
 * when the call is made; the file is replaced atomically when the promise resolves.
 */
export async function saveSafetensors(path: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): Promise<void> {
  const { header, parts } = prepareSafetensors('saveSafetensors', path, tensors, metadata);
  await writeFileAtomic(path, async (fh) => {
    await writeAll(fh, header);
    for (const p of parts) await writeAll(fh, p);
  }, 'saveSafetensors');
}

// ---- safetensors: reading --------------------------------------------------------------------------

interface Entry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}
interface Parsed {
  metadata: Record<string, string>;
  entries: Entry[]; // sorted by offset
  dataStart: number; // 8 + N
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Reads N from the first 8 bytes and checks it against the total length. */
function headerLength(op: string, source: string, first8: Uint8Array, total: number): number {
  if (total < 8) throw ioError(op, `${source}: not a safetensors file: ${total} bytes, shorter than the 8-byte header length`);
  const n = Buffer.from(first8.buffer, first8.byteOffset, 8).readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER)) throw ioError(op, `${source}: header length ${n} exceeds the limit of ${MAX_HEADER} bytes`);
  const len = Number(n);
  if (8 + len > total) throw ioError(op, `${source}: header length ${len} runs past the end of the file (${total} bytes)`);
  return len;
}

function parseHeader(op: string, source: string, json: Uint8Array, total: number): Parsed {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(json);
  } catch (e) {
    throw ioError(op, `${source}: header is not valid UTF-8`, e);
  }
  if (!text.startsWith('{')) throw ioError(op, `${source}: header does not start with '{'`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw ioError(op, `${source}: header is not valid JSON (${describe(e)})`, e);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw ioError(op, `${source}: header is not a JSON object`);
  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, info] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (info === null || typeof info !== 'object' || Array.isArray(info)) throw ioError(op, `${source}: __metadata__ is not an object`);
      for (const [k, v] of Object.entries(info as Record<string, unknown>)) {
        if (typeof v !== 'string') throw ioError(op, `${source}: __metadata__ '${k}' is not a string`);
        define(metadata, k, v);
      }
      continue;
    }
    if (info === null || typeof info !== 'object' || Array.isArray(info)) throw ioError(op, `${source}: tensor '${name}': entry is not an object`);
    const { dtype: st, shape, data_offsets: offsets } = info as Record<string, unknown>;
    if (typeof st !== 'string') throw ioError(op, `${source}: tensor '${name}': missing dtype`);
    const dtype = dtypeOfSt.get(st);
    if (!dtype) {
      const why = unsupportedSt.has(st) ? 'is not supported by Engram' : 'is unknown';
      throw ioError(op, `${source}: tensor '${name}': dtype '${st}' ${why} (supported: ${[...dtypeOfSt.keys()].join(', ')})`);
    }
    if (!Array.isArray(shape) || !shape.every(isCount)) throw ioError(op, `${source}: tensor '${name}': shape must be a list of non-negative integers`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
      throw ioError(op, `${source}: tensor '${name}': data_offsets must be [begin, end] with non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) throw ioError(op, `${source}: tensor '${name}': data_offsets [${begin}, ${end}] end before they begin`);
    let bytes = itemSize[dtype];
    for (const s of shape as number[]) {
      bytes *= s;
      if (!Number.isSafeInteger(bytes)) throw ioError(op, `${source}: tensor '${name}': shape [${shape}] is too large`);
    }
    if (bytes !== end - begin) {
      throw ioError(op, `${source}: tensor '${name}': shape [${shape}] of ${st} needs ${bytes} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`);
    }
    entries.push({ name, dtype, shape: shape as number[], begin, end });
  }
  const dataStart = 8 + json.length;
  const dataLength = total - dataStart;
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const e of entries) {
    if (e.end > dataLength) {
      throw ioError(op, `${source}: tensor '${e.name}': data_offsets [${e.begin}, ${e.end}] lie outside the ${dataLength}-byte data section`);
    }
    if (e.begin < at) throw ioError(op, `${source}: tensor '${e.name}': data_offsets [${e.begin}, ${e.end}] overlap the previous tensor (ending at ${at})`);
    if (e.begin > at) throw ioError(op, `${source}: tensor '${e.name}': bytes ${at}..${e.begin} of the data section belong to no tensor`);
    at = e.end;
  }
  if (at !== dataLength) throw ioError(op, `${source}: the tensors cover ${at} bytes but the data section holds ${dataLength} (trailing bytes)`);
  return { metadata, entries, dataStart };
}

function makeTensor(op: string, source: string, e: Entry, bytes: Uint8Array): number {
  if (e.dtype === 'bool') {
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i]! > 1) throw ioError(op, `${source}: tensor '${e.name}': BOOL byte ${i} is ${bytes[i]}, not 0 or 1`);
    }
  }
  // fromArray copies the bytes (the element type is given by the dtype code, so no alignment is needed).
  return native.fromArray(bytes, dtypeCode[e.dtype], e.shape);
}

// Moves a new tensor to its device (freeing the CPU copy).
function place(id: number, device: Device | undefined): number {
  if (device === undefined || device === 'cpu') return id;
  try {
    return native.to(id, null, device, false);
  } finally {
    native.free(id);
  }
}

// Makes one tensor per name (make(i) returns a native id) and wraps them in a record, in order;
// on any failure frees what was made so far.
async function collect(names: string[], make: (i: number) => number | Promise<number>, device: Device | undefined): Promise<Record<string, Tensor>> {
  const ids: number[] = [];
  try {
    for (let i = 0; i < names.length; i++) ids.push(place(await make(i), device));
  } catch (err) {
    native.freeMany(ids);
    throw err;
  }
  return wrapAll(names, ids);
}
function collectSync(names: string[], make: (i: number) => number, device: Device | undefined): Record<string, Tensor> {
  const ids: number[] = [];
  try {
    for (let i = 0; i < names.length; i++) ids.push(place(make(i), device));
  } catch (err) {
    native.freeMany(ids);
    throw err;
  }
  return wrapAll(names, ids);
}
function wrapAll(names: string[], ids: number[]): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  names.forEach((name, i) => define(out, name, fromId(ids[i]!)));
  return out;
}

/** Tensors from the bytes of a safetensors file (copied: the bytes may be reused afterwards). */
export function fromSafetensorsBytes(bytes: Uint8Array, options: LoadOptions = {}): Record<string, Tensor> {
  const op = 'fromSafetensorsBytes', source = '<bytes>';
  if (!LITTLE_ENDIAN) throw ioError(op, `${source}: safetensors needs a little-endian machine`);
  if (!(bytes instanceof Uint8Array)) throw ioError(op, `${source}: expected a Uint8Array`);
  const n = headerLength(op, source, bytes.subarray(0, 8), bytes.length);
  const { entries, dataStart } = parseHeader(op, source, bytes.subarray(8, 8 + n), bytes.length);
  return collectSync(entries.map((e) => e.name), (i) => {
    const e = entries[i]!;
    return makeTensor(op, source, e, bytes.subarray(dataStart + e.begin, dataStart + e.end));
  }, options.device);
}

async function readAt(fh: FileHandle, length: number, position: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, Math.min(length - done, 1 << 30), position + done);
    // (withFile names the op and file: this one is rewrapped there)
    if (bytesRead === 0) throw ioError('read', `unexpected end of file at byte ${position + done}`);
    done += bytesRead;
  }
  return buf;
}

async function withFile<T>(op: string, path: string, fn: (fh: FileHandle, size: number) => Promise<T>): Promise<T> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw ioError(op, `${path}: cannot open: ${describe(e)}`, e);
  }
  try {
    const size = (await fh.stat()).size;
    return await fn(fh, size);
  } catch (e) {
    if (e instanceof EngramError && e.kind === 'io' && e.op === op) throw e;
    throw ioError(op, `${path}: cannot read: ${describe(e)}`, e);
  } finally {
    await fh.close().catch(() => {});
  }
}

async function readParsed(op: string, path: string, fh: FileHandle, size: number): Promise<Parsed> {
  if (!LITTLE_ENDIAN) throw ioError(op, `${path}: safetensors needs a little-endian machine`);
  const first8 = size >= 8 ? await readAt(fh, 8, 0) : new Uint8Array(0);
  const n = headerLength(op, path, first8, size);
  return parseHeader(op, path, await readAt(fh, n, 8), size);
}

/**
 * Loads every tensor of a safetensors file, by name, in file order. The file is validated first
 * (header, dtypes, shapes against offsets, offsets in bounds, non-overlapping and covering the data).
 */
export async function loadSafetensors(path: string, options: LoadOptions = {}): Promise<Record<string, Tensor>> {
  const op = 'loadSafetensors';
  return withFile(op, path, async (fh, size) => {
    const { entries, dataStart } = await readParsed(op, path, fh, size);
    // One tensor at a time: the peak is the tensors plus the largest one's bytes.
    return collect(entries.map((e) => e.name), async (i) => {
      const e = entries[i]!;
      return makeTensor(op, path, e, await readAt(fh, e.end - e.begin, dataStart + e.begin));
    }, options.device);
  });
}

/** The metadata and tensor descriptions of a safetensors file (a path, or its bytes), without the data. */
export async function readSafetensorsHeader(source: string | Uint8Array): Promise<SafetensorsHeader> {
  const op = 'readSafetensorsHeader';
  const parsed = typeof source === 'string'
    ? await withFile(op, source, (fh, size) => readParsed(op, source, fh, size))
    : (() => {
        const n = headerLength(op, '<bytes>', source.subarray(0, 8), source.length);
        return parseHeader(op, '<bytes>', source.subarray(8, 8 + n), source.length);
      })();
  const tensors: SafetensorsHeader['tensors'] = {};
  for (const e of parsed.entries) define(tensors, e.name, { dtype: e.dtype, shape: e.shape, dataOffsets: [e.begin, e.end] });
  return { metadata: parsed.metadata, tensors };
}

// ---- PyTorch .pt ---------------------------------------------------------------------------------------

/**
 * Saves tensors as a PyTorch file: what Python's torch.save({name: tensor, ...}) writes, so
 * torch.load reads it. Values are taken when the call is made; the file is replaced atomically.
 */
export async function saveTorch(path: string, tensors: Record<string, Tensor>): Promise<void> {
  const op = 'saveTorch';
  const entries = checkTensors(op, path, tensors);
  let bytes: Uint8Array;
  try {
    bytes = native.pickleSave(entries.map(([n]) => n), entries.map(([, t]) => t.id));
  } catch (e) {
    throw ioError(op, `${path}: cannot serialise: ${describe(e)}`, e);
  }
  await writeFileAtomic(path, (fh) => writeAll(fh, bytes), op);
}

/** Loads a PyTorch file holding a dict of name -> tensor (as written by torch.save or saveTorch). */
export async function loadTorch(path: string, options: LoadOptions = {}): Promise<Record<string, Tensor>> {
  const op = 'loadTorch';
  const bytes = await withFile(op, path, (fh, size) => readAt(fh, size, 0));
  let loaded: { names: string[]; ids: number[] };
  try {
    loaded = native.pickleLoad(bytes);
  } catch (e) {
    throw ioError(op, `${path}: not a readable PyTorch file of a dict of tensors: ${describe(e)}`, e);
  }
  const { names, ids } = loaded;
  for (let i = 0; i < ids.length; i++) {
    const code = native.dtype(ids[i]!);
    try {
      dtypeName(code, op);
    } catch {
      native.freeMany(ids);
      throw ioError(op, `${path}: tensor '${names[i]}' has a dtype Engram does not support (ScalarType ${code})`);
    }
  }
  let reached = -1;
  try {
    return await collect(names, (i) => ids[(reached = i)]!, options.device);
  } catch (e) {
    native.freeMany(ids.slice(reached + 1)); // those collect() had not reached yet
    throw e;
  }
}

// ---- atomic files ----------------------------------------------------------------------------------------

async function writeAll(fh: WritableFile, data: Uint8Array): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, Math.min(data.length - done, 1 << 30));
    done += bytesWritten;
  }
}

/** Names writeFileAtomic gives its temporary files: .<name>.<pid>.<12 hex>.tmp */
const TEMP_FILE = /^\..+\.\d+\.[0-9a-f]{12}\.tmp$/;

/**
 * @internal Removes the temporary files that writes killed midway left in dir (a SIGKILL gives
 * writeFileAtomic no chance to clean up). Call it only when no other process writes into dir
 * (a run directory under its lock). Returns the names removed.
 */
export async function removeTempFiles(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const f of await readdir(dir).catch(() => [] as string[])) {
    if (TEMP_FILE.test(f) && (await unlink(join(dir, f)).then(() => true, () => false))) removed.push(f);
  }
  return removed;
}

/** What writeFileAtomic's callback writes through: the part of node:fs/promises' FileHandle it
 *  needs, declared here so that Engram's declarations compile without Node's types. */
export interface WritableFile {
  writeFile(data: string | Uint8Array): Promise<void>;
  write(data: Uint8Array, offset?: number, length?: number): Promise<{ bytesWritten: number }>;
}

/**
 * @internal Writes a file atomically: write(fh) fills a new temporary file in the same directory,
 * which is flushed to disk and renamed over path. On any failure the temporary file is removed,
 * path is left as it was, and the error is rethrown as an EngramError of kind 'io'.
 */
export async function writeFileAtomic(path: string, write: (fh: WritableFile) => Promise<void>, op = 'writeFile'): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, 'wx');
    await write(fh);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, path);
  } catch (e) {
    if (fh) await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    if (e instanceof EngramError && e.kind === 'io') throw e;
    throw ioError(op, `${path}: cannot write: ${describe(e)}`, e);
  }
}
