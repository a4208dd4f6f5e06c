/**
 * State files (docs/artifact-contract.md, section 5): safetensors with one tensor per state
 * input and the metadata `artifact_id`, `step` and `sha256`; checked the same way on load and
 * before every save, so only a state that loads is ever written.
 */
import { sha256 } from "./digest.js";
import { shorten, StateError } from "./errors.js";
import { MAX_WHOLE, stateSpecs, type Manifest } from "./manifest.js";
import { byteOrder, decode, encode as encodeFile } from "./safetensors.js";
import { bytesOf, DTYPES, isFinite, sameShape, type Tensor } from "./tensor.js";

/** sha256 over the tensors in the order of their names' UTF-8 bytes: name, 0, dtype, 0, shape, 0, bytes. */
export async function checksum(tensors: Map<string, Tensor>): Promise<string> {
  const enc = new TextEncoder();
  const zero = Uint8Array.of(0);
  const parts: Uint8Array[] = [];
  for (const name of byteOrder(tensors.keys())) {
    const t = tensors.get(name)!;
    parts.push(enc.encode(name), zero, enc.encode(DTYPES[t.dtype].safetensors), zero, enc.encode(t.shape.join(",")), zero, bytesOf(t));
  }
  return sha256(parts);
}

/** Parse and check the bytes of a state file -> its tensors and steps taken. `initial`: the artifact's own. */
export async function check(raw: Uint8Array, m: Manifest, where: string, initial = false):
  Promise<{ state: Map<string, Tensor>; step: number }> {
  let contents;
  try {
    contents = decode(raw);
  } catch (e) {
    throw new StateError(`state file ${where} is corrupt or not safetensors (${shorten((e as Error).message, 120)}); ` +
      "restore it from a backup or start again from the artifact's state.safetensors");
  }
  const meta = contents.metadata;
  const owner = meta.artifact_id;
  if (initial ? owner !== undefined : owner !== m.artifactId) {
    throw new StateError(`state file ${where} belongs to artifact ${shorten(owner)}, not to this one ('${m.artifactId}'); use the state written for this artifact`);
  }
  const specs = stateSpecs(m);
  const extra = [...contents.tensors.keys()].filter((k) => !specs.some((s) => s.name === k));
  if (extra.length) throw new StateError(`state file ${where} holds tensors the manifest does not list: ${shorten(extra.sort())}`);
  const state = new Map<string, Tensor>();
  for (const s of specs) {
    const t = contents.tensors.get(s.name);
    if (!t) throw new StateError(`state file ${where} lacks tensor ${shorten(s.name)}; it does not match the manifest`);
    if (!sameShape(t.shape, s.shape) || t.dtype !== s.dtype) {
      throw new StateError(`state tensor ${shorten(s.name)} in ${where} is ${t.dtype}[${t.shape}], the manifest says ${s.dtype}[${s.shape}]`);
    }
    if (!isFinite(t)) throw new StateError(`state tensor ${shorten(s.name)} in ${where} holds NaN/Inf; restore an earlier state`);
    state.set(s.name, t);
  }
  const step = meta.step;
  if (step === undefined || !/^[0-9]{1,16}$/.test(step) || Number(step) > MAX_WHOLE) {
    throw new StateError(`state file ${where} has step counter ${shorten(step)}, not a whole number of steps; restore it from a backup`);
  }
  if (meta.sha256 !== (await checksum(contents.tensors))) {
    throw new StateError(`state file ${where} does not match its checksum: its tensors were changed or damaged after it was written; restore it from a backup or start again from state.safetensors`);
  }
  return { state, step: Number(step) };
}

/** The bytes of a state file, checked by `check` exactly as a load would check them. */
export async function encode(state: Map<string, Tensor>, m: Manifest, step: number): Promise<Uint8Array> {
  const raw = encodeFile(state, { step: String(step), sha256: await checksum(state), artifact_id: m.artifactId });
  await check(raw, m, "about to be written");
  return raw;
}

/** Where a trainer keeps its state: a file (Node) or the browser's storage. */
export interface StateStore {
  readonly where: string;
  /** The stored bytes, or null when nothing was stored yet. */
  read(): Promise<Uint8Array | null>;
  /** Replace the stored bytes atomically: a crash at any point leaves the old ones or the new ones. */
  write(bytes: Uint8Array): Promise<void>;
}
