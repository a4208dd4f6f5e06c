/** Learning-rate schedules and the step's hyper and noise inputs (docs/artifact-contract.md, 4.1, 4.2, 6). */
import { ConfigError, shorten } from "./errors.js";
import { FLOAT32_MAX, ofRole, type Manifest, type ProgramSpec } from "./manifest.js";
import * as N from "./names.js";
import { NumpyNormal } from "./noise.js";
import { count, scalar, type Tensor } from "./tensor.js";

export const WARMUP_FRACTION = 0.06;
export const SCHEDULES = ["constant", "linear"];

/** Round half to even, as Python's round and Kotlin's Math.rint. */
function rint(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Rate of `step` (1-based) of `total`: warm-up over round-half-even(6% of total) steps (>= 1), then linear decay to 0. */
export function linear(step: number, total: number, peak: number): number {
  const warmup = Math.max(1, rint(WARMUP_FRACTION * total));
  if (step <= warmup) return (peak * step) / warmup;
  return peak * Math.max(0, (total - step + 1) / Math.max(1, total - warmup + 1));
}

/** Linear warm-up and decay for first-order steps, constant for forward-only ones. */
export const defaultSchedule = (m: Manifest): string => (m.optimizer.name === "zo" ? "constant" : "linear");

export function scheduled(schedule: string, step: number, total: number, peak: number): number {
  if (!SCHEDULES.includes(schedule)) throw new ConfigError(`schedule ${shorten(schedule)}; choose one of ${SCHEDULES}`);
  return schedule === "constant" ? peak : linear(step, total, peak);
}

/** LOZO draws a new V on steps 1, nu + 1, 2 nu + 1, ... */
export const resampleDue = (step: number, nu: number): boolean => (step - 1) % Math.max(1, nu) === 0;

/**
 * The hyper and noise inputs of `program` for step `step` (1-based) at learning rate `lr`:
 * `lr`, `step`, `eps`, `resample`, and every noise input drawn in the manifest's order from
 * numpy's generator seeded with [seed, step].
 */
export function feeds(program: ProgramSpec, m: Manifest, step: number, lr: number, seed = 0): Map<string, Tensor> {
  if (!Number.isFinite(lr) || lr <= 0 || lr > FLOAT32_MAX) {
    throw new ConfigError(`learning rate ${lr} must be a positive number that fits float32`);
  }
  const names = new Set(program.inputs.map((t) => t.name));
  const out = new Map<string, Tensor>([[N.LR, scalar(lr)]]);
  if (names.has(N.STEP)) out.set(N.STEP, scalar(step));
  if (names.has(N.EPS)) out.set(N.EPS, scalar(m.optimizer.eps as number));
  const noise = ofRole(program, "noise");
  if (noise.length || names.has(N.RESAMPLE)) {
    const due = resampleDue(step, typeof m.optimizer.nu === "number" ? m.optimizer.nu : 1);
    if (names.has(N.RESAMPLE)) out.set(N.RESAMPLE, scalar(due ? 1 : 0));
    const rng = new NumpyNormal([seed, step]);
    for (const t of noise) {
      // V candidates are zeros on steps that keep V, and draw nothing
      const values = t.name.startsWith(N.NOISE_PREFIXES[1]) && !due ? new Float32Array(count(t.shape)) : rng.fill(count(t.shape));
      out.set(t.name, { dtype: "float32", shape: t.shape, data: values });
    }
  }
  return out;
}
