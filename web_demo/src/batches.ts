/** Labelled notes -> the step's batches (the page and the Node command share them). */
import { DataError } from "./contract/errors.js";
import { ATTENTION_MASK, INPUT_IDS, LABELS } from "./contract/names.js";
import type { Tensor } from "./contract/tensor.js";
import type { Tokenizer } from "./contract/tokenizer.js";

export interface Note {
  text: string;
  label: string;
}

export interface Rows {
  input_ids: Tensor;
  attention_mask: Tensor;
  labels: Tensor;
}

/** A seeded shuffle of 0..n-1 (mulberry32): the same batches on every run of the same notes. */
export function shuffled(n: number, seed: number): number[] {
  let a = seed >>> 0;
  const rand = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx;
}

/** Notes -> token ids, mask and label indices (labels: the artifact's, in logit order). */
export function labelledRows(tok: Tokenizer, labels: string[], notes: Note[]): Rows {
  const enc = tok.encode(notes.map((x) => x.text));
  const y = notes.map((x, i) => {
    const k = labels.indexOf(x.label);
    if (k < 0) throw new DataError(`note ${i + 1} has label ${JSON.stringify(x.label)}, which is not one of the artifact's labels ${JSON.stringify(labels)}`);
    return BigInt(k);
  });
  return { ...enc, labels: { dtype: "int64", shape: [notes.length], data: BigInt64Array.from(y) } };
}

/** Endless batches of `batchSize` notes in a shuffled order drawn from `seed` (wrapping around). */
export function batches(tok: Tokenizer, labels: string[], notes: Note[], batchSize: number, seed: number): Iterator<Map<string, Tensor>> {
  if (!notes.length) throw new DataError("there are no notes to train on; add some first");
  const order = shuffled(notes.length, seed);
  let at = 0;
  return {
    next: () => {
      const r = labelledRows(tok, labels, Array.from({ length: batchSize }, () => notes[order[at++ % order.length]]));
      return { done: false, value: new Map([[INPUT_IDS, r.input_ids], [ATTENTION_MASK, r.attention_mask], [LABELS, r.labels]]) };
    },
  };
}
