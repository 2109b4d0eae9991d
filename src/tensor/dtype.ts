// Names of dtypes and their codes in the addon (the values of c10::ScalarType).
import { dtypeError } from './errors.js';

export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

export const dtypeCode: Record<DType, number> = {
  uint8: 0, int8: 1, int16: 2, int32: 3, int64: 4, float16: 5, float32: 6, float64: 7, bool: 11, bfloat16: 15,
};
const dtypeByCode = new Map<number, DType>(Object.entries(dtypeCode).map(([k, v]) => [v, k as DType]));

/** op: the op that met the code, named in the error. */
export function dtypeName(code: number, op: string): DType {
  const name = dtypeByCode.get(code);
  if (!name) throw dtypeError(op, `dtype code ${code} (c10::ScalarType) has no Engram dtype; use one of ${Object.keys(dtypeCode).join(', ')}`);
  return name;
}

/** The addon's code of a dtype (null for none); op names the op asking, for the error. */
export function codeOf(dtype: DType | undefined | null, op: string): number | null {
  if (dtype == null) return null;
  const code = Object.hasOwn(dtypeCode, dtype) ? dtypeCode[dtype] : undefined;
  if (code === undefined) throw dtypeError(op, `unknown dtype '${String(dtype)}'; use one of ${Object.keys(dtypeCode).join(', ')}`);
  return code;
}

export const isFloating = (d: DType): boolean => d === 'float32' || d === 'float64' || d === 'float16' || d === 'bfloat16';

/** The TypedArray that holds a dtype's raw elements (16-bit floats as raw Uint16 bits, bool as Uint8). */
export type TypedArray =
  | Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array | Uint16Array;

export const typedArrayOf = {
  float32: Float32Array, float64: Float64Array, int64: BigInt64Array, int32: Int32Array, int16: Int16Array,
  int8: Int8Array, uint8: Uint8Array, bool: Uint8Array, float16: Uint16Array, bfloat16: Uint16Array,
} as const;

/** The dtype a TypedArray's elements have (Uint16Array is ambiguous and needs an explicit dtype). */
export function dtypeOfArray(a: ArrayBufferView, op: string): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof BigInt64Array) return 'int64';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof Int16Array) return 'int16';
  if (a instanceof Int8Array) return 'int8';
  if (a instanceof Uint8Array) return 'uint8';
  throw dtypeError(op, `cannot infer a dtype from ${a.constructor.name}; pass { dtype } (Uint16Array holds float16 or bfloat16 bits)`);
}
