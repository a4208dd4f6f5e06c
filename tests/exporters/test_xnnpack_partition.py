"""XNNPACK's partitions found in linear time against ExecuTorch's own partitioner."""
import warnings

import pytest
import torch
from torch.fx.passes.utils.fuser_utils import validate_partition

from edgetune import AdamW, LoRA, compile_step, prepare
from edgetune.models.tiny import TinyClassifier
from edgetune.quant import config_from, quantize
from exporters.decompositions import skip_noop_decompositions
from exporters.executorch import _decompose
from exporters.xnnpack_partition import LinearTimeXnnpackPartitioner, run_partitions


def _edge_step(quant):
    from executorch.exir import to_edge

    model = TinyClassifier()
    if quant:
        quantize(model, config_from(quant))
    ep = _decompose(compile_step(prepare(model, [LoRA(r=2)]), AdamW(), 2, 8).capture("step"))
    with warnings.catch_warnings(), skip_noop_decompositions(ep):
        warnings.simplefilter("ignore")
        return to_edge(ep).exported_program()


def _partitions(partitioner, ep):
    """The partitioner's tagged node groups, by node name; the tags are cleared again."""
    partitioner.partition(ep)
    groups = {}
    for n in ep.graph.nodes:
        tag = n.meta.pop("delegation_tag", None)
        if tag is not None:
            groups.setdefault(tag, set()).add(n.name)
    return {frozenset(g) for g in groups.values()}


@pytest.mark.parametrize("quant", [None, "w8a8g8"])
def test_same_partitions_as_executorchs_partitioner(quant):
    from executorch.backends.xnnpack.partition.config import ALL_PARTITIONER_CONFIGS, ConvolutionConfig
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    ep = _edge_step(quant)
    configs = [c for c in ALL_PARTITIONER_CONFIGS if c is not ConvolutionConfig]
    ours = _partitions(LinearTimeXnnpackPartitioner(configs, force_non_static_weights_for_f32_linear=True), ep)
    theirs = _partitions(XnnpackPartitioner(configs, force_non_static_weights_for_f32_linear=True), ep)
    print(f"partitions: {len(ours)} here, {len(theirs)} by ExecuTorch's partitioner")
    assert set().union(*ours) == set().union(*theirs)  # the same nodes delegated
    assert 1 < len(ours) <= len(theirs)  # the step's reductions (portable) split it, no more than there
    nodes = {n.name: n for n in ep.graph.nodes}
    assert all(validate_partition([nodes[m] for m in p]) for p in ours)  # no partition forms a cycle


def _graph(fn, *shapes):
    gm = torch.fx.symbolic_trace(fn)
    return gm.graph, {n.name: n for n in gm.graph.nodes}


def test_an_independent_portable_op_does_not_split_a_partition():
    def f(x, y):
        a = torch.relu(x)
        u = torch.sum(y)  # portable, reads only an input
        b = torch.neg(a)
        return b, u

    graph, n = _graph(f)
    order, runs = run_partitions(graph, [[n["relu"]], [n["neg"]]])
    assert [{m.name for m in r} for r in runs] == [{"relu", "neg"}]
    assert [m.name for m in order] == ["x", "y", "sum_1", "relu", "neg", "output"]  # moved out from between


def test_a_portable_op_between_two_delegated_ones_splits_them_and_a_group_around_it_is_refused():
    def f(x):
        a = torch.relu(x)
        u = torch.sum(a, dim=0)  # portable, between two delegated ops
        return torch.neg(u)

    graph, n = _graph(f)
    order, runs = run_partitions(graph, [[n["relu"]], [n["neg"]]])
    assert [{m.name for m in r} for r in runs] == [{"relu"}, {"neg"}]
    assert [m.name for m in order] == ["x", "relu", "sum_1", "neg", "output"]
    assert run_partitions(graph, [[n["relu"], n["neg"]]]) is None  # one group around a portable op: a cycle


def _with_values(graph, shape):
    for m in graph.nodes:
        m.meta["val"] = torch.empty(shape)


def test_a_weight_only_value_is_computed_just_before_its_user_unless_it_is_small():
    def f(x, w):
        wt = torch.neg(w)  # reads the weight alone: could run first
        a = torch.relu(x)
        b = torch.sigmoid(a)
        return torch.mm(b, wt)

    graph, n = _graph(f)
    groups = [[n["neg"]], [n["relu"]], [n["sigmoid"]], [n["mm"]]]
    _with_values(graph, (64, 64))  # 16 KiB: computed late, and recomputed per use (one use here)
    order, runs = run_partitions(graph, groups, inputs={n["x"]})
    assert [m.name for m in order] == ["x", "w", "relu", "sigmoid", "neg", "mm", "output"]
    assert len(runs) == 1
    order, _ = run_partitions(graph, groups)  # every value counted as varying: as soon as it can run
    assert [m.name for m in order].index("neg") < [m.name for m in order].index("sigmoid")
    _with_values(graph, (4,))  # a small one is computed early, as before
    order, _ = run_partitions(graph, groups, inputs={n["x"]})
    assert [m.name for m in order].index("neg") < [m.name for m in order].index("sigmoid")


def test_a_portable_op_on_weights_alone_goes_before_the_run_that_needs_it():
    def f(x, w):
        a = torch.relu(x)
        b = torch.sigmoid(a)
        wt = torch.neg(torch.abs(w))  # abs: portable (a cast of int4 codes), neg: delegated
        return torch.mm(b, wt)

    graph, n = _graph(f)
    _with_values(graph, (64, 64))
    order, runs = run_partitions(graph, [[n["relu"]], [n["sigmoid"]], [n["neg"]], [n["mm"]]], inputs={n["x"]})
    assert [m.name for m in order] == ["x", "w", "abs_1", "relu", "sigmoid", "neg", "mm", "output"]
    assert [{m.name for m in r} for r in runs] == [{"relu", "sigmoid", "neg", "mm"}]  # not split by abs


def test_a_group_around_a_portable_op_on_weights_alone_is_refused():
    def f(x, w):
        a = torch.neg(w)
        s = torch.sum(a, dim=0)  # portable, between two delegated ops of one group
        return x + torch.relu(s)

    graph, n = _graph(f)
    _with_values(graph, (64, 64))
    assert run_partitions(graph, [[n["neg"], n["relu"]], [n["add"]]], inputs={n["x"]}) is None


def _externals(partition):
    """XNNPACK's count for a delegate: the values read from outside and those read outside."""
    inside = set(partition)
    reads = {a for n in partition for a in n.all_input_nodes if a not in inside}
    return len(reads) + sum(1 for n in partition if any(u not in inside for u in n.users))


def test_a_run_is_cut_where_it_would_have_more_external_values_than_the_limit():
    def f(x, w):
        outs = []
        for i in range(12):  # independent chains: each reads x and w, its last value is read outside
            a = torch.relu(x + i)
            outs.append(torch.neg(a * w))
        return tuple(outs)

    graph, n = _graph(f)
    delegated = [[m] for m in graph.nodes if m.op == "call_function"]
    _, whole = run_partitions(graph, delegated)
    assert len(whole) == 1 and _externals(whole[0]) == 14
    _, runs = run_partitions(graph, delegated, max_externals=6)
    assert sorted(m for r in runs for m in r) == sorted(whole[0])  # every delegated node, once
    assert all(_externals(r) <= 6 for r in runs)
    # cut only where needed: the next partition's first node would have taken this one past 6
    assert all(_externals(r + nxt[:1]) > 6 for r, nxt in zip(runs, runs[1:]))
    assert all(validate_partition(r) for r in runs)


@pytest.mark.slow
def test_a_program_past_xnnpacks_external_value_limit_loads_and_runs(tmp_path):
    """One run of 1,400 delegated sums, each of two inputs: 4,200 external values in one
    delegate, which XNNPACK's runtime refuses to load; cut, it loads and computes."""
    from executorch.runtime import Runtime

    from exporters.executorch import export_executorch
    from exporters.xnnpack_partition import MAX_EXTERNALS

    class Sums(torch.nn.Module):
        def forward(self, *xs):
            return tuple(a + b for a, b in zip(xs[::2], xs[1::2]))

    xs = tuple(torch.randn(3) for _ in range(2 * (MAX_EXTERNALS // 3 + 35)))
    coverage = export_executorch(torch.export.export(Sums(), xs), tmp_path / "sums.pte")
    assert coverage["delegate_calls"] == 2 and not coverage["portable_ops"]
    got = Runtime.get().load_program(tmp_path / "sums.pte").load_method("forward").execute(list(xs))
    torch.testing.assert_close(list(got), list(Sums()(*xs)))
