// Bundles the trainer: dist/edgetune-node.mjs (Node, onnxruntime-node) and dist/web/ (pages on
// onnxruntime-web's WebAssembly build, with its .wasm beside them).
import * as esbuild from "esbuild";
import { cpSync, mkdirSync } from "node:fs";

const common = { bundle: true, format: "esm", logLevel: "warning" };
await esbuild.build({ ...common, entryPoints: ["src/node/cli.ts"], platform: "node", outfile: "dist/edgetune-node.mjs",
  external: ["onnxruntime-node"] });
await esbuild.build({ ...common, entryPoints: { kit: "src/web/kit-page.ts", demo: "src/web/demo-page.ts" }, platform: "browser", outdir: "dist/web",
  target: "es2022" });
mkdirSync("dist/web", { recursive: true });
for (const f of ["ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs"]) {
  cpSync(`node_modules/onnxruntime-web/dist/${f}`, `dist/web/${f}`);
}
cpSync("static", "dist/web", { recursive: true });
