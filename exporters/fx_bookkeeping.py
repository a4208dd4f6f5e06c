"""Bookkeeping that torch.export and torch.fx redo per node, done once while lowering to ExecuTorch.

Both cost nothing on a model's inference graph and minutes on a training step's (SmolLM2-135M's:
29,000 nodes, a thousand of them inputs), because each is linear in the program and is
asked per node:

- The signature's tables (`ExportGraphSignature.inputs_to_parameters`, ``inputs_to_buffers``,
  ``inputs_to_lifted_tensor_constants``, ``buffers_to_mutate``) are properties that rebuild a
  dict from every input spec on each access. ExecuTorch's emitter asks up to four per
  placeholder, XNNPACK's serializer and passes ask three per node (`is_param_node`), spec
  propagation per placeholder: about 75 of the 640 s of SmolLM2's ExecuTorch lowering.
  `signature_tables_once` keeps each table until the signature changes.
- Provenance (``node.meta["from_node"]``): every fx pass wraps each node's history in a new
  record and deep-copies the history before it, so the copy grows with the number of passes
  already run; ExecuTorch runs dozens. The lowering reads only each node's oldest ancestor
  (for the .pte's debug handles); `oldest_ancestor_only` records just that: about 30 s of the
  same lowering.
- A delegate's outputs: each ExecuTorch pass over the lowered program finds each delegate
  call's output tensors by turning the partition back into a module (an unlift and a code
  generation) and running it on fake tensors, about 35 s of SmolLM2's lowering for 617
  calls. The partition's graph records those outputs already (its output node's values);
  `delegate_outputs_from_metadata` makes them from that record: the same shapes, dtypes
  and strides.
"""
from __future__ import annotations

import contextlib
import operator
from unittest import mock

from torch.export.graph_signature import ExportGraphSignature, InputSpec, OutputSpec, TensorArgument

_TABLES = {"inputs_to_parameters": "input_specs", "inputs_to_buffers": "input_specs",
           "inputs_to_lifted_tensor_constants": "input_specs", "buffers_to_mutate": "output_specs"}


@contextlib.contextmanager
def signature_tables_once():
    """Within the block, each signature's tables are built once and rebuilt only after a change:
    its spec list replaced or its specs not the ones the table was built from, or a field of a
    spec or argument set anew (which is how torch and ExecuTorch rename or retype a spec in
    place). Each partition ExecuTorch lowers makes new specs for its own signature: the specs
    are compared only then, one by one by identity, not rebuilt. The tables are read-only
    mappings, so handing out the same one is safe."""
    memo: dict[tuple[int, str], list] = {}
    edited, made = [0], [0]  # fields set anew; specs or arguments made

    def once(name: str, specs_attr: str) -> property:
        build = getattr(ExportGraphSignature, name).fget

        def table(self: ExportGraphSignature):
            specs, hit = getattr(self, specs_attr), memo.get((id(self), name))
            # hit: [signature, held so its id is not reused; its spec list; the specs then, held
            # likewise; edits; makes; table]
            if hit is not None and hit[1] is specs and hit[3] == edited[0]:
                if hit[4] == made[0]:
                    return hit[5]
                if len(specs) == len(hit[2]) and all(map(operator.is_, specs, hit[2])):
                    hit[4] = made[0]
                    return hit[5]
            built = build(self)
            memo[(id(self), name)] = [self, specs, tuple(specs), edited[0], made[0], built]
            return built

        return property(table)

    def counted_setattr(cls):
        real = cls.__setattr__

        def setattr_(self, key, value):
            (edited if key in self.__dict__ else made)[0] += 1  # a dataclass's __init__ sets each field once
            real(self, key, value)

        return setattr_

    with contextlib.ExitStack() as patches:
        patches.callback(memo.clear)
        patches.enter_context(mock.patch.multiple(ExportGraphSignature, **{n: once(n, s) for n, s in _TABLES.items()}))
        for cls in (InputSpec, OutputSpec, TensorArgument):
            patches.enter_context(mock.patch.object(cls, "__setattr__", counted_setattr(cls)))
        yield


@contextlib.contextmanager
def oldest_ancestor_only():
    """Within the block, a node made by an fx pass records as its provenance (``from_node``)
    only its oldest ancestor: the one record ExecuTorch reads (`DebugHandleGeneratorPass` gives
    nodes of the same oldest ancestor the same debug handle), shared, not deep-copied. Every
    other metadata field is carried as before."""
    from torch.fx import traceback as fx_traceback

    def oldest(node) -> fx_traceback.NodeSource:
        history = node.meta.get("from_node")
        if not history:  # the node is its own oldest ancestor, as a full record would say
            return fx_traceback.NodeSource(node, "", fx_traceback.NodeSourceAction.CREATE)
        source = history[-1]
        while source.from_node:
            source = source.from_node[-1]
        return source

    @contextlib.contextmanager
    def set_current_meta(node, pass_name: str = ""):
        if not (fx_traceback.should_preserve_node_meta and node.meta):
            yield
            return
        saved = fx_traceback.current_meta
        try:
            fx_traceback.current_meta = {**node.meta, "from_node": [oldest(node)]}
            yield
        finally:
            fx_traceback.current_meta = saved

    with mock.patch.multiple(fx_traceback, set_current_meta=set_current_meta):
        yield


@contextlib.contextmanager
def delegate_outputs_from_metadata():
    """Within the block, a delegate call run on fake tensors returns fresh fake tensors shaped
    as its partition's graph records its outputs, instead of running the partition. A call
    on real tensors, or a partition whose recorded outputs are not all tensors of static
    shape, runs as before."""
    import importlib

    import torch
    from torch._subclasses.fake_tensor import FakeTensor
    from torch.utils import _pytree as pytree

    hop = importlib.import_module("torch._higher_order_ops.executorch_call_delegate")  # the package exports the op by that name
    real = hop.call_delegate_cpu

    def recorded(lowered_module):
        program = lowered_module.original_module
        out = next(n for n in reversed(program.graph.nodes) if n.op == "output")
        vals = [a.meta.get("val") if isinstance(a, torch.fx.Node) else a for a in pytree.tree_leaves(out.args[0])]
        spec = program.call_spec.out_spec  # how running the program returns its outputs
        static = all(isinstance(v, torch.Tensor) and all(isinstance(d, int) for d in v.shape) for v in vals)
        return (vals, spec) if static and spec is not None and spec.num_leaves == len(vals) else None

    def call_delegate(lowered_module, *args):
        found = recorded(lowered_module)
        if found is None or not any(isinstance(a, FakeTensor) for a in pytree.tree_leaves(args)):
            return real(lowered_module, *args)
        vals, spec = found
        fresh = [torch.empty_strided(v.shape, v.stride(), dtype=v.dtype, device=v.device) for v in vals]
        return pytree.tree_unflatten(fresh, spec)

    with mock.patch.multiple(hop, call_delegate_cpu=call_delegate):
        yield
