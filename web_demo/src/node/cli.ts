/**
 * The web trainer on onnxruntime-node, for the suite and for Node apps:
 *
 *     node dist/edgetune-node.mjs conformance ARTIFACT KIT [--threads N]
 *
 * prints {"checks", "failures", "cases"} as one JSON line (exit 2 when a check fails), like
 * `python -m device_harness.conformance` and the Kotlin trainer's ConformanceMain.
 */
import * as ort from "onnxruntime-node";
import { EdgetuneError } from "../contract/errors.js";
import { replay } from "../conformance.js";
import { DirectorySource } from "./files.js";

function usage(): never {
  console.error("usage: edgetune-node.mjs conformance ARTIFACT KIT [--threads N]");
  process.exit(2);
}

async function main(argv: string[]) {
  const [command, ...rest] = argv;
  const threadsAt = rest.indexOf("--threads");
  const threads = threadsAt >= 0 ? Number(rest.splice(threadsAt, 2)[1]) : undefined;
  if (command !== "conformance" || rest.length !== 2 || (threads !== undefined && !(Number.isSafeInteger(threads) && threads > 0))) usage();
  const report = await replay(new DirectorySource(rest[0]), new DirectorySource(rest[1]), ort, { threads });
  console.log(JSON.stringify(report));
  process.exit(report.failures.length ? 2 : 0);
}

main(process.argv.slice(2)).catch((e) => {
  console.error(`error: ${e instanceof EdgetuneError ? e.message : (e as Error).stack}`);
  process.exit(2);
});
