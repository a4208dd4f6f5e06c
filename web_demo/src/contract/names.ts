/** Tensor names of the contract (docs/artifact-contract.md, "Names"). */
export const NEXT_PREFIX = "next.";
export const NOISE_PREFIXES = ["noise.U.", "noise.V.", "noise.z."] as const;
export const LOSS = "loss";
export const LOGITS = "logits";
export const LR = "lr";
export const STEP = "step";
export const EPS = "eps";
export const RESAMPLE = "resample";
export const HYPER_INPUTS = [LR, STEP, EPS, RESAMPLE];
export const INPUT_IDS = "input_ids";
export const ATTENTION_MASK = "attention_mask";
export const LABELS = "labels";
export const next = (input: string): string => NEXT_PREFIX + input;
