"""A make_fx graph -> the ExportedProgram torch.export would make of it, without tracing it again.

make_fx over the step yields a graph of core aten ops with fake-tensor metadata on every
node; where no op mutates its inputs (`mutates`), all `torch.export.export` adds is lifting
the frozen tensors the graph reads (get_attr nodes) into placeholders named in a signature.
Its re-trace of the whole graph cost 42 of SmolLM2's 60 s step capture, for the same ops in
the same order.
Here the lifting is done directly, as export does it: parameters first, then the other
tensors as persistent buffers, each tensor once however many attributes name it.
"""
from __future__ import annotations

import operator

import torch
from torch._export.verifier import TrainingIRVerifier
from torch._subclasses.fake_tensor import FakeTensor
from torch.export import ExportedProgram
from torch.export.exported_program import ModuleCallEntry, ModuleCallSignature
from torch.export.graph_signature import ExportGraphSignature, InputKind, InputSpec, OutputKind, OutputSpec, TensorArgument
from torch.fx.passes.shape_prop import _extract_tensor_metadata
from torch.utils import _pytree as pytree

from edgetune.errors import ConfigError


def mutates(gm: torch.fx.GraphModule) -> bool:
    """Whether an op of ``gm`` writes to a tensor (then only torch.export's functionalization will do)."""
    return any(isinstance(n.target, torch._ops.OpOverload) and n.target._schema.is_mutable
               for n in gm.graph.nodes if n.op == "call_function")


def _getitem_values(graph: torch.fx.Graph) -> None:
    """make_fx leaves no value on an element of a multi-output op's result that is None
    (e.g. native_layer_norm_backward's gradients not asked for); the program's verifier wants
    one on every node: the element's, as torch.export records it."""
    for node in graph.nodes:
        if node.op == "call_function" and node.target is operator.getitem and "val" not in node.meta:
            whole = node.args[0].meta.get("val")
            if isinstance(whole, (tuple, list)):
                node.meta["val"] = whole[node.args[1]]


def exported_program(gm: torch.fx.GraphModule, args: tuple[torch.Tensor, ...]) -> ExportedProgram:
    """``gm``: make_fx's graph of a function of ``args`` (fake mode, static shapes) -> its
    ExportedProgram. ``gm`` is consumed: its get_attr nodes become the program's placeholders."""
    if mutates(gm):
        raise ConfigError("the traced graph writes to a tensor in place; export it with torch.export.export")
    graph = gm.graph
    # make_fx keeps what the step computes and never uses (SmolLM2's: matmuls among them), which
    # torch.export's re-trace would have dropped; the frozen tensors only those read are not lifted
    graph.eliminate_dead_code()
    _getitem_values(graph)
    fake_mode = next(n.meta["val"].fake_mode for n in graph.nodes if isinstance(n.meta.get("val"), FakeTensor))
    user_inputs = [n for n in graph.nodes if n.op == "placeholder"]
    reads: dict[int, tuple[str, torch.Tensor, list[torch.fx.Node]]] = {}  # id(tensor) -> (attr, tensor, nodes)
    for node in graph.nodes:
        if node.op == "get_attr":
            value = getattr(gm, node.target)
            if not isinstance(value, torch.Tensor):
                raise ConfigError(f"the traced step reads {node.target!r}, a {type(value).__name__}, not a tensor")
            reads.setdefault(id(value), (node.target, value, []))[2].append(node)
    # export's order: parameters, then buffers, then the user's inputs
    lifted = sorted(reads.values(), key=lambda r: not isinstance(r[1], torch.nn.Parameter))
    specs, state = [], {}
    for attr, value, nodes in lifted:
        param = isinstance(value, torch.nn.Parameter)
        with graph.inserting_before(user_inputs[0]):
            ph = graph.placeholder(("p_" if param else "b_") + attr.lstrip("_"))
        ph.meta["val"] = fake_mode.from_tensor(value, static_shapes=True)
        ph.meta["tensor_meta"] = _extract_tensor_metadata(value)
        for node in nodes:
            node.replace_all_uses_with(ph)
            graph.erase_node(node)
            if hasattr(gm, node.target):
                delattr(gm, node.target)
        specs.append(InputSpec(InputKind.PARAMETER if param else InputKind.BUFFER, TensorArgument(ph.name),
                               target=attr, persistent=None if param else True))
        state[attr] = value
    specs += [InputSpec(InputKind.USER_INPUT, TensorArgument(n.name), target=None) for n in user_inputs]
    out = next(n for n in graph.nodes if n.op == "output")
    leaves, out_spec = pytree.tree_flatten(out.args[0])
    if not all(isinstance(leaf, torch.fx.Node) for leaf in leaves):
        raise ConfigError("the traced step returns a value that is not a tensor it computes")
    out.args = (tuple(leaves),)  # an ExportedProgram's graph returns a flat tuple; out_spec keeps the structure
    outputs = [OutputSpec(OutputKind.USER_OUTPUT, TensorArgument(n.name), target=None) for n in leaves]
    gm.recompile()
    # as torch.export records the root call: no argument names (passes rename nodes), the structures
    call = ModuleCallSignature(inputs=[], outputs=[], in_spec=pytree.tree_flatten((tuple(args), {}))[1],
                               out_spec=out_spec, forward_arg_names=[f"args_{i}" for i in range(len(args))])
    return ExportedProgram(root=gm, graph=graph, graph_signature=ExportGraphSignature(specs, outputs),
                           state_dict=state, range_constraints={}, module_call_graph=[ModuleCallEntry("", call)],
                           example_inputs=(tuple(args), {}), constants={}, verifiers=[TrainingIRVerifier])
