"""Which Hugging Face architectures edgetune takes, measured: every supported model type as a
tiny random checkpoint directory (built offline from its transformers config), through the
user's path on each runtime.

Per architecture: the logits of edgetune's model against transformers' own (decoders; encoders
run transformers' model itself), then per runtime a separate export (ONNX, ExecuTorch) with its
wall time, and 3 steps of the exported program against the eager step, each side fed its own
outputs. A failing stage is a row with its stage and error, not a lost run. The README's
"Bring your own model" table is this script's output.

    python benchmarks/architectures.py [--only llama,bert] [--formats onnx,executorch]
    python benchmarks/architectures.py --smoke    # llama and bert, ONNX only

JSON keys: rows (name, kind, logits_max_abs_diff, runtimes: {runtime: {export_s, parity, error,
stage}}), environment, smoke.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import common


def logits_diff(hf_tiny, name: str, d: Path) -> float | None:
    """max |edgetune - transformers| over the kept positions of a padded batch (decoders)."""
    import torch

    from edgetune.models.hf_checkpoint import load_decoder

    if name not in hf_tiny.DECODER_CONFIGS:
        return None
    ids = torch.randint(3, 128, (2, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    with torch.no_grad():
        got = load_decoder(d)(ids, mask)
        want = hf_tiny.hf_model(d)(input_ids=ids, attention_mask=mask).logits
    return float((got - want)[mask.bool()].abs().max())


def run_runtime(hf_tiny, parity, name: str, d: Path, data: tuple[Path, Path], work: Path, runtime: str) -> dict:
    from edgetune.app.classifier import ClassifierPlan, export_classifier
    from edgetune.app.lm import LMPlan, export_lm

    art = work / f"art-{runtime}"
    shutil.rmtree(art, ignore_errors=True)
    opt = {"name": "adamw", "lr": 1e-2, "weight_decay": 0.0}
    stage = "export"
    t0 = time.perf_counter()
    try:
        if name in hf_tiny.DECODER_CONFIGS:
            plan = LMPlan(model=str(d), batch_size=2, seq_len=16, embedding_rows=8,
                          adapter={"method": "lora", "r": 4}, optimizer=opt)
            manifest, compiled = export_lm(plan, data[1], art, (runtime,))
        else:
            plan = ClassifierPlan(model=str(d), batch_size=4, seq_len=12, embedding_rows=8,
                                  adapter={"method": "lora", "r": 4}, optimizer=opt)
            manifest, compiled = export_classifier(plan, data[0], art, (runtime,))
        export_s = time.perf_counter() - t0
        stage = "parity"
        parity.run_parity(art, manifest, compiled, runtime, steps=3)
        return {"export_s": round(export_s, 1), "parity": True, "error": None, "stage": None,
                "pruned_last_layer": getattr(compiled.prepared.model, "pruned", None)}
    except Exception as e:  # noqa: BLE001 -- every failure is a row
        last = traceback.format_exception_only(type(e), e)[-1].strip()
        return {"export_s": round(time.perf_counter() - t0, 1), "parity": False, "error": last[-400:], "stage": stage}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="", help="comma-separated architecture names (default: all)")
    ap.add_argument("--formats", default="onnx,executorch")
    ap.add_argument("--smoke", action="store_true", help="llama and bert, ONNX only")
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/architectures.json")
    a = ap.parse_args()
    hf_tiny, parity = common.test_helper("hf_tiny"), common.test_helper("parity_steps")
    names = [n for n in [*hf_tiny.DECODER_CONFIGS, *hf_tiny.ENCODER_CONFIGS] if n != "llama-3.1-rope"]
    formats = [f for f in a.formats.split(",") if f]
    if a.smoke:
        names, formats = ["llama", "bert"], ["onnx"]
    elif a.only:
        names = [n for n in a.only.split(",") if n]
    work = Path(tempfile.mkdtemp(prefix="architectures."))
    data = hf_tiny.write_word_data(work / "data")
    rows = []
    for name in names:
        d = work / name
        if name in hf_tiny.DECODER_CONFIGS:
            hf_tiny.save_tiny(name, d)
        else:
            hf_tiny.save_tiny(name, d, head_labels=["c", "a", "b"])  # its own head: the pruned path
        row = {"name": name, "kind": "decoder" if name in hf_tiny.DECODER_CONFIGS else "encoder",
               "logits_max_abs_diff": logits_diff(hf_tiny, name, d), "runtimes": {}}
        for rt in formats:
            print(f"{name}: {rt} ...", file=sys.stderr, flush=True)
            row["runtimes"][rt] = run_runtime(hf_tiny, parity, name, d, data, work / name, rt)
        rows.append(row)
    print("\n| architecture | kind | logits vs transformers | " + " | ".join(formats) + " |")
    print("|---|---|---|" + "---|" * len(formats))
    for r in rows:
        cells = []
        for rt in formats:
            x = r["runtimes"][rt]
            cells.append(f"3-step parity, export {x['export_s']:.0f} s" if x["parity"]
                         else f"fails at {x['stage']}: {x['error'][:120]}")
        diff = ("(transformers' model itself)" if r["logits_max_abs_diff"] is None
                else f"{r['logits_max_abs_diff']:.1e}")
        print(f"| {r['name']} | {r['kind']} | {diff} | " + " | ".join(cells) + " |")
    out = a.out or common.default_out("architectures", a.smoke)
    common.write_json(out, {"rows": rows, "formats": formats}, None, a.smoke)
    print(f"wrote {out}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
