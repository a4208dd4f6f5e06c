"""Skipped re-traces: a decomposition pass is skipped only when it would rewrite nothing, a
lowering with the skip writes the same program as the toolchain's full path, and the rewrites
done call by call (`decompose_locally`) are the full pass's ops and numbers."""
import contextlib
import operator
from collections import Counter

import numpy as np
import pytest
import torch

import exporters.decompositions as dec
from device_harness.runtimes import OnnxProgram
from edgetune import AdamW, FullyTrainable, LoRA, compile_step, prepare
from edgetune.models.decoder import DecoderConfig, DecoderForCausalLM
from edgetune.models.tiny import TinyClassifier
from exporters.artifact import PARITY_LR


class _Counter(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("seen", torch.zeros(()))

    def forward(self, x):
        self.seen.add_(1)
        return torch.nn.functional.linear(x, torch.ones(3, 4)) + self.seen


@pytest.fixture(scope="module")
def compiled_and_ep():
    c = compile_step(prepare(TinyClassifier(), [LoRA(r=4), FullyTrainable()]), AdamW(), 4, 12)
    return c, c.capture("step")


@contextlib.contextmanager
def full_retraces():
    """Count the run_decompositions calls that really re-trace (not skipped): -> list of graph sizes."""
    real, sizes = torch.export.ExportedProgram.run_decompositions, []

    def counted(self, *args, **kwargs):
        sizes.append(len(self.graph.nodes))
        return real(self, *args, **kwargs)

    torch.export.ExportedProgram.run_decompositions = counted
    try:
        yield sizes
    finally:
        torch.export.ExportedProgram.run_decompositions = real


def test_what_counts_as_nothing_to_decompose():
    ep = torch.export.export(torch.nn.Linear(4, 3), (torch.randn(2, 4),)).run_decompositions()
    core = torch._decomp.core_aten_decompositions()
    assert dec.nothing_to_decompose(ep, core)
    used = next(t for t in dec.call_targets(ep) if t is not operator.getitem)
    assert not dec.nothing_to_decompose(ep, {used: lambda *a: None})  # an op the table rewrites
    mutating = torch.export.export(_Counter(), (torch.randn(2, 4),))  # training IR keeps the in-place add_
    assert any(t._schema.is_mutable for t in dec.call_targets(mutating) if isinstance(t, torch._ops.OpOverload))
    assert not dec.nothing_to_decompose(mutating, {})  # functionalizing it is a rewrite
    kept = torch.export.export(torch.nn.Linear(4, 3), (torch.randn(2, 4),))  # linear: a composite op
    assert torch.ops.aten.linear.default in dec.call_targets(kept) and dec.nothing_to_decompose(kept, {})
    assert dec.call_targets(kept.run_decompositions({})) == dec.call_targets(kept)  # torch keeps it: no rewrite


def test_copied_graph_module_is_independent():
    ep = torch.export.export(torch.nn.Linear(4, 3), (torch.randn(2, 4),))
    before = str(ep.graph)
    copy = dec.copy_graph_module(ep.graph_module)
    out = next(n for n in copy.graph.nodes if n.op == "output")
    with copy.graph.inserting_before(out):
        neg = copy.graph.call_function(torch.ops.aten.neg.default, (out.args[0][0],))
    out.args = ((neg,),)
    copy.recompile()
    assert "neg" in str(copy.graph) and str(ep.graph) == before


@pytest.fixture(scope="module")
def decoder_and_ep():
    """A decoder's step: its rotary embeddings' `unbind` is captured as slices and squeeze.dims."""
    torch.manual_seed(0)
    cfg = DecoderConfig(vocab_size=64, hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2,
                        intermediate_size=64, max_positions=16)
    c = compile_step(prepare(DecoderForCausalLM(cfg), [LoRA(targets=("q_proj",), r=2)]), AdamW(), 2, 8)
    ep = c.capture("step")
    assert torch.ops.aten.squeeze.dims in dec.call_targets(ep)
    return c, ep


@pytest.mark.parametrize("program", ["compiled_and_ep", "decoder_and_ep"])
def test_onnx_lowering_skips_the_retrace_and_writes_the_same_numbers(program, request, tmp_path):
    import exporters.onnx as onnx_exporter

    c, ep = request.getfixturevalue(program)
    before = str(ep.graph)
    with full_retraces() as sizes:
        skipped = onnx_exporter.export_onnx(ep, c.step_spec(), tmp_path / "skipped.onnx")
    assert sizes == [], "torch.onnx re-traced a graph with nothing to decompose"
    assert str(ep.graph) == before, "torch.onnx's passes edited the shared captured program"
    real = onnx_exporter._already_decomposed
    onnx_exporter._already_decomposed = contextlib.nullcontext
    try:
        with full_retraces() as sizes:
            full = onnx_exporter.export_onnx(ep, c.step_spec(), tmp_path / "full.onnx")
    finally:
        onnx_exporter._already_decomposed = real
    assert len(sizes) == 1
    feeds = {k: v.numpy() for k, v in c.example_feeds(lr=PARITY_LR).items()}
    a, b = (OnnxProgram(p, c.step_spec()).run(feeds) for p in (skipped, full))
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.slow
def test_executorch_lowering_retraces_no_program_and_writes_the_same_numbers(compiled_and_ep, tmp_path, monkeypatch):
    from device_harness.runtimes import ExecuTorchProgram
    from exporters import executorch as et

    c, ep = compiled_and_ep
    with full_retraces() as sizes:
        et.export_executorch(ep, tmp_path / "local.pte")
    assert [n for n in sizes if n > 100] == [], sizes  # XNNPACK still decomposes its few-node pattern graphs
    monkeypatch.setattr(et, "skip_noop_decompositions", lambda ep: contextlib.nullcontext())
    monkeypatch.setattr(et, "decompose_locally", lambda ep, table: None)
    with full_retraces() as sizes:
        et.export_executorch(ep, tmp_path / "full.pte")
    assert len([n for n in sizes if n > 100]) >= 3, sizes
    feeds = {k: v.numpy() for k, v in c.example_feeds(lr=PARITY_LR).items()}
    a, b = (ExecuTorchProgram(tmp_path / f, c.step_spec()).run(feeds) for f in ("local.pte", "full.pte"))
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_local_decomposition_is_the_full_passes_graph():
    """An int4 decoder's step (dequantize per frozen matrix, erf-free) and a classifier's
    (erf from GELU): the same ops as run_decompositions leaves, and the same numbers."""
    from torch._decomp import core_aten_decompositions

    from edgetune.quant import config_from, quantize
    from exporters.executorch import erf_from_exp

    torch.manual_seed(0)
    cfg = DecoderConfig(vocab_size=64, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                        intermediate_size=128, max_positions=16)
    decoder = DecoderForCausalLM(cfg)
    quantize(decoder, config_from("int4"))
    for model, seq in ((decoder, 8), (TinyClassifier(), 12)):
        lora = LoRA(targets=("q_proj",), r=2) if model is decoder else LoRA(r=2)
        c = compile_step(prepare(model, [lora]), AdamW(), 2, seq)
        ep = c.capture("step")
        table = {**core_aten_decompositions(), **dec.quant_references(dec.call_targets(ep)),
                 torch.ops.aten.erf.default: erf_from_exp}
        assert dec.call_targets(ep) & set(table)  # something to rewrite
        local = dec.decompose_locally(ep, table)
        full = ep.run_decompositions(table)
        ops = lambda p: Counter(str(n.target) for n in p.graph.nodes if n.op == "call_function")  # noqa: E731
        assert ops(local) == ops(full)
        args = c.order(c.step_spec(), c.example_feeds(lr=PARITY_LR))
        for got, want in zip(local.module()(*args), full.module()(*args)):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
