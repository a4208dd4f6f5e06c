"""XNNPACK's and the edge dialect's passes skipped where they find nothing to act on (the edge
dialect's op rewrites in one interpretation), memory planning's mutable-buffer check answered
from the outputs and its placed tensors read once, the signature's tables built once, no provenance
recorded, delegate outputs made from their partitions' records, the fusing's per-partition
graph scans made once, the partitioner tagging the program itself and the partitions handed to
XNNPACK uncopied: the .pte is byte for byte the one of ExecuTorch's full pipeline."""
import contextlib
from collections import Counter

import pytest
import torch

import exporters.edge_passes as edge
import exporters.executorch as et
import exporters.exir_planning as planning
import exporters.xnnpack_partition as partition
import exporters.xnnpack_passes as passes
import exporters.xnnpack_reuse as reuse
from edgetune import AdamW, FullyTrainable, LoRA, compile_step, prepare
from edgetune.models.tiny import TinyClassifier
from edgetune.quant import config_from, quantize
from helpers.tensor_models import SmallCNN, image_batch


def _classifier_step(quant):
    torch.manual_seed(0)
    model = TinyClassifier()
    if quant:
        quantize(model, config_from(quant))
    return compile_step(prepare(model, [LoRA(r=2)]), AdamW(), 2, 8).capture("step")


def _cnn_step():
    torch.manual_seed(0)
    x, y = image_batch(4)
    prepared = prepare(SmallCNN(), [LoRA(targets=("conv1", "conv2"), r=2), FullyTrainable(("fc",))])
    return compile_step(prepared, AdamW(), example_inputs=x, example_targets=y).capture("step")


def _decoder_step():
    """Rotary embeddings (slices, cat, neg), RMSNorm and int4 weights dequantized in the graph."""
    from edgetune.models.decoder import DecoderConfig, DecoderForCausalLM

    torch.manual_seed(0)
    decoder = DecoderForCausalLM(DecoderConfig(vocab_size=64, hidden_size=64, num_layers=1, num_heads=4, num_kv_heads=2,
                                               intermediate_size=128, max_positions=16))
    quantize(decoder, config_from("int4"))
    return compile_step(prepare(decoder, [LoRA(targets=("q_proj", "v_proj"), r=2)]), AdamW(), 2, 8).capture("step")


STEPS = {"classifier": lambda: _classifier_step(None), "classifier_int4": lambda: _classifier_step("int4"),
         "cnn": _cnn_step, "decoder_int4": _decoder_step}


@pytest.mark.parametrize("name", list(STEPS))
def test_the_program_is_byte_for_byte_executorchs(tmp_path, monkeypatch, name):
    from executorch.backends.xnnpack._passes import XNNPACKPassManager

    ep = STEPS[name]()
    ran, skipped = Counter(), Counter()

    def counting(real_acts):
        table = {}
        for pass_, acts in real_acts.items():
            def check(graph, pass_=pass_, acts=acts):
                act = acts(graph)
                (ran if act else skipped)[pass_.__name__] += 1
                return act
            table[pass_] = check
        return table

    xnnpack_table, edge_table = counting(passes.acts_on()), counting(edge.acts_on())
    monkeypatch.setattr(passes, "acts_on", lambda: xnnpack_table)
    monkeypatch.setattr(edge, "acts_on", lambda: edge_table)
    # every partition compiled (from a copy of its graph), none taking an equal one's bytes: those
    # carry the first one's debug handles (test_xnnpack_reuse)
    monkeypatch.setattr(reuse, "partition_key", lambda program, specs: None)
    et.export_executorch(ep, tmp_path / "ours.pte")
    monkeypatch.setattr(passes, "only_passes_that_act", contextlib.nullcontext)
    monkeypatch.setattr(edge, "only_edge_passes_that_act", contextlib.nullcontext)
    monkeypatch.setattr(planning, "mutable_buffer_checks_by_outputs", contextlib.nullcontext)
    monkeypatch.setattr(planning, "placements_read_once", contextlib.nullcontext)
    monkeypatch.setattr(partition, "partition_in_place", contextlib.nullcontext)
    monkeypatch.setattr(reuse, "one_compile_per_distinct_partition", contextlib.nullcontext)
    monkeypatch.setattr(et, "signature_tables_once", contextlib.nullcontext)
    monkeypatch.setattr(et, "oldest_ancestor_only", contextlib.nullcontext)
    monkeypatch.setattr(et, "delegate_outputs_from_metadata", contextlib.nullcontext)
    monkeypatch.setattr(partition, "one_scan_per_graph", contextlib.nullcontext)
    et.export_executorch(ep, tmp_path / "theirs.pte")
    assert XNNPACKPassManager.transform.__module__.startswith("executorch")  # restored
    print(f"{name}: ran {dict(ran)}, skipped {dict(skipped)}")
    assert sum(skipped.values()) > 0 and skipped["SymToTensorPass"] > 0  # both kinds skipped something
    assert (tmp_path / "ours.pte").read_bytes() == (tmp_path / "theirs.pte").read_bytes()
    if name == "cnn":  # the convolution passes ran where there were convolutions
        assert ran["Conv1dUnsqueezePass"] > 0


def test_each_pass_is_kept_where_its_op_occurs():
    from executorch.backends.xnnpack._passes import DecomposeConcatenate, DimOrderOpsRevertPass, FuseActivationPass
    from executorch.exir import to_edge

    def edge_graph(fn, *args):
        class M(torch.nn.Module):
            def forward(self, *a):
                return fn(*a)
        return to_edge(torch.export.export(M(), args)).exported_program().graph

    x = torch.randn(2, 3)
    acts = passes.acts_on()
    relu = edge_graph(lambda a: torch.relu(a @ a.T), x)
    cat = edge_graph(lambda a: torch.cat([a, a]), x)
    assert acts[FuseActivationPass](relu) and not acts[FuseActivationPass](cat)
    assert acts[DecomposeConcatenate](cat) and not acts[DecomposeConcatenate](relu)
    cast = edge_graph(lambda a: a.to(torch.float64), x)  # a dim-order copy in the edge dialect
    assert acts[DimOrderOpsRevertPass](cast) and not acts[DimOrderOpsRevertPass](relu)
