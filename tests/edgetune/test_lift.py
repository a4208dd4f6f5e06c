"""The captured program lifted from make_fx's graph against torch.export's re-trace of it."""
from collections import Counter

import pytest
import torch
from torch.fx.experimental.proxy_tensor import make_fx

from edgetune import AdamW, LoRA, compile_step, prepare
from edgetune.errors import ConfigError
from edgetune.models.tiny import TinyClassifier
from edgetune.quant import config_from, quantize
from edgetune.step.compile import _Flat
from edgetune.step.lift import exported_program, mutates


def _traced(fn, args):
    return make_fx(fn, tracing_mode="fake", _allow_non_fake_inputs=True)(*args)


def _ops(ep):
    return Counter(str(n.target) for n in ep.graph.nodes if n.op == "call_function")


def _signature(ep):
    """(kind, target) per input, with each lifted tensor's identity in place of its name."""
    tensors = {**ep.state_dict, **ep.constants}
    return [(s.kind, id(tensors[s.target]) if s.target else None, s.persistent) for s in ep.graph_signature.input_specs]


@pytest.mark.parametrize("quant", [None, "int8"])
@pytest.mark.parametrize("program", ["step", "infer"])
def test_lifted_program_is_torch_exports(quant, program):
    model = TinyClassifier()
    if quant:
        quantize(model, config_from(quant))
    c = compile_step(prepare(model, [LoRA(r=2)]), AdamW(), 2, 8)
    fn, spec = (c.flat_step, c.step_spec()) if program == "step" else (c.flat_infer, c.infer_spec())
    args = tuple(c.order(spec, c.example_feeds()))
    gm = _traced(fn, args)
    ref = torch.export.export(_Flat(gm), args, strict=False)
    ref.graph.eliminate_dead_code()  # lifting drops what the step computes and never uses; export keeps it
    ep = exported_program(gm, args)
    assert _ops(ep) == _ops(ref)
    assert _signature(ep) == _signature(ref)  # the same tensors lifted, as the same kinds, in the same order
    assert len(ep.graph_signature.output_specs) == len(ref.graph_signature.output_specs) == len(spec.outputs)
    assert ep.module_call_graph[0].signature == ref.module_call_graph[0].signature
    want = fn(*args)
    got = ep.module()(*args)
    for w, g in zip(want if isinstance(want, tuple) else (want,), got if isinstance(got, tuple) else (got,)):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


def test_one_placeholder_per_tensor_and_an_in_place_graph_refused():
    w = torch.nn.Parameter(torch.randn(3, 3), requires_grad=False)
    b = torch.randn(3)

    def two_reads(x):
        return (x @ w + b) @ w + b

    x = torch.randn(2, 3)
    gm = _traced(two_reads, (x,))
    ep = exported_program(gm, (x,))
    kinds = [s.kind.name for s in ep.graph_signature.input_specs]
    assert kinds == ["PARAMETER", "BUFFER", "USER_INPUT"]
    torch.testing.assert_close(ep.module()(x), two_reads(x))

    def in_place(x):
        y = x * 2
        y.add_(b)
        return y

    gm = make_fx(in_place)(x)
    assert mutates(gm)
    with pytest.raises(ConfigError, match="in place"):
        exported_program(gm, (x,))


def test_what_the_graph_never_uses_is_dropped_with_the_tensors_only_it_reads():
    w, unused = torch.randn(3, 3), torch.randn(3, 3)

    def with_dead_code(x):
        _ = torch.mm(x, unused)  # traced, never used
        return x @ w

    x = torch.randn(2, 3)
    gm = _traced(with_dead_code, (x,))
    assert Counter(str(n.target) for n in gm.graph.nodes if n.op == "call_function")["aten.mm.default"] == 2
    ep = exported_program(gm, (x,))
    assert _ops(ep) == Counter({"aten.mm.default": 1})
    assert [id(ep.state_dict[s.target]) for s in ep.graph_signature.input_specs if s.target] == [id(w)]
    torch.testing.assert_close(ep.module()(x), x @ w)
