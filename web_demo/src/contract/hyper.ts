/** Learning-rate schedules and the step's hyper inputs (docs/artifact-contract.md, 4.1, 4.2). */
import { ConfigError, shorten } from "./errors.js";
import { FLOAT32_MAX, ofRole, type Manifest, type ProgramSpec } from "./manifest.js";
import * as N from "./names.js";
import { scalar, type Tensor } from "./tensor.js";

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

/**
 * The hyper inputs of `program` for step `step` (1-based) at learning rate `lr`: `lr`, `step`
 * and `eps`. Forward-only programs also take noise drawn from numpy's generator, which this
 * trainer does not implement: they are refused.
 */
export function feeds(program: ProgramSpec, m: Manifest, step: number, lr: number): Map<string, Tensor> {
  if (!Number.isFinite(lr) || lr <= 0 || lr > FLOAT32_MAX) {
    throw new ConfigError(`learning rate ${lr} must be a positive number that fits float32`);
  }
  const names = new Set(program.inputs.map((t) => t.name));
  if (ofRole(program, "noise").length || names.has(N.RESAMPLE)) {
    throw new ConfigError("this artifact trains forward-only (MeZO/LOZO), whose noise comes from numpy's generator, " +
      "which the web trainer does not have; export with a first-order optimizer (adamw or sgd)");
  }
  const out = new Map<string, Tensor>([[N.LR, scalar(lr)]]);
  if (names.has(N.STEP)) out.set(N.STEP, scalar(step));
  if (names.has(N.EPS)) out.set(N.EPS, scalar(m.optimizer.eps as number));
  return out;
}
