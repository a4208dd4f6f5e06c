/**
 * An artifact's manifest.json, read and checked by the contract's rules
 * (docs/artifact-contract.md; the references are edgetune.contract.manifest in Python and
 * Manifest.kt in Kotlin): the schema, every rule, its digest (artifact_id) and the sha256 of
 * every file the trainer will read.
 */
import { ArtifactError, shorten } from "./errors.js";
import { sha256 } from "./digest.js";
import * as N from "./names.js";
import { DTYPES, sameShape, type DType } from "./tensor.js";

export const FORMAT = "edgetune.artifact";
export const VERSION = 2;
export const STATE_FILE = "state.safetensors";
export const MAX_MANIFEST_BYTES = 16 * 2 ** 20;
const MAX_BATCH = 4096, MAX_SEQ_LEN = 65536, MAX_BATCH_TOKENS = 2 ** 20, MAX_ELEMENTS = 2 ** 31 - 1;
export const MAX_WHOLE = 2 ** 53;
export const FLOAT32_MAX = 3.4028234663852886e38;
const MAX_NAME = 1024;
const TASKS = ["sequence_classification", "causal_lm"];
const OPTIMIZERS = ["adamw", "sgd", "zo"];
const ROLES = ["state", "batch", "hyper", "noise", "metric"];
const RUNTIMES: Record<string, string> = { onnx: ".onnx", executorch: ".pte", coreml: ".mlpackage" };
/** lowering.onnx key naming the file of an ONNX program's frozen weights (ONNX external data), when not inline. */
const ONNX_WEIGHTS_KEY = "external_data";
const ONNX_WEIGHTS_SUFFIX = ".onnx.data";
const FIELDS = new Set(["format", "version", "artifact_id", "task", "batch_size", "seq_len", "programs", "seq_buckets",
  "optimizer", "hashes", "labels", "tokenizer", "model", "adapters"]);
const ID_PLACEHOLDER = "0".repeat(16);

export interface TensorSpec {
  name: string;
  shape: number[];
  dtype: DType;
  role: string;
  feeds: string | null;
}

export interface ProgramSpec {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  files: Record<string, string>;
  lowering: Record<string, Record<string, unknown>>;
}

export const ofRole = (p: ProgramSpec, role: string, outputs = false): TensorSpec[] =>
  (outputs ? p.outputs : p.inputs).filter((t) => t.role === role);

/** The file of the ONNX program's frozen weights, or null when they are inside the .onnx file. */
export const onnxWeights = (p: ProgramSpec): string | null =>
  p.files.onnx && typeof p.lowering.onnx?.[ONNX_WEIGHTS_KEY] === "string" ? (p.lowering.onnx[ONNX_WEIGHTS_KEY] as string) : null;

/** Every file `p` reads on `runtime` (all runtimes when undefined): program files and the ONNX weights file. */
export const dataFiles = (p: ProgramSpec, runtime?: string): string[] => [
  ...Object.entries(p.files).filter(([rt]) => runtime === undefined || rt === runtime).map(([, f]) => f),
  ...(runtime === undefined || runtime === "onnx" ? [onnxWeights(p)].filter((f): f is string => f !== null) : [])];

export interface Manifest {
  artifactId: string;
  task: string;
  batchSize: number;
  seqLen: number;
  programs: Record<string, ProgramSpec>;
  optimizer: Record<string, unknown>;
  hashes: Record<string, string>;
  labels: string[] | null;
  tokenizer: string | null;
  seqBuckets: number[];
}

/** The tensors of a state file: the step's state inputs. */
export const stateSpecs = (m: Manifest): TensorSpec[] => (m.programs.step ? ofRole(m.programs.step, "state") : []);

/** Rows per call of the inference program. */
export const inferBatch = (m: Manifest): number =>
  m.programs.infer?.inputs.find((t) => t.name === N.INPUT_IDS)?.shape[0] ?? m.batchSize;

/** (program name, its sequence length) of the shortest step that holds `length` tokens. */
export function stepProgramFor(m: Manifest, length: number): [string, number] {
  const fits = m.seqBuckets.filter((n) => n >= length);
  const n = fits.length ? Math.min(...fits) : m.seqLen;
  return [n !== m.seqLen ? `step_s${n}` : "step", n];
}

// ---- typed reads of untrusted JSON (an Error names the field) --------------------------------
const bad = (field: string, what: string, x: unknown): never => {
  throw new Error(`${field} must be ${what}, not ${shorten(x)}`);
};
const whole = (x: unknown, field: string, lo = 0, hi = MAX_WHOLE): number =>
  Number.isSafeInteger(x) && (x as number) >= lo && (x as number) <= hi ? (x as number) : bad(field, `a whole number in [${lo}, ${hi}]`, x);
const text = (x: unknown, field: string, limit = MAX_NAME): string =>
  typeof x === "string" && x.length > 0 && [...x].length <= limit ? x : bad(field, `a non-empty string of at most ${limit} characters`, x);
const fileName = (x: unknown, field: string): string => {
  const n = text(x, field);
  return /[/\\\0]/.test(n) || n.startsWith(".") ? bad(field, "a plain file name inside the artifact", n) : n;
};
const mapping = (x: unknown, field: string): Record<string, unknown> =>
  x !== null && typeof x === "object" && !Array.isArray(x) ? (x as Record<string, unknown>) : bad(field, "a JSON object", x);
const listing = (x: unknown, field: string, limit = 2 ** 20): unknown[] =>
  Array.isArray(x) && x.length <= limit ? x : bad(field, `a JSON list of at most ${limit} entries`, x);

function tensorSpec(x: unknown, where: string): TensorSpec {
  const d = mapping(x, where);
  const name = text(d.name, `${where} name`);
  const w = `tensor ${shorten(name)}`;
  const shape = listing(d.shape, `${w} shape`, 8).map((s) => whole(s, `${w} shape`, 0, MAX_ELEMENTS));
  if (shape.reduce((a, b) => a * b, 1) > MAX_ELEMENTS) throw new Error(`${w} has more than ${MAX_ELEMENTS} elements`);
  const unknown = Object.keys(d).filter((k) => !["name", "shape", "dtype", "role", "feeds"].includes(k));
  if (unknown.length) throw new Error(`${w} has unknown keys ${shorten(unknown.sort())}`);
  const dtype = text(d.dtype, `${w} dtype`, 16);
  const role = text(d.role, `${w} role`, 16);
  if (!(dtype in DTYPES)) throw new Error(`${w}: dtype ${shorten(dtype)} is not one of ${Object.keys(DTYPES)}`);
  if (!ROLES.includes(role)) throw new Error(`${w}: role ${shorten(role)} is not one of ${ROLES}`);
  return { name, shape, dtype: dtype as DType, role, feeds: d.feeds == null ? null : text(d.feeds, `${w} feeds`) };
}

/** The manifest's JSON -> Manifest, with every value's type and bounds checked. */
export function parse(json: string, where = "manifest.json"): Manifest {
  let d: unknown;
  try {
    d = JSON.parse(json);
  } catch (e) {
    throw new ArtifactError(`${where} is not valid JSON (${(e as Error).message}); re-export the artifact`);
  }
  const root = d !== null && typeof d === "object" && !Array.isArray(d) ? (d as Record<string, unknown>) : null;
  if (root?.format !== FORMAT) throw new ArtifactError(`${where} is not an edgetune manifest (format=${shorten(root?.format)})`);
  if (root.version !== VERSION) {
    throw new ArtifactError(`${where} has manifest version ${shorten(root.version)}; this trainer reads version ${VERSION}: re-export the artifact`);
  }
  try {
    const unknown = Object.keys(root).filter((k) => !FIELDS.has(k));
    if (unknown.length) throw new Error(`unknown keys ${shorten(unknown.sort())}`);
    for (const k of ["artifact_id", "task", "batch_size", "seq_len", "programs", "hashes"]) {
      if (!(k in root)) throw new Error(`'${k}' is missing`);
    }
    // the task first: a tensors artifact (seq_len 0) trains on the Python runner, not here
    if (!TASKS.includes(root.task as string)) {
      throw new Error(`task ${shorten(root.task)} is not one of ${TASKS}, the tasks this trainer implements`);
    }
    const programs: Record<string, ProgramSpec> = {};
    for (const [k, v] of Object.entries(mapping(root.programs, "programs"))) {
      const name = text(k, "program name", 32);
      const p = mapping(v, `program '${name}'`);
      const files = Object.fromEntries(Object.entries(mapping(p.files ?? {}, `program '${name}' files`))
        .map(([rt, f]) => [text(rt, `program '${name}' runtime`, 32), fileName(f, `program '${name}' file`)]));
      const lowering = Object.fromEntries(Object.entries(mapping(p.lowering ?? {}, `program '${name}' lowering`))
        .map(([rt, x]) => [rt, mapping(x, `program '${name}' lowering.${rt}`)]));
      if (lowering.onnx && ONNX_WEIGHTS_KEY in lowering.onnx) {
        fileName(lowering.onnx[ONNX_WEIGHTS_KEY], `program '${name}' lowering.onnx.${ONNX_WEIGHTS_KEY}`);
      }
      const [inputs, outputs] = ["inputs", "outputs"].map((key) =>
        listing(p[key], `program '${name}' ${key}`, 2 ** 16).map((t) => tensorSpec(t, `program '${name}' ${key}`)));
      programs[name] = { inputs, outputs, files, lowering };
    }
    mapping(root.model ?? {}, "model");
    mapping(root.adapters ?? {}, "adapters");
    return {
      artifactId: text(root.artifact_id, "artifact_id", 16),
      task: text(root.task, "task", 64),
      batchSize: whole(root.batch_size, "batch_size", 1, MAX_BATCH),
      seqLen: whole(root.seq_len, "seq_len", 2, MAX_SEQ_LEN),
      programs,
      optimizer: mapping(root.optimizer ?? {}, "optimizer"),
      hashes: Object.fromEntries(Object.entries(mapping(root.hashes, "hashes")).map(([f, h]) => [fileName(f, "hashes key"),
        typeof h === "string" && /^[0-9a-f]{64}$/.test(h) ? h : bad(`hashes[${shorten(f)}]`, "a sha256 in 64 lowercase hex digits", h)])),
      labels: root.labels == null ? null : listing(root.labels, "labels", 2 ** 16).map((l) => text(l, "label")),
      tokenizer: root.tokenizer == null ? null : fileName(root.tokenizer, "tokenizer"),
      seqBuckets: listing(root.seq_buckets ?? [], "seq_buckets", 64).map((n) => whole(n, "seq_buckets", 2, MAX_SEQ_LEN)),
    };
  } catch (e) {
    throw new ArtifactError(`${where} is missing or has a malformed field: ${(e as Error).message}; re-export the artifact`);
  }
}

const batchShapeOk = (b: number, s: number) => b >= 1 && b <= MAX_BATCH && s >= 2 && s <= MAX_SEQ_LEN && b * s <= MAX_BATCH_TOKENS;
const sameSpec = (a: TensorSpec, b: TensorSpec) =>
  a.name === b.name && a.dtype === b.dtype && a.role === b.role && a.feeds === b.feeds && sameShape(a.shape, b.shape);

/** Every broken rule of the contract (empty: the manifest is valid). */
export function problems(m: Manifest): string[] {
  const out: string[] = [];
  if (!TASKS.includes(m.task)) out.push(`task '${m.task}' is not one of ${TASKS}`);
  if (!batchShapeOk(m.batchSize, m.seqLen)) out.push(`batch_size=${m.batchSize}, seq_len=${m.seqLen} are out of range`);
  if (!/^[0-9a-f]{16}$/.test(m.artifactId)) out.push(`artifact_id ${shorten(m.artifactId)} must be 16 lowercase hex digits`);
  const files = new Set([...Object.values(m.programs).flatMap((p) => dataFiles(p)), STATE_FILE,
    ...(m.tokenizer ? [m.tokenizer] : [])]);
  const hashed = Object.keys(m.hashes);
  if (hashed.length !== files.size || !hashed.every((f) => files.has(f))) {
    out.push(`hashes must list exactly the artifact's files ${shorten([...files].sort())}, not ${shorten(hashed.sort())}`);
  }
  const trains = "step" in m.programs;
  if (trains) out.push(...optimizerProblems(m.optimizer));
  const expected = new Set(["infer", ...(trains ? ["step", ...m.seqBuckets.map((n) => `step_s${n}`)] : [])]);
  const names = Object.keys(m.programs);
  if (names.length !== expected.size || !names.every((n) => expected.has(n))) {
    out.push(`programs ${shorten(names.sort())} do not match seq_buckets ${shorten(m.seqBuckets)} (expected ${shorten([...expected].sort())})`);
  }
  if (m.seqBuckets.some((n) => n < 2 || n >= m.seqLen)) out.push(`seq_buckets ${shorten(m.seqBuckets)} must lie in [2, seq_len)`);
  for (const [name, prog] of Object.entries(m.programs)) {
    if (!expected.has(name)) continue;
    const seq = name === "step" || name === "infer" ? m.seqLen : Number(name.slice("step_s".length));
    for (const p of programProblems(m, name, prog, seq)) out.push(`program '${name}': ${p}`);
  }
  if (trains && m.programs.infer) {
    const state = new Map(ofRole(m.programs.step, "state").map((t) => [t.name, t]));
    for (const t of ofRole(m.programs.infer, "state")) {
      const s = state.get(t.name);
      if (!s || !sameSpec(s, t)) out.push(`infer input ${shorten(t.name)} is not a state input of the step with the same shape and dtype`);
    }
    for (const [name, prog] of Object.entries(m.programs)) {
      const own = ofRole(prog, "state");
      if (name.startsWith("step_s") && (own.length !== state.size || !own.every((t) => state.has(t.name) && sameSpec(state.get(t.name)!, t)))) {
        out.push(`program '${name}' has other state inputs than 'step'`);
      }
    }
  }
  if (m.labels) {
    const classes = m.programs.infer?.outputs[0]?.shape.at(-1);
    if (m.task !== "sequence_classification") out.push("labels are for sequence classification");
    else if (new Set(m.labels).size !== m.labels.length) out.push(`labels ${shorten(m.labels)} must be distinct strings`);
    else if (classes !== undefined && m.labels.length !== classes) out.push(`${m.labels.length} labels but the logits have ${classes} classes`);
  }
  return out;
}

function optimizerProblems(opt: Record<string, unknown>): string[] {
  const out: string[] = [];
  if (!OPTIMIZERS.includes(opt.name as string)) out.push(`optimizer name ${shorten(opt.name)} must be one of ${OPTIMIZERS}`);
  for (const [k, v] of Object.entries(opt)) {
    const finite = typeof v === "number" && Number.isFinite(v) && Math.abs(v) <= FLOAT32_MAX;
    if ((k === "lr" || k === "eps") && !(finite && (v as number) > 0)) out.push(`optimizer ${k} must be a positive float32 number, not ${shorten(v)}`);
    else if ((k === "nu" || k === "rank") && !(Number.isSafeInteger(v) && (v as number) >= 1 && (v as number) <= 2 ** 20)) {
      out.push(`optimizer ${k} must be a whole number in [1, ${2 ** 20}], not ${shorten(v)}`);
    } else if (k === "method" && typeof v !== "string") out.push(`optimizer method must be a string, not ${shorten(v)}`);
    else if (!["name", "method", "lr", "eps", "nu", "rank"].includes(k) && typeof v !== "boolean" && !finite) {
      out.push(`optimizer ${shorten(k)} must be a finite float32 number, not ${shorten(v)}`);
    }
  }
  if (!("lr" in opt)) out.push("the optimizer entry has no default lr");
  return out;
}

function programProblems(m: Manifest, name: string, prog: ProgramSpec, seq: number): string[] {
  const out: string[] = [];
  for (const [kind, specs] of [["input", prog.inputs], ["output", prog.outputs]] as const) {
    const seen = specs.map((t) => t.name);
    if (new Set(seen).size !== seen.length) out.push(`${kind} names repeat`);
  }
  for (const [rt, f] of Object.entries(prog.files)) {
    if (!(rt in RUNTIMES) || !f.endsWith(RUNTIMES[rt])) out.push(`file ${shorten(f)} for runtime ${shorten(rt)} is not a program file of that runtime`);
  }
  const weights = prog.lowering.onnx?.[ONNX_WEIGHTS_KEY];
  if (weights !== undefined && (!prog.files.onnx || typeof weights !== "string" || !weights.endsWith(ONNX_WEIGHTS_SUFFIX))) {
    out.push(`lowering.onnx.${ONNX_WEIGHTS_KEY} ${shorten(weights)} must name a ${ONNX_WEIGHTS_SUFFIX} file of an ONNX program`);
  }
  let b = m.batchSize;
  if (name === "infer") {
    b = inferBatch(m);
    if (!batchShapeOk(b, seq)) out.push(`the inference batch ${b} is out of range`);
  }
  const batch = new Map(ofRole(prog, "batch").map((t) => [t.name, t]));
  const want: [string, number[]][] = [[N.INPUT_IDS, [b, seq]], [N.ATTENTION_MASK, [b, seq]]];
  if (m.task === "sequence_classification" && name !== "infer") want.push([N.LABELS, [b]]);
  for (const [n, shape] of want) {
    const t = batch.get(n);
    if (!t || t.dtype !== "int64" || !sameShape(t.shape, shape)) out.push(`batch input '${n}' must be int64[${shape}]`);
  }
  const extra = [...batch.keys()].filter((k) => !want.some(([n]) => n === k));
  if (extra.length) out.push(`unknown batch inputs ${shorten(extra.sort())}`);
  for (const t of ofRole(prog, "hyper")) {
    if (!N.HYPER_INPUTS.includes(t.name) || t.shape.length || t.dtype !== "float32") {
      out.push(`hyper input ${shorten(t.name)} must be a float32 scalar named one of ${N.HYPER_INPUTS}`);
    }
  }
  for (const t of ofRole(prog, "noise")) {
    if (!N.NOISE_PREFIXES.some((p) => t.name.startsWith(p)) || t.dtype !== "float32") {
      out.push(`noise input ${shorten(t.name)} must be float32 and named noise.U./noise.V./noise.z.<tensor>`);
    }
  }
  if (prog.inputs.some((t) => t.feeds !== null)) out.push("inputs may not name a 'feeds' target");
  if (name === "infer") {
    if (prog.outputs.length !== 1 || prog.outputs[0].name !== N.LOGITS || prog.outputs[0].dtype !== "float32") {
      out.push("outputs must be one float32 'logits'");
    }
    if (ofRole(prog, "hyper").length || ofRole(prog, "noise").length) out.push("an inference program takes no hyper or noise inputs");
    return out;
  }
  const loss = prog.outputs.filter((t) => t.name === N.LOSS);
  if (loss.length !== 1 || loss[0].role !== "metric" || loss[0].shape.length || loss[0].dtype !== "float32") {
    out.push("a step needs one float32 scalar metric output 'loss'");
  }
  const stateIn = new Map(ofRole(prog, "state").map((t) => [t.name, t]));
  const fed = new Map<string, string>();
  for (const t of prog.outputs) {
    if (t.role === "state") {
      const target = t.feeds ?? "";
      const src = stateIn.get(target);
      if (!src) out.push(`state output ${shorten(t.name)} feeds ${shorten(t.feeds)}, which is not a state input`);
      else if (fed.has(target)) out.push(`state outputs ${shorten(fed.get(target))} and ${shorten(t.name)} both feed ${shorten(target)}`);
      else if (!sameShape(src.shape, t.shape) || src.dtype !== t.dtype || t.name !== N.next(target)) {
        out.push(`state output ${shorten(t.name)} must be named ${shorten(N.next(target))} with the shape and dtype of ${shorten(target)}`);
      } else fed.set(target, t.name);
    } else if (t.feeds !== null) out.push(`output ${shorten(t.name)} has role '${t.role}' but feeds ${shorten(t.feeds)}: only state outputs feed inputs`);
  }
  const unfed = [...stateIn.keys()].filter((k) => !fed.has(k));
  if (unfed.length) out.push(`state inputs ${shorten(unfed.sort().slice(0, 3))} are fed by no output`);
  const hyper = new Set(ofRole(prog, "hyper").map((t) => t.name));
  if (hyper.has(N.EPS) && !("eps" in m.optimizer)) out.push("the step takes 'eps' but the optimizer entry has no eps");
  if (hyper.has(N.RESAMPLE) && !("nu" in m.optimizer)) out.push("the step resamples V but the optimizer entry has no nu");
  return out;
}

const idField = (id: string) => new TextEncoder().encode(`"artifact_id": "${id}"`);

function indexOf(hay: Uint8Array, needle: Uint8Array, from: number): number {
  outer: for (let i = from; i <= hay.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** The id manifest bytes `raw` must carry: sha256 of `raw` with its one id field zeroed, first 16 hex digits. */
export async function digest(raw: Uint8Array, artifactId: string): Promise<string | null> {
  const key = idField(artifactId);
  const at = indexOf(raw, key, 0);
  if (at < 0 || indexOf(raw, key, at + 1) >= 0) return null;
  return (await sha256([raw.subarray(0, at), idField(ID_PLACEHOLDER), raw.subarray(at + key.length)])).slice(0, 16);
}

/** Where an artifact's files come from: a directory (Node) or a URL (a web page). */
export interface ArtifactSource {
  readonly where: string;
  /** The bytes of file `name`, or null when it does not exist. */
  read(name: string): Promise<Uint8Array | null>;
}

/**
 * Read `src`'s manifest.json and check it: schema, rules, digest, and the sha256 of every file
 * the `runtime` will read (returned, so each is read once).
 */
export async function load(src: ArtifactSource, runtime: string): Promise<{ manifest: Manifest; files: Map<string, Uint8Array> }> {
  const raw = await src.read("manifest.json");
  const path = `${src.where}/manifest.json`;
  if (raw === null) throw new ArtifactError(`${src.where} has no manifest.json: is it an edgetune artifact? Create one with \`edgetune export\`.`);
  if (runtime !== "onnx") throw new ArtifactError(`runtime ${shorten(runtime)} is not one this trainer runs; it runs onnx`);
  if (raw.byteLength > MAX_MANIFEST_BYTES) throw new ArtifactError(`${path} is ${raw.byteLength} bytes, more than any manifest; re-export the artifact`);
  let json: string;
  try {
    json = new TextDecoder("utf-8", { fatal: true }).decode(raw);
  } catch {
    throw new ArtifactError(`${path} is not UTF-8 text; re-export the artifact`);
  }
  const m = parse(json, path);
  const broken = problems(m);
  if (broken.length) {
    throw new ArtifactError(`${path}: ${broken[0]}${broken.length > 1 ? ` (and ${broken.length - 1} more)` : ""}; re-export the artifact`);
  }
  if ((await digest(raw, m.artifactId)) !== m.artifactId) {
    throw new ArtifactError(`${path} was changed after export (its content does not match its artifact_id ${m.artifactId}); re-export the artifact instead of editing its manifest`);
  }
  if (!Object.values(m.programs).some((p) => runtime in p.files)) {
    throw new ArtifactError(`${src.where} has no ${runtime} program; re-export with --format ${runtime}`);
  }
  const needed = new Set([STATE_FILE, ...(m.tokenizer ? [m.tokenizer] : []),
    ...Object.values(m.programs).flatMap((p) => dataFiles(p, runtime))]);
  const files = new Map<string, Uint8Array>();
  for (const name of needed) {
    const bytes = await src.read(name);
    if (bytes === null) throw new ArtifactError(`${src.where}/${name} is listed in the manifest but missing; copy the whole artifact`);
    if ((await sha256(bytes)) !== m.hashes[name]) {
      throw new ArtifactError(`${src.where}/${name} does not match manifest.json (sha256 differs): the manifest belongs to another artifact or the file was changed; re-export or copy the artifact as a whole`);
    }
    files.set(name, bytes);
  }
  return { manifest: m, files };
}
