"""Each distinct XNNPACK partition compiled once: equal partitions compile to equal bytes (up
to the debug handles), and a decoder's step with its compiled partitions reused computes what
it computes with every partition compiled."""
import contextlib
import copy
from collections import defaultdict

import pytest
import torch

import exporters.executorch as et
import exporters.xnnpack_reuse as reuse
from edgetune import AdamW, LoRA, compile_step, prepare
from edgetune.models.decoder import DecoderConfig, DecoderForCausalLM
from edgetune.quant import config_from, quantize
from exporters.artifact import PARITY_LR


def _decoder_step(quant: str | None):
    torch.manual_seed(0)
    decoder = DecoderForCausalLM(DecoderConfig(vocab_size=64, hidden_size=64, num_layers=3, num_heads=4, num_kv_heads=2,
                                               intermediate_size=128, max_positions=16))
    if quant:
        quantize(decoder, config_from(quant))
    return compile_step(prepare(decoder, [LoRA(targets=("q_proj", "v_proj"), r=2)]), AdamW(), 2, 8)


def test_partitions_with_equal_keys_compile_to_equal_bytes(tmp_path, monkeypatch):
    """The key's promise, checked with XNNPACK's own compiler: every partition compiled, with
    its debug handles renumbered by position (the one thing the key leaves out that the bytes
    hold)."""
    from executorch.backends.xnnpack.xnnpack_preprocess import XnnpackBackend

    real = XnnpackBackend.preprocess
    blobs = defaultdict(set)

    def spy(edge_program, compile_specs):
        key = reuse.partition_key(edge_program, compile_specs)
        renumbered = copy.deepcopy(edge_program)
        for i, n in enumerate(renumbered.graph.nodes):
            n.meta["debug_handle"] = i + 1
        blobs[key].add(real(renumbered, compile_specs).processed_bytes)
        return real(edge_program, compile_specs)

    monkeypatch.setattr(reuse, "one_compile_per_distinct_partition", contextlib.nullcontext)
    monkeypatch.setattr(XnnpackBackend, "preprocess", staticmethod(spy))
    et.export_executorch(_decoder_step("int4").capture("step"), tmp_path / "step.pte")
    assert None not in blobs  # no partition holds constant data: every weight is an input
    assert sum(len(b) for b in blobs.values()) == len(blobs)  # one compiled form per key
    assert len(blobs) >= 10


@pytest.mark.parametrize("quant", [None, "int4"])
def test_a_decoder_step_with_reused_partitions_computes_the_same(tmp_path, monkeypatch, quant):
    from executorch.runtime import Runtime

    c = _decoder_step(quant)
    counts = {}
    real = reuse.one_compile_per_distinct_partition

    @contextlib.contextmanager
    def counted():
        with real() as n:
            yield n
        counts.update(n)

    monkeypatch.setattr(reuse, "one_compile_per_distinct_partition", counted)
    et.export_executorch(c.capture("step"), tmp_path / "reused.pte")
    monkeypatch.setattr(reuse, "one_compile_per_distinct_partition", contextlib.nullcontext)
    et.export_executorch(c.capture("step"), tmp_path / "each.pte")
    print(counts)
    # three identical layers (the first and last cut differently at the model's ends): at least
    # a third of the partitions are another's copy
    assert 3 * counts["reused"] >= counts["compiled"] + counts["reused"] > 0
    assert (tmp_path / "reused.pte").stat().st_size < (tmp_path / "each.pte").stat().st_size  # equal blobs once
    args = [a.contiguous() for a in c.order(c.step_spec(), c.example_feeds(lr=PARITY_LR))]
    outs = [Runtime.get().load_program(str(tmp_path / f"{name}.pte")).load_method("forward").execute(args)
            for name in ("reused", "each")]
    assert len(outs[0]) == len(outs[1]) > 1
    for got, want in zip(*outs):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_a_partition_holding_constants_has_no_key():
    from executorch.exir import to_edge

    class Scale(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(4))

        def forward(self, x):
            return x * self.w

    program = to_edge(torch.export.export(Scale(), (torch.randn(2, 4),))).exported_program()
    assert reuse.partition_key(program, []) is None
    program = to_edge(torch.export.export(torch.nn.ReLU(), (torch.randn(2, 4),))).exported_program()
    assert reuse.partition_key(program, []) is not None
