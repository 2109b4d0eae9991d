import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, readdirSync, readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  arange, EngramError, fromSafetensorsBytes, liveTensors, loadSafetensors, loadTorch, readSafetensorsHeader,
  saveSafetensors, saveTorch, scalar, tensor, tidy, toSafetensorsBytes, zeros, type DType, type Tensor,
} from '../src/index.js';
import { writeFileAtomic } from '../src/tensor/serialize.js';
import { pythonWithTorch } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'engram-serialize-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
const tmpPath = (ext: string): string => join(dir, `f${fileNo++}${ext}`);

let python: string | null | undefined;
const py = (): string | null => (python === undefined ? (python = pythonWithTorch()) : python);

// ---- fixtures ------------------------------------------------------------------------------------

const bytesOf = (t: Tensor): Buffer => Buffer.from(t.contiguous().data().buffer);

/** One tensor of every dtype with edge-case bit patterns, plus 0-d, empty and non-contiguous ones. */
function fixtures(): Record<string, Tensor> {
  return {
    f32: tensor(new Float32Array([1.5, -0, NaN, Infinity, -3.25e-20, 3.4e38]), { shape: [2, 3] }),
    f64: tensor(new Float64Array([Math.PI, -0, -Infinity, 5e-324, 1.7976931348623157e308, NaN]), { shape: [3, 2] }),
    f16: tensor(new Uint16Array([0x3c00, 0x7c00, 0x7e01, 0x8001, 0xfbff, 0x0000]), { dtype: 'float16', shape: [6] }),
    bf16: tensor(new Uint16Array([0x3f80, 0xff80, 0x7fc1, 0x0001, 0xc0a0, 0x7f7f]), { dtype: 'bfloat16', shape: [2, 1, 3] }),
    i64: tensor(new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, 0n, -1n, 123456789012345678n]), { shape: [5] }),
    i32: tensor(new Int32Array([-(2 ** 31), 2 ** 31 - 1, 0, -7]), { shape: [2, 2] }),
    i16: tensor(new Int16Array([-32768, 32767, 1])),
    i8: tensor(new Int8Array([-128, 127, 0, 5])),
    u8: tensor(new Uint8Array([0, 255, 128])),
    flags: tensor([true, false, false, true, true]),
    zeroD: tensor(new Float32Array([2.5]), { shape: [] }),
    zeroDInt: scalar(-9, { dtype: 'int64' }),
    empty: zeros([0, 3]),
    emptyI64: zeros([2, 0, 4], { dtype: 'int64' }),
    transposed: arange(12, undefined, 1, { dtype: 'float32' }).reshape(3, 4).transpose(0, 1),
    strided: arange(20, undefined, 1, { dtype: 'int32' }).slice(0, 1, null, 3),
    expanded: tensor([1, 2, 3], { dtype: 'int16' }).unsqueeze(0).expand(2, 3),
  };
}

function assertSameTensors(actual: Record<string, Tensor>, expected: Record<string, Tensor>): void {
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort());
  for (const [name, e] of Object.entries(expected)) {
    const a = actual[name]!;
    assert.equal(a.dtype, e.dtype, `${name}: dtype`);
    assert.deepEqual(a.shape, e.shape, `${name}: shape`);
    assert.ok(a.isContiguous(), `${name}: contiguous`);
    assert.ok(bytesOf(a).equals(bytesOf(e)), `${name}: bytes differ`);
  }
}

async function rejectsIo(p: Promise<unknown> | (() => unknown), ...patterns: (string | RegExp)[]): Promise<void> {
  const check = (e: unknown): boolean => {
    assert.ok(e instanceof EngramError, `expected EngramError, got ${String(e)}`);
    assert.equal(e.kind, 'io', e.message);
    for (const p of patterns) {
      if (typeof p === 'string') assert.ok(e.message.includes(p), `'${e.message}' should mention '${p}'`);
      else assert.match(e.message, p);
    }
    return true;
  };
  if (typeof p === 'function') assert.throws(p, check);
  else await assert.rejects(p, check);
}

// ---- safetensors ------------------------------------------------------------------------------------

test('safetensors: every dtype, 0-d, empty and non-contiguous tensors round-trip byte for byte (memory and file)', async () => {
  const ts = fixtures();
  assert.ok(!ts.transposed!.isContiguous() && !ts.strided!.isContiguous());
  const fromBytes = fromSafetensorsBytes(toSafetensorsBytes(ts));
  assertSameTensors(fromBytes, ts);
  assert.deepEqual(fromBytes.transposed!.toArray(), [[0, 4, 8], [1, 5, 9], [2, 6, 10], [3, 7, 11]]);
  assert.deepEqual(fromBytes.flags!.toArray(), [true, false, false, true, true]);
  assert.equal(fromBytes.i64!.data()[4], 123456789012345678n);

  const path = tmpPath('.safetensors');
  await saveSafetensors(path, ts, { note: 'fixtures' });
  const loaded = await loadSafetensors(path);
  assertSameTensors(loaded, ts);
  assert.ok(readFileSync(path).equals(Buffer.from(toSafetensorsBytes(ts, { note: 'fixtures' }))), 'file = in-memory bytes');
});

test('safetensors: metadata, names and header inspection', async () => {
  const path = tmpPath('.safetensors');
  const ts: Record<string, Tensor> = { 'ä/β.weight': tensor([1, 2]), __proto__x: tensor([3]) };
  Object.defineProperty(ts, '__proto__', { value: tensor([4], { dtype: 'int8' }), enumerable: true });
  await saveSafetensors(path, ts, { format: 'pt', 'ключ': 'значение "quoted"\n' });
  const header = await readSafetensorsHeader(path);
  assert.deepEqual(header.metadata, { format: 'pt', 'ключ': 'значение "quoted"\n' });
  // widest dtype first (F32 before I8), then by name as UTF-8 bytes ('_' 0x5f < 'ä' 0xc3 0xa4)
  assert.deepEqual(Object.keys(header.tensors), ['__proto__x', 'ä/β.weight', '__proto__']);
  assert.deepEqual(header.tensors['ä/β.weight'], { dtype: 'float32', shape: [2], dataOffsets: [4, 12] });
  const loaded = await loadSafetensors(path);
  assert.ok(Object.prototype.hasOwnProperty.call(loaded, '__proto__'));
  assert.deepEqual(loaded['__proto__']!.toArray(), [4]);
  assert.deepEqual(loaded['ä/β.weight']!.toArray(), [1, 2]);
  assert.deepEqual(await readSafetensorsHeader(readFileSync(path)), header);
});

test('safetensors: a tiny file matches the hand-built byte layout', () => {
  // One F32 tensor [1,2,3] holding 0..5: the header is exactly 64 bytes, so no padding.
  const json1 = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
  assert.equal(json1.length, 64);
  const expected1 = Buffer.concat([
    Buffer.from([64, 0, 0, 0, 0, 0, 0, 0]),
    Buffer.from(json1, 'latin1'),
    Buffer.from([0, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40, 0, 0, 0x80, 0x40, 0, 0, 0xa0, 0x40]),
  ]);
  const got1 = Buffer.from(toSafetensorsBytes({ 'attn.0': arange(6, undefined, 1, { dtype: 'float32' }).reshape(1, 2, 3) }));
  assert.ok(got1.equals(expected1), `got ${got1.toString('hex')}`);

  // Metadata first; I64 before U8 (reference order); 138-byte header padded with 6 spaces to 144.
  const json2 = '{"__metadata__":{"format":"pt"},"y":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},' +
    '"z":{"dtype":"U8","shape":[3],"data_offsets":[8,11]}}      ';
  assert.equal(json2.length, 144);
  const expected2 = Buffer.concat([
    Buffer.from([144, 0, 0, 0, 0, 0, 0, 0]),
    Buffer.from(json2, 'latin1'),
    Buffer.from([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), // -2 as int64 LE
    Buffer.from([1, 2, 3]),
  ]);
  const got2 = Buffer.from(toSafetensorsBytes(
    { z: tensor(new Uint8Array([1, 2, 3])), y: tensor(new BigInt64Array([-2n])) },
    { format: 'pt' },
  ));
  assert.ok(got2.equals(expected2), `got ${got2.toString('hex')}`);

  // No tensors at all: '{}' padded to 8.
  assert.ok(Buffer.from(toSafetensorsBytes({})).equals(Buffer.from([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32])));
  assert.deepEqual(fromSafetensorsBytes(toSafetensorsBytes({})), {});
});

test('safetensors: every tensor is aligned to its element size in the file', async () => {
  const bytes = toSafetensorsBytes({
    a: tensor(new Uint8Array([1, 2, 3])), b: tensor([1.5], { dtype: 'float64' }), c: tensor([1], { dtype: 'int16' }),
    d: tensor([1, 2, 3]), e: tensor([true]), f: tensor([7], { dtype: 'int64' }), g: tensor([1], { dtype: 'bfloat16' }),
  });
  const header = await readSafetensorsHeader(bytes);
  const n = Number(Buffer.from(bytes).readBigUInt64LE(0));
  assert.equal((8 + n) % 8, 0);
  const sizes: Record<DType, number> = { float64: 8, int64: 8, float32: 4, int32: 4, int16: 2, bfloat16: 2, float16: 2, uint8: 1, int8: 1, bool: 1 };
  for (const [name, info] of Object.entries(header.tensors)) {
    assert.equal((8 + n + info.dataOffsets[0]) % sizes[info.dtype], 0, name);
  }
  assert.deepEqual(Object.keys(header.tensors), ['f', 'b', 'd', 'g', 'c', 'a', 'e']);
});

// A safetensors file from a header string and data bytes; n overrides the length field.
function rawFile(header: string, data: number[] = [], n?: number): Buffer {
  const h = Buffer.from(header, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(n ?? h.length));
  return Buffer.concat([len, h, Buffer.from(data)]);
}
const f32 = (name: string, shape: number[], begin: number, end: number): string =>
  `"${name}":{"dtype":"F32","shape":${JSON.stringify(shape)},"data_offsets":[${begin},${end}]}`;

test('safetensors: malformed files are rejected with EngramError kind io naming the file and the problem', async () => {
  const eight = [0, 0, 0, 0, 0, 0, 0, 0];
  const cases: [string, Buffer, RegExp][] = [
    ['too short', Buffer.from([1, 2, 3]), /shorter than the 8-byte header length/],
    ['header past end', rawFile('{}', [], 1000), /header length 1000 runs past the end/],
    ['header too large', rawFile('{}', [], 2 ** 40), /exceeds the limit/],
    ['invalid utf-8', Buffer.concat([rawFile('{"a":1}').subarray(0, 8), Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x20, 0x20, 0x20])]), /not valid UTF-8/],
    ['not json', rawFile('{"a": [1, }'), /not valid JSON/],
    ['not an object', rawFile('[1, 2]  '), /does not start with '\{'/],
    ['entry not an object', rawFile('{"a":3}'), /tensor 'a': entry is not an object/],
    ['unknown dtype', rawFile('{"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}', eight), /dtype 'F33' is unknown/],
    ['unsupported dtype', rawFile('{"a":{"dtype":"U32","shape":[2],"data_offsets":[0,8]}}', eight), /dtype 'U32' is not supported/],
    ['bad shape', rawFile('{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}', eight), /shape must be a list of non-negative integers/],
    ['fractional shape', rawFile('{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}}', eight), /shape must be/],
    ['bad offsets', rawFile('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}}', eight), /data_offsets must be \[begin, end\]/],
    ['reversed offsets', rawFile(`{${f32('a', [0], 8, 0)}}`, eight), /end before they begin/],
    ['shape vs bytes', rawFile(`{${f32('a', [3], 0, 8)}}`, eight), /needs 12 bytes but data_offsets \[0, 8\] hold 8/],
    ['out of bounds', rawFile(`{${f32('a', [4], 0, 16)}}`, eight), /lie outside the 8-byte data section/],
    ['overlap', rawFile(`{${f32('a', [2], 0, 8)},${f32('b', [1], 4, 8)}}`, eight), /tensor 'a'.*overlap|tensor 'b'.*overlap/],
    ['gap', rawFile(`{${f32('a', [1], 4, 8)}}`, eight), /bytes 0\.\.4 of the data section belong to no tensor/],
    ['trailing bytes', rawFile(`{${f32('a', [1], 0, 4)}}`, eight), /cover 4 bytes but the data section holds 8/],
    ['huge shape', rawFile(`{${f32('a', [2 ** 40, 2 ** 40], 0, 8)}}`, eight), /too large/],
    ['metadata not strings', rawFile('{"__metadata__":{"k":1}}'), /__metadata__ 'k' is not a string/],
    ['bool byte', rawFile('{"a":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}}', [1, 2]), /BOOL byte 1 is 2/],
    // the second tensor is bad: the first one, already made, must be freed
    ['bool after a good tensor', rawFile(`{${f32('a', [1], 0, 4)},"b":{"dtype":"BOOL","shape":[2],"data_offsets":[4,6]}}`, [0, 0, 0x80, 0x3f, 1, 7]), /tensor 'b': BOOL byte 1 is 7/],
  ];
  for (const [label, bytes, problem] of cases) {
    const path = tmpPath('.safetensors');
    writeFileSync(path, bytes);
    await rejectsIo(loadSafetensors(path), path, problem).catch((e) => assert.fail(`${label}: ${e.message}`));
    const before = liveTensors(); // no await until the check: finalizers cannot run in between
    await rejectsIo(() => fromSafetensorsBytes(bytes), '<bytes>', problem).catch((e) => assert.fail(`${label}: ${e.message}`));
    assert.equal(liveTensors(), before, `${label}: a failed load frees what it made`);
  }
  await rejectsIo(loadSafetensors(join(dir, 'missing.safetensors')), 'missing.safetensors', /cannot open/);
  // A valid file with the length field corrupted by one.
  const good = Buffer.from(toSafetensorsBytes({ a: tensor([1, 2]) }));
  good.writeBigUInt64LE(good.readBigUInt64LE(0) - 1n);
  await rejectsIo(() => fromSafetensorsBytes(good), /data section|JSON/);
});

test('safetensors: invalid arguments to save are EngramError io', async () => {
  const path = tmpPath('.safetensors');
  const t = tensor([1]);
  await rejectsIo(saveSafetensors(path, { __metadata__: t }), path, /reserved/);
  await rejectsIo(saveSafetensors(path, { a: t }, { k: 5 as unknown as string }), /metadata 'k' is a number/);
  await rejectsIo(saveSafetensors(path, { a: [1, 2] as unknown as Tensor }), /'a' is not a Tensor/);
  const gone = tensor([1]);
  gone.dispose();
  await rejectsIo(saveSafetensors(path, { gone }), /tensor 'gone' is disposed/);
  await rejectsIo(saveSafetensors(join(dir, 'no', 'such', 'dir', 'x.safetensors'), { a: t }), 'x.safetensors', /cannot write/);
  assert.equal(existsSync(path), false);
});

test('save takes the values at the call, even if the tensors change or are freed before the write ends', async () => {
  const path = tmpPath('.safetensors');
  const ptPath = tmpPath('.pt');
  const w = tensor([1, 2, 3]);
  const pending = [saveSafetensors(path, { w }), saveTorch(ptPath, { w })];
  w.add_(10);
  w.dispose();
  await Promise.all(pending);
  assert.deepEqual((await loadSafetensors(path)).w!.toArray(), [1, 2, 3]);
  assert.deepEqual((await loadTorch(ptPath)).w!.toArray(), [1, 2, 3]);
});

test('synchronous byte conversions work inside tidy and free nothing they return', () => {
  const before = liveTensors();
  const out = tidy(() => fromSafetensorsBytes(toSafetensorsBytes({ a: arange(4).mul(2) })));
  assert.equal(liveTensors(), before + 1);
  assert.deepEqual(out.a!.toArray(), [0, 2, 4, 6]);
  out.a!.dispose();
});

// ---- atomic writes ---------------------------------------------------------------------------------

const leftovers = (d: string): string[] => readdirSync(d).filter((f) => f.endsWith('.tmp'));

test('atomic write: no temporary file remains, and a failed write leaves the old file intact', async () => {
  const sub = join(dir, 'atomic');
  mkdirSync(sub);
  const path = join(sub, 'model.safetensors');
  await saveSafetensors(path, { a: tensor([1, 2]) });
  await saveTorch(join(sub, 'model.pt'), { a: tensor([1, 2]) });
  assert.deepEqual(readdirSync(sub).sort(), ['model.pt', 'model.safetensors']);
  const original = readFileSync(path);

  // The writer fails half-way through: the target keeps its old bytes, the temporary file is gone.
  let sawTemp = '';
  await rejectsIo(writeFileAtomic(path, async (fh) => {
    await fh.write(Buffer.from('partial'));
    sawTemp = leftovers(sub).join();
    throw new Error('disk on fire');
  }, 'saveSafetensors'), path, /disk on fire/);
  assert.match(sawTemp, /^\.model\.safetensors\..*\.tmp$/, 'the write went to a temporary file in the same directory');
  assert.deepEqual(leftovers(sub), []);
  assert.ok(readFileSync(path).equals(original));

  // Invalid input: nothing touched.
  const gone = tensor([5]);
  gone.dispose();
  await rejectsIo(saveSafetensors(path, { gone }));
  await rejectsIo(saveTorch(path, { gone }));
  assert.ok(readFileSync(path).equals(original));

  // The rename fails (the target is a directory): the temporary file is removed.
  const asDir = join(sub, 'occupied.safetensors');
  mkdirSync(asDir);
  await rejectsIo(saveSafetensors(asDir, { a: tensor([1]) }), 'occupied.safetensors', /cannot write/);
  await rejectsIo(saveTorch(asDir, { a: tensor([1]) }), 'occupied.safetensors', /cannot write/);
  assert.deepEqual(leftovers(sub), []);
  assert.deepEqual(readdirSync(asDir), []);
});

test('atomic write: concurrent saves to one path leave one complete file', async () => {
  const path = tmpPath('.safetensors');
  const versions = Array.from({ length: 6 }, (_, i) => arange(1000 * (i + 1), undefined, 1, { dtype: 'float32' }).add(i));
  await Promise.all(versions.map((v) => saveSafetensors(path, { v })));
  const got = (await loadSafetensors(path)).v!;
  assert.ok(versions.some((v) => v.numel === got.numel && bytesOf(v).equals(bytesOf(got))));
  assert.deepEqual(leftovers(dir), []);
});

// ---- PyTorch .pt ----------------------------------------------------------------------------------------

test('.pt: every dtype, 0-d, empty and non-contiguous tensors round-trip through saveTorch/loadTorch', async () => {
  const ts = fixtures();
  const path = tmpPath('.pt');
  await saveTorch(path, ts);
  const loaded = await loadTorch(path);
  assert.deepEqual(Object.keys(loaded), Object.keys(ts), 'insertion order is kept');
  for (const [name, e] of Object.entries(ts)) {
    const a = loaded[name]!;
    assert.equal(a.dtype, e.dtype, name);
    assert.deepEqual(a.shape, e.shape, name);
    assert.ok(bytesOf(a).equals(bytesOf(e)), `${name}: bytes differ`);
  }
});

test('.pt: unreadable files are EngramError io naming the file', async () => {
  const path = tmpPath('.pt');
  writeFileSync(path, Buffer.from('this is not a zip archive at all'));
  await rejectsIo(loadTorch(path), path, /not a readable PyTorch file/);
  await rejectsIo(loadTorch(join(dir, 'absent.pt')), 'absent.pt', /cannot open/);
  // A truncated file written by saveTorch.
  const good = tmpPath('.pt');
  await saveTorch(good, { a: arange(100) });
  const bytes = readFileSync(good);
  const cut = tmpPath('.pt');
  writeFileSync(cut, bytes.subarray(0, bytes.length >> 1));
  await rejectsIo(loadTorch(cut), cut);
});

// ---- interop with Python ------------------------------------------------------------------------------

// Prints {name: {dtype, shape, values}} for a dict of tensors d, as JSON (int64 as strings, exactly).
const PY_DUMP = `
import json, sys, torch
def dump(d, meta=None):
    out = {}
    for name, t in d.items():
        v = t.detach().cpu().contiguous().flatten()
        if v.dtype in (torch.float16, torch.bfloat16):
            v = v.double()
        vals = [str(x) for x in v.tolist()] if v.dtype == torch.int64 else v.tolist()
        out[name] = {"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape), "values": vals}
    print(json.dumps({"tensors": out, "metadata": meta}))
`;

function runPython(code: string, ...args: string[]): unknown {
  const r = spawnSync(py()!, ['-c', PY_DUMP + code, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, `python failed: ${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!);
}

type Dumped = { tensors: Record<string, { dtype: string; shape: number[]; values: (number | string | boolean)[] }>; metadata: unknown };

function dumpOf(t: Tensor): { dtype: string; shape: number[]; values: (number | string | boolean)[] } {
  const flat = t.contiguous().reshape(-1);
  const values = t.dtype === 'int64'
    ? Array.from(flat.data() as BigInt64Array, (v) => v.toString())
    : (flat.toArray() as (number | boolean)[]);
  return { dtype: t.dtype, shape: t.shape, values };
}

// Finite values only (Python's json writes NaN, which JSON.parse rejects).
function interopTensors(): Record<string, Tensor> {
  return {
    weight: arange(12, undefined, 1, { dtype: 'float32' }).reshape(3, 4).transpose(0, 1).div(8),
    f64: tensor([Math.PI, -1e-300, 1e300], { dtype: 'float64' }),
    half: tensor([0.5, -2, 65504, 6e-8], { dtype: 'float16' }),
    bf: tensor([1, -0.375, 2 ** 100], { dtype: 'bfloat16' }),
    ids: tensor(new BigInt64Array([2n ** 62n + 1n, -(2n ** 63n), 7n])),
    i32: tensor(new Int32Array([-5, 2 ** 31 - 1])),
    i16: tensor(new Int16Array([-32768, 3])),
    i8: tensor(new Int8Array([-1, 100])),
    u8: tensor(new Uint8Array([0, 255])),
    mask: tensor([[true, false], [false, true]]),
    zeroD: scalar(2.5, { dtype: 'float64' }),
    empty: zeros([0, 3], { dtype: 'int32' }),
  };
}

test('interop: a .pt saved by Engram is read by torch.load with equal values', async (t) => {
  if (!py()) return t.skip('no Python with torch (/usr/bin/python3 -c "import torch" failed)');
  const ts = interopTensors();
  const path = tmpPath('.pt');
  await saveTorch(path, ts);
  // libtorch's pickler tags the dict's types with torch.jit._pickle.restore_type_tag, which
  // torch.load's weights_only mode (the default from PyTorch 2.6) refuses unless it is allowlisted.
  const load = 'import torch.jit._pickle\n' +
    'safe = getattr(torch.serialization, "add_safe_globals", None)\n' +
    'safe and safe([torch.jit._pickle.restore_type_tag])\n' +
    'd = torch.load(sys.argv[1]); assert isinstance(d, dict); dump(d)';
  const got = runPython(load, path) as Dumped;
  assert.deepEqual(Object.keys(got.tensors), Object.keys(ts));
  for (const [name, e] of Object.entries(ts)) assert.deepEqual(got.tensors[name], dumpOf(e), name);
});

test('interop: a .pt written by torch.save in Python is loaded by Engram', async (t) => {
  if (!py()) return t.skip('no Python with torch');
  const path = tmpPath('.pt');
  runPython(`
base = torch.arange(6, dtype=torch.float32).reshape(2, 3)
d = {
    "w": torch.arange(12, dtype=torch.float32).reshape(3, 4).t(),
    "base": base,
    "row": base[1],
    "big": torch.tensor([2**62 + 1, -2**63, 7], dtype=torch.int64),
    "mask": torch.tensor([True, False, True]),
    "half": torch.tensor([0.5, -2.0, 65504.0], dtype=torch.float16),
    "bf": torch.tensor([1.0, -0.375, 2.0**100], dtype=torch.bfloat16),
    "scalar": torch.tensor(2.5, dtype=torch.float64),
    "empty": torch.zeros(0, 3, dtype=torch.int32),
    "u8": torch.tensor([0, 255], dtype=torch.uint8),
}
torch.save(d, sys.argv[1])
dump(d)`, path);
  const loaded = await loadTorch(path);
  assert.deepEqual(Object.keys(loaded), ['w', 'base', 'row', 'big', 'mask', 'half', 'bf', 'scalar', 'empty', 'u8']);
  assert.deepEqual(loaded.w!.toArray(), [[0, 4, 8], [1, 5, 9], [2, 6, 10], [3, 7, 11]]);
  assert.deepEqual(loaded.row!.toArray(), [3, 4, 5]);
  assert.deepEqual(loaded.base!.shape, [2, 3]);
  assert.deepEqual(Array.from(loaded.big!.data() as BigInt64Array), [2n ** 62n + 1n, -(2n ** 63n), 7n]);
  assert.deepEqual(loaded.mask!.toArray(), [true, false, true]);
  assert.equal(loaded.half!.dtype, 'float16');
  assert.deepEqual(loaded.half!.toArray(), [0.5, -2, 65504]);
  assert.equal(loaded.bf!.dtype, 'bfloat16');
  assert.deepEqual(loaded.bf!.toArray(), [1, -0.375, 2 ** 100]);
  assert.deepEqual(loaded.scalar!.shape, []);
  assert.equal(loaded.scalar!.item(), 2.5);
  assert.deepEqual(loaded.empty!.shape, [0, 3]);
  assert.equal(loaded.empty!.dtype, 'int32');
  assert.deepEqual(loaded.u8!.toArray(), [0, 255]);
});

// A minimal safetensors reader using only json, struct and torch.frombuffer: if it reads Engram's
// files, their layout is the standard one.
const PY_ST_READER = `
import struct
DT = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
      "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}
raw = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
assert (8 + n) % 8 == 0, "data must start 8-aligned"
text = raw[8:8 + n].decode("utf-8")
assert text.startswith("{") and text.rstrip(" ").endswith("}"), "JSON padded with spaces only"
header = json.loads(text)
meta = header.pop("__metadata__", None)
body = raw[8 + n:]
d, end = {}, 0
for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
    s, e = info["data_offsets"]
    assert s == end, "tensors must be back to back"
    end = e
    dt = DT[info["dtype"]]
    flat = torch.frombuffer(bytearray(body[s:e]), dtype=dt) if e > s else torch.empty(0, dtype=dt)
    d[name] = flat.reshape(info["shape"])
assert end == len(body), "the tensors must cover the data"
dump(d, meta)
`;

test('interop: a safetensors file from Engram is read by a plain Python reader (json/struct/torch.frombuffer)', async (t) => {
  if (!py()) return t.skip('no Python with torch');
  const ts = interopTensors();
  const path = tmpPath('.safetensors');
  await saveSafetensors(path, ts, { format: 'pt', source: 'engram' });
  const got = runPython(PY_ST_READER, path) as Dumped;
  assert.deepEqual(got.metadata, { format: 'pt', source: 'engram' });
  assert.deepEqual(Object.keys(got.tensors).sort(), Object.keys(ts).sort());
  for (const [name, e] of Object.entries(ts)) assert.deepEqual(got.tensors[name], dumpOf(e), name);
});

test('interop: safetensors.torch.load_file reads Engram files (when the safetensors package is installed)', async (t) => {
  if (!py()) return t.skip('no Python with torch');
  if (spawnSync(py()!, ['-c', 'import safetensors.torch'], { stdio: 'ignore' }).status !== 0) {
    return t.skip('the Python safetensors package is not installed');
  }
  const ts = interopTensors();
  const path = tmpPath('.safetensors');
  await saveSafetensors(path, ts, { format: 'pt' });
  const got = runPython(`
from safetensors import safe_open
from safetensors.torch import load_file
with safe_open(sys.argv[1], framework="pt") as f:
    meta = f.metadata()
dump(load_file(sys.argv[1]), meta)`, path) as Dumped;
  assert.deepEqual(got.metadata, { format: 'pt' });
  for (const [name, e] of Object.entries(ts)) assert.deepEqual(got.tensors[name], dumpOf(e), name);
});
