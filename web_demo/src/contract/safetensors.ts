/**
 * The safetensors format (never pickle): an 8-byte little-endian header length, a JSON header
 * {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, the bytes.
 */
import { bytesOf, count, DTYPES, fromBytes, type DType, type Tensor } from "./tensor.js";
import { shorten } from "./errors.js";

/** The safetensors library's own cap on the header. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface Contents {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

const SAFETENSORS_DTYPES = new Map(Object.entries(DTYPES).map(([k, v]) => [v.safetensors, k as DType]));

/** Parse `raw`; an Error names what is malformed. */
export function decode(raw: Uint8Array): Contents {
  if (raw.byteLength < 8) throw new Error("shorter than the 8-byte header length");
  const n = Number(new DataView(raw.buffer, raw.byteOffset, 8).getBigUint64(0, true));
  if (n < 2 || n > Math.min(MAX_HEADER_BYTES, raw.byteLength - 8)) throw new Error(`header length ${n} exceeds the file`);
  const header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(raw.subarray(8, 8 + n)));
  if (header === null || typeof header !== "object" || Array.isArray(header)) throw new Error("the header is not a JSON object");
  const dataStart = 8 + n;
  const tensors = new Map<string, Tensor>();
  let metadata: Record<string, string> = {};
  const spans: [number, number][] = [];
  for (const [name, entry] of Object.entries(header as Record<string, any>)) {
    if (entry === null || typeof entry !== "object") throw new Error(`entry ${shorten(name)} is not an object`);
    if (name === "__metadata__") {
      if (!Object.values(entry).every((v) => typeof v === "string")) throw new Error("__metadata__ is not a map of strings");
      metadata = entry;
      continue;
    }
    const dtype = SAFETENSORS_DTYPES.get(entry.dtype);
    if (!dtype) throw new Error(`tensor ${shorten(name)} has dtype ${shorten(entry.dtype)}`);
    const shape = entry.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0 && d <= 2 ** 31 - 1)) {
      throw new Error(`bad shape of ${shorten(name)}`);
    }
    const [begin, end] = Array.isArray(entry.data_offsets) ? entry.data_offsets : [];
    const size = count(shape) * DTYPES[dtype].size;
    if (!Number.isSafeInteger(begin) || !Number.isSafeInteger(end) || begin < 0 || end < begin
        || end > raw.byteLength - dataStart || end - begin !== size) {
      throw new Error(`tensor ${shorten(name)} has data_offsets that do not fit its shape`);
    }
    spans.push([begin, end]);
    tensors.set(name, fromBytes(dtype, shape, raw.subarray(dataStart + begin, dataStart + end)));
  }
  spans.sort((a, b) => a[0] - b[0]);
  let at = 0;
  for (const [b, e] of spans) {
    if (b !== at) throw new Error("the tensors' byte ranges overlap or leave gaps");
    at = e;
  }
  if (at !== raw.byteLength - dataStart) throw new Error("the file has bytes past its last tensor");
  return { tensors, metadata };
}

/** Names in the order of their UTF-8 bytes (how the Python writer and the checksum order them). */
export function byteOrder(names: Iterable<string>): string[] {
  const enc = new TextEncoder();
  return [...names].map((n) => [n, enc.encode(n)] as const).sort(([, a], [, b]) => {
    for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
    return a.length - b.length;
  }).map(([n]) => n);
}

/** The bytes of a safetensors file holding `tensors` (in name order) and `metadata`. */
export function encode(tensors: Map<string, Tensor>, metadata: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  const names = byteOrder(tensors.keys());
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    header[name] = { dtype: DTYPES[t.dtype].safetensors, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8; // the data starts 8-byte aligned, as the library writes it
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);
  let at = 8 + padded;
  for (const name of names) {
    const b = bytesOf(tensors.get(name)!);
    out.set(b, at);
    at += b.byteLength;
  }
  return out;
}
