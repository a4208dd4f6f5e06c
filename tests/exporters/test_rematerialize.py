"""Weight-only tensors recomputed for each use: the same numbers, one user per copy, and an
ExecuTorch step whose memory plan no longer holds the model's weights at once."""
from unittest import mock

import pytest
import torch

import exporters.rematerialize as remat
from edgetune import AdamW, LoRA, compile_step, prepare
from edgetune.models.decoder import DecoderConfig, DecoderForCausalLM
from edgetune.models.tiny import TinyClassifier
from edgetune.quant import config_from, quantize
from exporters.artifact import PARITY_LR

CONFIG = DecoderConfig(vocab_size=64, hidden_size=128, num_layers=2, num_heads=4, num_kv_heads=2,
                       intermediate_size=256, max_positions=16)


def _decoder_step(quant: str | None):
    torch.manual_seed(0)
    decoder = DecoderForCausalLM(CONFIG)
    if quant:
        quantize(decoder, config_from(quant))
    return compile_step(prepare(decoder, [LoRA(targets=("q_proj",), r=2)]), AdamW(), 2, 8)


def _shared(ep) -> list[str]:
    """Weight-only calls that more than one node reads."""
    varying = remat.depends_on(ep.graph, remat.user_input_placeholders(ep))
    return [n.name for n in ep.graph.nodes if n.op == "call_function" and n not in varying
            and sum(u.op != "output" for u in n.users) > 1]


@pytest.mark.parametrize("model", ["int4_decoder", "classifier"])
def test_each_use_gets_its_own_copy_and_the_numbers_stay(model, monkeypatch):
    monkeypatch.setattr(remat, "MIN_BYTES", 0)  # every weight-only tensor of the small models counts
    c = (_decoder_step("int4") if model == "int4_decoder"
         else compile_step(prepare(TinyClassifier(), [LoRA(r=2)]), AdamW(), 2, 12))
    ep = c.capture("step")
    args = c.order(c.step_spec(), c.example_feeds(lr=PARITY_LR))
    want = ep.module()(*args)
    assert _shared(ep)  # the forward's weight transposes (and dequantizations), kept for the backward
    outputs = [s.arg.name for s in ep.graph_signature.output_specs]
    assert remat.one_copy_per_use(ep) > 0
    assert not _shared(ep)
    assert [s.arg.name for s in ep.graph_signature.output_specs] == outputs
    for got, w in zip(ep.module()(*args), want):
        torch.testing.assert_close(got, w, rtol=0, atol=0)  # the same ops on the same values


def test_a_small_weight_only_tensor_stays_shared():
    ep = _decoder_step(None).capture("step")
    nodes = {n.name: n for n in ep.graph.nodes}
    small = {n for n in _shared(ep) if remat.nbytes(nodes[n]) < remat.MIN_BYTES}
    large = set(_shared(ep)) - small
    remat.one_copy_per_use(ep)
    assert small and large  # the k/v projections' transposes (32 KiB), the others' (64 KiB and up)
    assert small <= set(_shared(ep)) and not large & set(_shared(ep))


def _planned_bytes(pte) -> int:
    from executorch.exir._serialize._program import deserialize_pte_binary

    return sum(deserialize_pte_binary(pte.read_bytes()).program.execution_plan[0].non_const_buffer_sizes)


@pytest.mark.parametrize("quant", [None, "int4"])
def test_the_executorch_steps_memory_plan_holds_no_weights_at_once(quant, tmp_path):
    """The step's planned memory with each weight recomputed where it is used, against the same
    export computing each once and placing it as soon as it can run: the difference is at
    least the model's frozen matrices in fp32 (all of them alive at the turn of the step)."""
    import exporters.executorch as ex
    import exporters.xnnpack_partition as xp

    c = _decoder_step(quant)
    frozen = sum(4 * CONFIG.hidden_size * n for n in (CONFIG.hidden_size, CONFIG.hidden_size // 2,
                                                       CONFIG.hidden_size // 2, CONFIG.hidden_size))
    frozen = CONFIG.num_layers * (frozen + 3 * 4 * CONFIG.hidden_size * CONFIG.intermediate_size)
    ex.export_executorch(c.capture("step"), tmp_path / "ours.pte")
    with (mock.patch.object(ex, "one_copy_per_use", lambda ep: 0),
          mock.patch.object(xp, "user_input_placeholders", lambda ep: None)):
        ex.export_executorch(c.capture("step"), tmp_path / "early.pte")
    ours, early = _planned_bytes(tmp_path / "ours.pte"), _planned_bytes(tmp_path / "early.pte")
    print(f"{quant or 'fp32'}: planned {ours / 2**20:.2f} MB, {early / 2**20:.2f} MB computed once and early; "
          f"frozen matrices {frozen / 2**20:.2f} MB")
    assert early - ours >= frozen


def test_a_copy_computes_each_value_once(monkeypatch):
    """Decomposed, an int4 dequantization casts its codes once and reads the cast for both
    nibbles: each cast serves one read, and no read is served by two casts of the same codes."""
    import exporters.executorch as ex
    from exporters.fx_bookkeeping import oldest_ancestor_only, signature_tables_once

    monkeypatch.setattr(remat, "MIN_BYTES", 0)
    with signature_tables_once(), oldest_ancestor_only():
        ep = ex._decompose(_decoder_step("int4").capture("step"))
    varying = remat.depends_on(ep.graph, remat.user_input_placeholders(ep))

    def reads(n) -> set:
        """The varying nodes reading ``n``, directly or through weight-only nodes."""
        found, stack = set(), [n]
        while stack:
            for u in stack.pop().users:
                if u in varying:
                    found.add(u)
                else:
                    stack.append(u)
        return found

    casts = [n for n in ep.graph.nodes if n.target is torch.ops.aten._to_copy.default
             and n.args[0].meta["val"].dtype == torch.uint8]
    served = [(c.args[0], *reads(c)) for c in casts]
    assert len(casts) > 2 * 2 * 7  # two layers of seven int4 matrices, each read at least twice
    assert all(len(s) == 2 for s in served)  # each cast serves one read
    assert len(set(served)) == len(served)  # no read served by two casts
