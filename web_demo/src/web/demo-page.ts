/**
 * index.html: the demo in a page. Loads an artifact (?artifact=URL/, default ../artifact/) and
 * labelled notes (?notes=URL, default ../data/notes.json; {"train": [{text, label}], "held_out": [...]}),
 * trains on onnxruntime-web (WebAssembly) with a progress bar and a live loss curve, shows
 * held-out accuracy before and after, keeps the state in IndexedDB (a reload resumes), and
 * downloads it as a state file (`edgetune save-adapter ARTIFACT --state FILE` takes it).
 * `window.edgetuneDemo` mirrors what the page shows, for the browser test.
 */
import * as ort from "onnxruntime-web/wasm";
import { EdgetuneError } from "../contract/errors.js";
import { encode } from "../contract/statefile.js";
import { batches, labelledRows, type Note } from "../batches.js";
import { Trainer, type StepRecord } from "../trainer.js";
import { IndexedDbStore, UrlSource } from "./storage.js";

interface DemoState {
  ready: boolean; step: number; accuracy: number | null; losses: number[]; ms: number[]; error?: string; training: boolean;
}
declare global { interface Window { edgetuneDemo: DemoState } }

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const q = new URLSearchParams(location.search);
const artifactUrl = new URL(q.get("artifact") ?? "../artifact/", location.href).href;
const notesUrl = new URL(q.get("notes") ?? "../data/notes.json", location.href).href;
ort.env.wasm.wasmPaths = new URL("./", import.meta.url).href;
// WASM threads need a cross-origin isolated page; ?threads=N overrides the default (up to 4)
ort.env.wasm.numThreads = crossOriginIsolated ? Number(q.get("threads") ?? Math.min(4, navigator.hardwareConcurrency || 1)) : 1;
const demo: DemoState = window.edgetuneDemo = { ready: false, step: 0, accuracy: null, losses: [], ms: [], training: false };

function status(text: string) {
  $("status").textContent = text;
}

function drawLoss(canvas: HTMLCanvasElement, losses: number[]) {
  const g = canvas.getContext("2d")!;
  const { width: w, height: h } = canvas;
  g.clearRect(0, 0, w, h);
  g.strokeStyle = "#999";
  g.strokeRect(0.5, 0.5, w - 1, h - 1);
  if (losses.length < 2) return;
  const top = Math.max(...losses), bottom = Math.min(0, ...losses);
  g.strokeStyle = "#1565c0";
  g.lineWidth = 2;
  g.beginPath();
  losses.forEach((l, i) => {
    const x = 4 + ((w - 8) * i) / (losses.length - 1), y = h - 4 - ((h - 8) * (l - bottom)) / (top - bottom || 1);
    if (i) g.lineTo(x, y); else g.moveTo(x, y);
  });
  g.stroke();
  g.fillStyle = "#333";
  g.textAlign = "right";
  g.fillText(`loss ${losses.at(-1)!.toFixed(3)} (step ${demo.step})`, w - 8, 14);
}

async function main() {
  status("loading the artifact...");
  const store = new IndexedDbStore(`state:${artifactUrl}`);
  const trainer = await Trainer.open(new UrlSource(artifactUrl), ort, store, { executionProviders: ["wasm"] });
  const m = trainer.manifest;
  if (!m.labels) throw new EdgetuneError("this page trains text classifiers; the artifact has no labels");
  const labels = m.labels;
  const tok = trainer.tokenizer()!;
  const notes = (await (await fetch(notesUrl)).json()) as { train: Note[]; held_out: Note[] };
  const train: Note[] = [...notes.train];
  const heldOut = labelledRows(tok, labels, notes.held_out);
  const evaluate = async () => {
    const e = await trainer.evaluate(heldOut);
    demo.accuracy = e.accuracy;
    return e;
  };

  const select = $<HTMLSelectElement>("label");
  for (const l of labels) select.add(new Option(l, l));
  const list = $("notes");
  const showNotes = () => {
    list.replaceChildren(...train.map((n) => Object.assign(document.createElement("li"), { textContent: `${n.label}: ${n.text}` })));
    $("count").textContent = String(train.length);
  };
  showNotes();
  $("add").onclick = () => {
    const text = $<HTMLTextAreaElement>("text").value.trim();
    if (!text) return;
    train.push({ text, label: select.value });
    $<HTMLTextAreaElement>("text").value = "";
    showNotes();
  };

  const first = await evaluate();
  $("before").textContent = `${(100 * first.accuracy).toFixed(1)}% at step ${trainer.step} (${first.examples} held-out notes)`;
  demo.step = trainer.step;
  status(trainer.step ? `resumed at step ${trainer.step} from this browser's storage` : "ready: the artifact's initial state");
  const canvas = $<HTMLCanvasElement>("loss");
  drawLoss(canvas, demo.losses);

  $("train").onclick = async () => {
    if (demo.training) return;
    demo.training = true;
    const steps = Math.max(1, Math.min(1000, Number($<HTMLInputElement>("steps").value) || 20));
    const bar = $<HTMLProgressElement>("progress");
    bar.max = steps;
    bar.value = 0;
    try {
      await trainer.train(batches(tok, labels, train, m.batchSize, trainer.step), steps, {
        totalSteps: trainer.step + steps,
        onStep: (rec: StepRecord) => {
          demo.losses.push(rec.loss);
          demo.ms.push(rec.ms);
          demo.step = rec.step;
          bar.value += 1;
          status(`step ${rec.step}: loss ${rec.loss.toFixed(4)}, ${rec.ms.toFixed(0)} ms`);
          drawLoss(canvas, demo.losses);
        },
      });
      const e = await evaluate();
      $("after").textContent = `${(100 * e.accuracy).toFixed(1)}% at step ${trainer.step}`;
      status(`trained to step ${trainer.step}; the state is saved in this browser`);
    } catch (e) {
      status(`error: ${(e as Error).message}`);
      demo.error = (e as Error).message;
    } finally {
      demo.training = false;
    }
  };
  $("download").onclick = async () => {
    const bytes = await encode(trainer.state, m, trainer.step);
    const a = Object.assign(document.createElement("a"), {
      href: URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>])), download: `trained-${m.artifactId}.safetensors`,
    });
    a.click();
    URL.revokeObjectURL(a.href);
  };
  $("reset").onclick = async () => {
    await store.clear();
    location.reload();
  };
  demo.ready = true;
}

main().catch((e) => {
  demo.error = (e as Error).message;
  status(`error: ${demo.error}`);
});
