/**
 * The device loop of the contract (docs/artifact-contract.md, section 4) on the
 * onnxruntime-common API, so the same code trains on onnxruntime-node, onnxruntime-web and
 * onnxruntime-react-native: resume or start, feed state + batch + hyper, keep the new state
 * only when the loss and every new tensor are finite, save atomically through a StateStore.
 */
import type * as ortTypes from "onnxruntime-common";
import { ArtifactError, ConfigError, DataError, NonFiniteStepError, shorten } from "./contract/errors.js";
import * as hyper from "./contract/hyper.js";
import { load, ofRole, onnxWeights, STATE_FILE, stepProgramFor, type ArtifactSource, type Manifest, type ProgramSpec } from "./contract/manifest.js";
import * as N from "./contract/names.js";
import { check, encode, type StateStore } from "./contract/statefile.js";
import { isFinite, sameShape, type Tensor } from "./contract/tensor.js";
import { Tokenizer } from "./contract/tokenizer.js";

/** What a trainer needs of a runtime module: `onnxruntime-node`, `onnxruntime-web` or `-react-native`. */
export type Ort = Pick<typeof ortTypes, "InferenceSession" | "Tensor">;

export interface StepRecord {
  step: number;
  loss: number;
  ms: number;
}

/** Held-out accuracy and mean cross-entropy over `examples` labelled rows. */
export interface Evaluation {
  accuracy: number;
  loss: number;
  examples: number;
}

export interface TrainerOptions {
  threads?: number;
  /** ONNX Runtime execution providers (default: the runtime's CPU one). */
  executionProviders?: ortTypes.InferenceSession.SessionOptions["executionProviders"];
}

/** ONNX Runtime session config entries ("session.disable_prepacking": "1") as the JS API nests them. */
function sessionConfig(spec: ProgramSpec): Record<string, unknown> {
  const entries = spec.lowering.onnx?.session_config ?? {};
  const out: Record<string, any> = {};
  for (const [k, v] of Object.entries(entries as Record<string, unknown>)) {
    if (typeof v !== "string") throw new ArtifactError("the manifest's onnx session_config is not a map of strings; re-export the artifact");
    const [head, ...rest] = k.split(".");
    out[head] = { ...(out[head] ?? {}), [rest.join(".")]: v };
  }
  return out;
}

export class Trainer {
  state = new Map<string, Tensor>();
  step = 0;
  private readonly sessions = new Map<string, ortTypes.InferenceSession>();

  private constructor(readonly manifest: Manifest, private readonly files: Map<string, Uint8Array>,
                      private readonly ort: Ort, private readonly store: StateStore, private readonly options: TrainerOptions) {}

  /** Load and check the artifact, open its step program, and resume from `store` (or start from the artifact's state). */
  static async open(src: ArtifactSource, ort: Ort, store: StateStore, options: TrainerOptions = {}): Promise<Trainer> {
    const { manifest, files } = await load(src, "onnx");
    if (!manifest.programs.step) throw new ArtifactError(`${src.where} has no step program: it is inference-only`);
    const tr = new Trainer(manifest, files, ort, store, options);
    await tr.session("step");
    const saved = await store.read();
    const loaded = saved ? await check(saved, manifest, store.where) : await check(files.get(STATE_FILE)!, manifest, STATE_FILE, true);
    tr.state = loaded.state;
    tr.step = loaded.step;
    return tr;
  }

  /** The artifact's tokenizer at `seqLen` (default: the artifact's; null: the artifact takes no text). */
  tokenizer(seqLen = this.manifest.seqLen): Tokenizer | null {
    const name = this.manifest.tokenizer;
    return name ? Tokenizer.fromJSON(new TextDecoder().decode(this.files.get(name)!), seqLen) : null;
  }

  /** A program's session, created when first needed; refused if it differs from the manifest. */
  async session(name: string): Promise<ortTypes.InferenceSession> {
    let s = this.sessions.get(name);
    if (s) return s;
    const spec = this.manifest.programs[name];
    const file = spec?.files.onnx;
    if (!file) throw new ArtifactError(`the artifact has no onnx ${name} program; re-export with --format onnx`);
    const opts: ortTypes.InferenceSession.SessionOptions = { extra: sessionConfig(spec), graphOptimizationLevel: "all" };
    if (this.options.threads) opts.intraOpNumThreads = this.options.threads;
    if (this.options.executionProviders) opts.executionProviders = this.options.executionProviders;
    const weights = onnxWeights(spec);
    if (weights) opts.externalData = [{ path: weights, data: this.files.get(weights)! }];  // the name the program's initializers use
    s = await this.ort.InferenceSession.create(this.files.get(file)!, opts);
    const same = (have: readonly string[], want: { name: string }[]) =>
      have.length === want.length && want.every((t, i) => t.name === have[i]);
    if (!same(s.inputNames, spec.inputs) || !same(s.outputNames, spec.outputs)) {
      throw new ArtifactError(`${file}'s inputs and outputs differ from the manifest's: the manifest belongs to another artifact or was edited; re-export`);
    }
    this.sessions.set(name, s);
    return s;
  }

  /** The hyper and noise inputs of the next step at learning rate `lr`. */
  hyper(lr: number, seed = 0): Map<string, Tensor> {
    return hyper.feeds(this.manifest.programs.step, this.manifest, this.step + 1, lr, seed);
  }

  /** `spec`'s inputs from `feeds`, checked (presence, dtype, shape) and wrapped for the runtime. */
  private feedsFor(spec: ProgramSpec, feeds: Map<string, Tensor>): Record<string, ortTypes.Tensor> {
    const out: Record<string, ortTypes.Tensor> = {};
    for (const t of spec.inputs) {
      const a = feeds.get(t.name);
      if (!a) throw new DataError(`input ${shorten(t.name)} (${t.role}) is missing`);
      if (a.dtype !== t.dtype) throw new DataError(`input ${shorten(t.name)} has dtype ${a.dtype}, the program takes ${t.dtype}`);
      if (!sameShape(a.shape, t.shape)) throw new DataError(`input ${shorten(t.name)} has shape [${a.shape}], the program takes [${t.shape}]`);
      out[t.name] = new this.ort.Tensor(t.dtype, a.data as any, a.shape);
    }
    return out;
  }

  private static fromOrt(t: ortTypes.Tensor): Tensor {
    return { dtype: t.type as Tensor["dtype"], shape: [...t.dims], data: (t.data as Tensor["data"]).slice() };
  }

  /**
   * One step on `batch` (input_ids, attention_mask[, labels] of batch_size rows); the state
   * advances only if the loss and every new state tensor are finite, else NonFiniteStepError
   * and nothing changes.
   */
  async trainStep(batch: Map<string, Tensor>, lr: number, seed = 0): Promise<StepRecord> {
    const [name, trimmed] = this.programFor(batch);
    const spec = this.manifest.programs[name];
    const session = await this.session(name);
    const feeds = new Map([...this.state, ...trimmed, ...hyper.feeds(spec, this.manifest, this.step + 1, lr, seed)]);
    const ortFeeds = this.feedsFor(spec, feeds);
    const t0 = performance.now();
    const outs = await session.run(ortFeeds);
    const ms = performance.now() - t0;
    const loss = (outs[N.LOSS].data as Float32Array)[0];
    const next = new Map(ofRole(spec, "state", true).map((t) => [t.feeds!, Trainer.fromOrt(outs[t.name])]));
    for (const t of Object.values(outs)) t.dispose?.();
    const bad = [...next].filter(([, t]) => !isFinite(t)).map(([k]) => k).slice(0, 3);
    if (!Number.isFinite(loss) || bad.length) {
      throw new NonFiniteStepError(`step ${this.step + 1}: loss=${loss}, non-finite state ${shorten(bad)}; the step was rejected and the state kept at step ${this.step}. Lower the learning rate or check the batch for bad labels.`);
    }
    this.state = next;
    this.step += 1;
    return { step: this.step, loss, ms };
  }

  /** The shortest step program that holds the batch's longest text, and the batch trimmed to its length. */
  private programFor(batch: Map<string, Tensor>): [string, Map<string, Tensor>] {
    const mask = batch.get(N.ATTENTION_MASK);
    if (!this.manifest.seqBuckets.length || !mask) return ["step", batch];
    const [rows, cols] = mask.shape;
    const m = mask.data as BigInt64Array;
    let longest = 0;
    for (let r = 0; r < rows; r++) {
      let n = 0;
      for (let c = 0; c < cols; c++) n += Number(m[r * cols + c]);
      longest = Math.max(longest, n);
    }
    const [name, n] = stepProgramFor(this.manifest, longest);
    if (n === cols) return [name, batch];
    const trim = (t: Tensor): Tensor => {
      if (t.shape.length !== 2) return t;
      const data = new BigInt64Array(rows * n);
      for (let r = 0; r < rows; r++) data.set((t.data as BigInt64Array).subarray(r * cols, r * cols + n), r * n);
      return { dtype: t.dtype, shape: [rows, n], data };
    };
    return [name, new Map([...batch].map(([k, t]) => [k, trim(t)]))];
  }

  /**
   * Accuracy (argmax against the label) and mean cross-entropy of the current state on labelled
   * rows (input_ids, attention_mask int64 [n, seq_len], labels int64 [n]), through the inference
   * program, its batch of rows per call (a last partial call repeats rows, whose logits are dropped).
   */
  async evaluate(rows: { input_ids: Tensor; attention_mask: Tensor; labels: Tensor }): Promise<Evaluation> {
    const spec = this.manifest.programs.infer;
    const session = await this.session("infer");
    const b = spec.inputs.find((t) => t.name === N.INPUT_IDS)!.shape[0];
    const [n, seq] = rows.input_ids.shape;
    const labels = rows.labels.data as BigInt64Array;
    let hits = 0, nll = 0;
    for (let start = 0; start < n; start += b) {
      const pick = (t: Tensor): Tensor => {
        const data = new BigInt64Array(b * seq);
        for (let r = 0; r < b; r++) {
          const src = (start + r) % n;
          data.set((t.data as BigInt64Array).subarray(src * seq, (src + 1) * seq), r * seq);
        }
        return { dtype: "int64", shape: [b, seq], data };
      };
      const feeds = new Map([...this.state, [N.INPUT_IDS, pick(rows.input_ids)], [N.ATTENTION_MASK, pick(rows.attention_mask)]]);
      const out = (await session.run(this.feedsFor(spec, feeds)))[N.LOGITS];
      const z = out.data as Float32Array, classes = out.dims[1];
      for (let r = 0; r < Math.min(b, n - start); r++) {
        const row = z.subarray(r * classes, (r + 1) * classes);
        let best = 0;
        for (let c = 1; c < classes; c++) if (row[c] > row[best]) best = c;
        const logSum = row[best] + Math.log(row.reduce((a, v) => a + Math.exp(v - row[best]), 0));
        const y = Number(labels[start + r]);
        if (best === y) hits++;
        nll += logSum - row[y];
      }
      out.dispose?.();
    }
    return { accuracy: hits / n, loss: nll / n, examples: n };
  }

  /** Write the state through the store (checked first: only a state that loads is written). */
  async save(): Promise<void> {
    await this.store.write(await encode(this.state, this.manifest, this.step));
  }

  /**
   * `steps` more steps over `batches`, with `schedule` (default: linear for first-order)
   * peaking at `lr` (default: the artifact's) and ending at `totalSteps` (default: this run's
   * last step). Saves every `saveEvery` steps and, whatever happens, at the end.
   */
  async train(batches: Iterator<Map<string, Tensor>>, steps: number,
              opts: { lr?: number; seed?: number; saveEvery?: number; schedule?: string; totalSteps?: number;
                      onStep?: (r: StepRecord) => boolean | void } = {}): Promise<void> {
    const saveEvery = opts.saveEvery ?? 10;
    if (!Number.isSafeInteger(steps) || steps < 0 || !Number.isSafeInteger(saveEvery) || saveEvery < 0) {
      throw new ConfigError("steps and save-every must be whole numbers >= 0");
    }
    const schedule = opts.schedule ?? hyper.defaultSchedule(this.manifest);
    const peak = opts.lr ?? (this.manifest.optimizer.lr as number);
    const total = opts.totalSteps ?? this.step + steps;
    let saved = this.step;
    try {
      for (let i = 0; i < steps; i++) {
        const rec = await this.trainStep(batches.next().value, hyper.scheduled(schedule, this.step + 1, total, peak), opts.seed ?? 0);
        if (saveEvery > 0 && this.step % saveEvery === 0) {
          await this.save();
          saved = this.step;
        }
        if (opts.onStep?.(rec) === false) break;
      }
    } finally {
      if (this.step !== saved) await this.save();
    }
  }

  async release(): Promise<void> {
    for (const s of this.sessions.values()) await s.release();
    this.sessions.clear();
  }
}
