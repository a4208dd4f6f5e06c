"""The signature's tables built once per change, and provenance kept to each node's oldest
ancestor, and a delegate call's outputs made from its partition's record: the same answers as
torch's own bookkeeping."""
from unittest import mock

import torch
from torch.export.graph_signature import ExportGraphSignature, InputKind, InputSpec, TensorArgument

from exporters.fx_bookkeeping import oldest_ancestor_only, signature_tables_once


class _Affine(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(4, 3))
        self.register_buffer("b", torch.randn(3))

    def forward(self, x):
        return torch.relu(x @ self.w + self.b)


def _tables(sig: ExportGraphSignature) -> dict:
    return {name: dict(getattr(sig, name)) for name in
            ("inputs_to_parameters", "inputs_to_buffers", "inputs_to_lifted_tensor_constants", "buffers_to_mutate")}


def test_tables_follow_every_change_to_the_signature():
    ep = torch.export.export(_Affine(), (torch.randn(2, 4),))
    sig = ep.graph_signature
    with signature_tables_once():
        first = sig.inputs_to_parameters
        assert sig.inputs_to_parameters is first  # built once
        assert _tables(sig) == {"inputs_to_parameters": {"p_w": "w"}, "inputs_to_buffers": {"b_b": "b"},
                                "inputs_to_lifted_tensor_constants": {}, "buffers_to_mutate": {}}
        InputSpec(InputKind.PARAMETER, TensorArgument("p_elsewhere"), target="elsewhere")  # another signature's
        assert sig.inputs_to_parameters is first  # not rebuilt for a spec made for another signature
        sig.input_specs.insert(0, InputSpec(InputKind.CONSTANT_TENSOR, TensorArgument("c_k"), target="k"))
        assert dict(sig.inputs_to_lifted_tensor_constants) == {"c_k": "k"}  # the list grew
        w = sig.input_specs[1]
        sig.input_specs[1] = InputSpec(InputKind.PARAMETER, TensorArgument("p_v"), target="v")  # same length
        assert dict(sig.inputs_to_parameters) == {"p_v": "v"}
        sig.input_specs[1] = InputSpec(w.kind, TensorArgument(w.arg.name), target=w.target, persistent=w.persistent)
        assert dict(sig.inputs_to_parameters) == {"p_w": "w"}
        sig.input_specs[0].arg.name = "c_k2"  # renamed in place, as ExecuTorch's passes do
        assert dict(sig.inputs_to_lifted_tensor_constants) == {"c_k2": "k"}
        sig.replace_all_uses("p_w", "p_w2")
        assert dict(sig.inputs_to_parameters) == {"p_w2": "w"}
        sig.input_specs = sig.input_specs[1:]  # the list replaced
        assert dict(sig.inputs_to_lifted_tensor_constants) == {}
        inside = _tables(sig)
    assert _tables(sig) == inside  # the same as torch's own tables
    assert sig.inputs_to_parameters is not sig.inputs_to_parameters  # torch's property is back


def _handles(gm: torch.fx.GraphModule) -> dict:
    """ExecuTorch's debug handle of each node, by name."""
    from executorch.exir.passes.debug_handle_generator_pass import DebugHandleGeneratorPass

    DebugHandleGeneratorPass()(gm)
    return {n.name: n.meta.get("debug_handle") for n in gm.graph.nodes}


def test_oldest_ancestor_gives_executorchs_debug_handles():
    from executorch.exir import to_edge

    ep = torch.export.export(_Affine(), (torch.randn(2, 4),))
    full = to_edge(ep).exported_program().graph_module
    with oldest_ancestor_only():
        short = to_edge(ep).exported_program().graph_module
    assert _handles(short) == _handles(full)
    histories = [n.meta["from_node"] for n in short.graph.nodes if n.op == "call_function"]
    assert histories and all(len(h) == 1 and not h[0].from_node for h in histories)
    assert any(n.op == "call_function" and n.meta["from_node"][0].from_node for n in full.graph.nodes)


def _signature(value):
    from torch.utils import _pytree as pytree

    leaves, spec = pytree.tree_flatten(value)
    return spec, [(type(t).__name__, t.shape, t.dtype, t.stride()) for t in leaves]


def test_delegate_outputs_from_metadata_are_what_running_the_partition_gives():
    """Every delegate call of a lowered decoder step (one or many outputs, 2- to 4-D), run on
    fake tensors both ways: the same structure, types, shapes, dtypes and strides."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from torch._higher_order_ops.executorch_call_delegate import executorch_call_delegate
    from torch._subclasses.fake_tensor import FakeTensorMode

    from edgetune import AdamW, LoRA, compile_step, prepare
    from edgetune.models.decoder import DecoderConfig, DecoderForCausalLM
    from exporters.fx_bookkeeping import delegate_outputs_from_metadata

    torch.manual_seed(0)
    decoder = DecoderForCausalLM(DecoderConfig(vocab_size=64, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                                               intermediate_size=64, max_positions=8))
    ep = compile_step(prepare(decoder, [LoRA(targets=("q_proj",), r=2)]), AdamW(), 2, 4).capture("step")
    edge = to_edge_transform_and_lower(ep.run_decompositions(), partitioner=[XnnpackPartitioner()]).exported_program()
    calls = [n for n in edge.graph.nodes if n.target is executorch_call_delegate]
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    multi = 0
    for call in calls:
        lowered = getattr(edge.graph_module, call.args[0].target)
        with mode:
            args = [torch.empty_strided(a.meta["val"].shape, a.meta["val"].stride(), dtype=a.meta["val"].dtype)
                    for a in call.args[1:]]
            want = executorch_call_delegate(lowered, *args)
            with (delegate_outputs_from_metadata(),
                  mock.patch.object(torch.export.ExportedProgram, "module", side_effect=AssertionError("ran"))):
                got = executorch_call_delegate(lowered, *args)  # without running the partition
        assert _signature(got) == _signature(want)
        multi += len(_signature(want)[1]) > 1
    assert len(calls) > 3 and multi > 0
