/**
 * kit.html: replays a conformance kit in the page on onnxruntime-web (WebAssembly), for the
 * suite's headless Chromium run. Query: ?artifact=URL/&kit=URL/&threads=N. The report lands in
 * `window.edgetuneReport` (or `window.edgetuneError`) and in the page's text.
 */
import * as ort from "onnxruntime-web/wasm";
import { replay } from "../conformance.js";
import { UrlSource } from "./storage.js";

declare global {
  interface Window { edgetuneReport?: unknown; edgetuneError?: string }
}

const q = new URLSearchParams(location.search);
ort.env.wasm.wasmPaths = new URL("./", import.meta.url).href;
ort.env.wasm.numThreads = Number(q.get("threads") ?? 1);
const out = document.getElementById("out")!;
replay(new UrlSource(new URL(q.get("artifact")!, location.href).href), new UrlSource(new URL(q.get("kit")!, location.href).href),
  ort, { executionProviders: ["wasm"] })
  .then((r) => { window.edgetuneReport = r; out.textContent = JSON.stringify(r); })
  .catch((e) => { window.edgetuneError = String((e as Error).message ?? e); out.textContent = `error: ${window.edgetuneError}`; });
