/**
 * The web trainer on onnxruntime-node, for Node apps, the suite and the benchmark:
 *
 *     node dist/edgetune-node.mjs conformance ARTIFACT KIT [--threads N]
 *     node dist/edgetune-node.mjs train ARTIFACT NOTES.json --steps N --state FILE [--threads N] [--lr X] [--seed S]
 *     node dist/edgetune-node.mjs noise SEED STEP COUNT
 *
 * conformance prints {"checks", "failures", "cases"} as one JSON line (exit 2 when a check
 * fails), like `python -m device_harness.conformance`. train takes the demo page's notes
 * ({"train": [{"text", "label"}]}), resumes from FILE when it exists, and prints one JSON line
 * a step ({"step", "loss", "ms"}); FILE is a state file `edgetune save-adapter --state` reads.
 * noise prints the base64 of COUNT float32 draws of forward-only noise for (SEED, STEP), which the
 * suite compares with numpy's.
 */
import { promises as fs } from "node:fs";
import * as ort from "onnxruntime-node";
import { batches, type Note } from "../batches.js";
import { ConfigError, DataError, EdgetuneError } from "../contract/errors.js";
import { NumpyNormal } from "../contract/noise.js";
import { replay } from "../conformance.js";
import { Trainer } from "../trainer.js";
import { DirectorySource, FileStore } from "./files.js";

const USAGE = "usage: edgetune-node.mjs conformance ARTIFACT KIT [--threads N]\n" +
  "       edgetune-node.mjs train ARTIFACT NOTES.json --steps N --state FILE [--threads N] [--lr X] [--seed S]\n" +
  "       edgetune-node.mjs noise SEED STEP COUNT";

/** `--name value` options out of `args` (which keeps the positional ones). */
function options(args: string[], names: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of names) {
    const i = args.indexOf(`--${name}`);
    if (i >= 0) {
      if (i + 1 >= args.length) throw new ConfigError(`--${name} needs a value`);
      out[name] = args.splice(i, 2)[1];
    }
  }
  if (args.some((a) => a.startsWith("--"))) throw new ConfigError(`unknown option ${args.find((a) => a.startsWith("--"))}\n${USAGE}`);
  return out;
}

function whole(value: string | undefined, name: string, lo: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < lo) throw new ConfigError(`--${name} ${value} must be a whole number >= ${lo}`);
  return n;
}

async function train(args: string[], o: Record<string, string>) {
  const steps = whole(o.steps, "steps", 0), threads = whole(o.threads, "threads", 1), seed = whole(o.seed, "seed", 0) ?? 0;
  const lr = o.lr === undefined ? undefined : Number(o.lr);
  if (args.length !== 2 || steps === undefined || !o.state) throw new ConfigError(USAGE);
  let notes: Note[];
  try {
    notes = JSON.parse(await fs.readFile(args[1], "utf-8")).train;
    if (!Array.isArray(notes) || !notes.every((n) => typeof n?.text === "string" && typeof n?.label === "string")) throw new Error("bad");
  } catch {
    throw new DataError(`${args[1]} is not a notes file ({"train": [{"text": ..., "label": ...}]})`);
  }
  const tr = await Trainer.open(new DirectorySource(args[0]), ort, new FileStore(o.state), { threads });
  try {
    const m = tr.manifest;
    if (!m.labels) throw new DataError("train takes a text classifier's notes; this artifact has no labels");
    await tr.train(batches(tr.tokenizer()!, m.labels, notes, m.batchSize, seed + tr.step), steps,
      { lr, onStep: (r) => void console.log(JSON.stringify(r)) });
  } finally {
    await tr.release();
  }
}

async function main(argv: string[]) {
  const [command, ...args] = argv;
  const o = options(args, ["threads", "steps", "state", "lr", "seed"]);
  if (command === "train") return train(args, o);
  if (command === "noise" && args.length === 3) {
    const [seed, step, n] = args.map((x, i) => whole(x, ["seed", "step", "count"][i], 0)!);
    const v = new NumpyNormal([seed, step]).fill(n);
    return void console.log(Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64"));
  }
  if (command !== "conformance" || args.length !== 2) throw new ConfigError(USAGE);
  const report = await replay(new DirectorySource(args[0]), new DirectorySource(args[1]), ort, { threads: whole(o.threads, "threads", 1) });
  console.log(JSON.stringify(report));
  if (report.failures.length) process.exitCode = 2;
}

main(process.argv.slice(2)).catch((e) => {
  console.error(`error: ${e instanceof EdgetuneError ? e.message : (e as Error).stack}`);
  process.exitCode = 2;
});
