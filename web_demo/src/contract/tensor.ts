/** Dense tensors as the contract stores them: a dtype, a shape (empty: a scalar) and row-major elements. */
export type DType = "float32" | "int64" | "int32" | "bool";
export type Data = Float32Array | BigInt64Array | Int32Array | Uint8Array;

export const DTYPES: Record<DType, { safetensors: string; size: number; make: (n: number) => Data }> = {
  float32: { safetensors: "F32", size: 4, make: (n) => new Float32Array(n) },
  int64: { safetensors: "I64", size: 8, make: (n) => new BigInt64Array(n) },
  int32: { safetensors: "I32", size: 4, make: (n) => new Int32Array(n) },
  bool: { safetensors: "BOOL", size: 1, make: (n) => new Uint8Array(n) },
};

export interface Tensor {
  dtype: DType;
  shape: number[];
  data: Data;
}

export const count = (shape: readonly number[]): number => shape.reduce((a, d) => a * d, 1);

/** A tensor whose `data` views a copy of `bytes` (little-endian, as safetensors and every runtime here store them). */
export function fromBytes(dtype: DType, shape: number[], bytes: Uint8Array): Tensor {
  const { size } = DTYPES[dtype];
  if (bytes.byteLength !== count(shape) * size) {
    throw new Error(`a ${dtype}[${shape}] tensor needs ${count(shape) * size} bytes, got ${bytes.byteLength}`);
  }
  const buf = bytes.slice().buffer; // aligned, owned
  const data = dtype === "float32" ? new Float32Array(buf) : dtype === "int64" ? new BigInt64Array(buf)
    : dtype === "int32" ? new Int32Array(buf) : new Uint8Array(buf);
  return { dtype, shape, data };
}

export const bytesOf = (t: Tensor): Uint8Array => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);

export const scalar = (value: number): Tensor => ({ dtype: "float32", shape: [], data: Float32Array.of(value) });

/** No NaN or Inf (always true of integer tensors). */
export function isFinite(t: Tensor): boolean {
  if (t.dtype !== "float32") return true;
  for (const x of t.data as Float32Array) if (!Number.isFinite(x)) return false;
  return true;
}

export const sameShape = (a: readonly number[], b: readonly number[]): boolean =>
  a.length === b.length && a.every((d, i) => d === b[i]);
