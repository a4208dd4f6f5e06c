"""The signature's tables built once per change, and provenance kept to each node's oldest
ancestor: the same answers as torch's own bookkeeping."""
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
        sig.input_specs.insert(0, InputSpec(InputKind.CONSTANT_TENSOR, TensorArgument("c_k"), target="k"))
        assert dict(sig.inputs_to_lifted_tensor_constants) == {"c_k": "k"}  # the list grew
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
