/**
 * Replays a conformance kit (`edgetune conformance`) through this trainer: the tokenizer's ids,
 * the learning-rate schedule, every step's hyper inputs, loss and state against eager
 * PyTorch's, a resume, and a rejected non-finite step. The report is the Python runner's and
 * the Kotlin trainer's: {"checks", "failures", "cases"}.
 */
import { ArtifactError, NonFiniteStepError } from "./contract/errors.js";
import * as hyper from "./contract/hyper.js";
import type { ArtifactSource } from "./contract/manifest.js";
import { decode } from "./contract/safetensors.js";
import { check, type StateStore } from "./contract/statefile.js";
import { bytesOf, sameShape, type Tensor } from "./contract/tensor.js";
import { Trainer, type Ort, type TrainerOptions } from "./trainer.js";

export interface Report {
  checks: number;
  failures: string[];
  cases: string[];
}

type Tolerance = { rtol: number; atol: number; atol_scale: number };

/** The kit's tolerance rule: |got - want| <= max(atol, atol_scale max|want|) + rtol |want|, and finite. */
export function mismatch(want: ArrayLike<number>, got: ArrayLike<number>, tol: Tolerance): string | null {
  if (want.length !== got.length) return `size ${got.length}, expected ${want.length}`;
  let top = 0;
  for (let i = 0; i < want.length; i++) {
    if (!Number.isFinite(got[i])) return "not finite";
    top = Math.max(top, Math.abs(want[i]));
  }
  const floor = Math.max(tol.atol, tol.atol_scale * top);
  let worst = 0, bad = false;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    worst = Math.max(worst, d);
    if (d > floor + tol.rtol * Math.abs(want[i])) bad = true;
  }
  return bad ? `max |diff| ${worst.toPrecision(3)}` : null;
}

const sameBytes = (a: Tensor, b: Tensor) => {
  const x = bytesOf(a), y = bytesOf(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
};

function prefixed(tensors: Map<string, Tensor>, prefix: string): Map<string, Tensor> {
  return new Map([...tensors].filter(([k]) => k.startsWith(prefix)).map(([k, t]) => [k.slice(prefix.length), t]));
}

/** A store that keeps the state in memory: the replay writes nothing outside itself. */
class MemoryStore implements StateStore {
  readonly where = "memory";
  bytes: Uint8Array | null = null;
  async read() { return this.bytes; }
  async write(b: Uint8Array) { this.bytes = b; }
}

export async function replay(artifact: ArtifactSource, kitSrc: ArtifactSource, ort: Ort, options: TrainerOptions = {}): Promise<Report> {
  const failures: string[] = [];
  let checks = 0;
  const checkThat = (what: string, problem: string | null) => {
    checks++;
    if (problem !== null) failures.push(`${what}: ${problem}`);
  };
  const read = async (name: string) => {
    const b = await kitSrc.read(name);
    if (b === null) throw new ArtifactError(`${kitSrc.where} has no ${name}: is it a conformance kit? Write one with \`edgetune conformance\``);
    return b;
  };
  const kit = JSON.parse(new TextDecoder().decode(await read("kit.json")));
  const tensors = decode(await read("tensors.safetensors")).tensors;
  const store = new MemoryStore();
  const tr = await Trainer.open(artifact, ort, store, options);
  try {
    if (kit.artifact_id !== tr.manifest.artifactId) {
      throw new ArtifactError(`kit ${kitSrc.where} was written for artifact ${kit.artifact_id}, not ${tr.manifest.artifactId}`);
    }
    if (kit.tokenizer) {
      const ids = tr.tokenizer(kit.tokenizer.seq_len)!.encode(kit.tokenizer.texts);
      for (const name of ["input_ids", "attention_mask"] as const) {
        const want = tensors.get(kit.tokenizer[name])!;
        const have = ids[name];
        let diff: string | null = null;
        if (!sameShape(want.shape, have.shape)) diff = `shape [${have.shape}], expected [${want.shape}]`;
        else {
          const n = (want.data as BigInt64Array).filter((v, i) => v !== (have.data as BigInt64Array)[i]).length;
          if (n) diff = `${n} entries differ`;
        }
        checkThat(`tokenizer ${name}`, diff);
      }
    }
    const { total, peak, linear: want } = kit.schedule;
    const got = Array.from({ length: total }, (_, i) => hyper.linear(i + 1, total, peak));
    checkThat("linear schedule", got.length === want.length && got.every((g, i) => Math.abs(g - want[i]) <= 1e-12 * Math.abs(want[i]))
      ? null : `${got} != ${want}`);
    for (const c of kit.cases) await replayCase(tr, c, kit, tensors, store, kitSrc, checkThat);
  } finally {
    await tr.release();
  }
  return { checks, failures, cases: kit.cases.map((c: any) => c.name) };
}

async function replayCase(tr: Trainer, c: any, kit: any, tensors: Map<string, Tensor>, store: MemoryStore,
                          kitSrc: ArtifactSource, checkThat: (what: string, problem: string | null) => void) {
  const name: string = c.name;
  const tol: Tolerance = kit.tolerance;
  if (c.start === "resume.safetensors") {
    const { state, step } = await check((await kitSrc.read("resume.safetensors"))!, tr.manifest, "resume.safetensors");
    tr.state = state;
    tr.step = step;
    checkThat(`${name}: step counter of resume.safetensors`, step === c.start_step ? null : `${step}, expected ${c.start_step}`);
  } else {
    tr.state = prefixed(tensors, c.start);
    tr.step = c.start_step;
  }
  for (const s of c.steps) {
    const where = `${name} step ${s.step}`;
    const wantH = prefixed(tensors, s.hyper);
    const gotH = tr.hyper(s.lr, kit.seed);
    const keys = (m: Map<string, Tensor>) => [...m.keys()].sort().join(",");
    checkThat(`${where}: hyper inputs`, keys(gotH) === keys(wantH) ? null : `${keys(gotH)} != ${keys(wantH)}`);
    for (const [h, t] of gotH) {
      const w = wantH.get(h);
      if (w) checkThat(`${where}: ${h}`, sameBytes(t, w) && sameShape(t.shape, w.shape) ? null : "differs (must match exactly)");
    }
    const before = tr.state, stepBefore = tr.step;
    let rec = null;
    try {
      rec = await tr.trainStep(prefixed(tensors, s.batch), s.lr, kit.seed);
    } catch (e) {
      if (!(e instanceof NonFiniteStepError)) throw e;
    }
    if (s.accepted !== true) {
      const kept = rec === null && tr.step === stepBefore && tr.state === before;
      checkThat(`${where}: non-finite step rejected, state kept`, kept ? null : "the step was accepted");
      continue;
    }
    if (rec === null) {
      checkThat(`${where}: accepted`, "rejected as non-finite");
      return;
    }
    checkThat(`${where}: loss`, mismatch([Math.fround(s.loss)], [rec.loss], tol));
    for (const [n, w] of prefixed(tensors, s.state)) {
      const g = tr.state.get(n);
      checkThat(`${where}: ${n}`, !g ? "missing" : !sameShape(g.shape, w.shape) ? `shape [${g.shape}], expected [${w.shape}]`
        : mismatch(w.data as Float32Array, g.data as Float32Array, tol));
    }
  }
  await tr.save();
  const back = await check(store.bytes!, tr.manifest, "the saved state");
  const same = back.step === tr.step && [...tr.state].every(([n, t]) => back.state.has(n) && sameBytes(back.state.get(n)!, t));
  checkThat(`${name}: state file round trip`, same ? null : "the saved state reads back differently");
}
