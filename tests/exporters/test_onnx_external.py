"""One shared weights file for an artifact's ONNX programs: the programs compute exactly what
their inline twins do, each distinct tensor is stored once at a page-aligned offset, and the
file is hashed and verified like a program. (The Kotlin and TypeScript trainers run the same
artifact through their conformance kits.)"""
import shutil

import numpy as np
import onnx
import pytest

from device_harness.runtimes import open_program
from edgetune.contract import load_manifest
from edgetune.contract.manifest import ONNX_WEIGHTS_KEY, manifest_problems
from edgetune.errors import ArtifactError
from exporters import onnx_external


def test_small_artifacts_keep_their_weights_inline(tiny_artifact):
    art, manifest, _ = tiny_artifact
    assert all(ONNX_WEIGHTS_KEY not in p.lowering.get("onnx", {}) for p in manifest.programs.values())
    assert not list(art.glob("*.onnx.data"))


def test_every_program_reads_one_copy_of_the_weights(shared_weights_artifact, tiny_artifact):
    art, manifest, _ = shared_weights_artifact
    names = {p.lowering["onnx"][ONNX_WEIGHTS_KEY] for p in manifest.programs.values()}
    assert names == {onnx_external.WEIGHTS_FILE} and set(manifest.programs) == {"step", "step_s8", "infer"}
    assert onnx_external.WEIGHTS_FILE in manifest.hashes and not manifest_problems(manifest)
    big = {}  # the inline step's and inference program's distinct large tensors: each is stored once
    for p in tiny_artifact[1].programs.values():
        for t in onnx.load(str(tiny_artifact[0] / p.files["onnx"])).graph.initializer:
            if len(t.raw_data) >= onnx_external.MIN_TENSOR_BYTES:
                big[(t.data_type, t.raw_data)] = len(t.raw_data)
    size = (art / onnx_external.WEIGHTS_FILE).stat().st_size
    assert sum(big.values()) <= size < sum(big.values()) + len(big) * onnx_external.ALIGN
    for p in manifest.programs.values():
        model = onnx.load(str(art / p.files["onnx"]), load_external_data=False)
        offsets = [int({e.key: e.value for e in t.external_data}["offset"]) for t in model.graph.initializer
                   if t.data_location == onnx.TensorProto.EXTERNAL]
        assert offsets and all(o % onnx_external.ALIGN == 0 for o in offsets)
        assert not [t.name for t in model.graph.initializer if len(t.raw_data) >= onnx_external.MIN_TENSOR_BYTES]


@pytest.mark.parametrize("program", ["step", "infer"])
def test_shared_programs_compute_what_the_inline_ones_do(shared_weights_artifact, tiny_artifact, program):
    art, manifest, compiled = shared_weights_artifact
    feeds = {k: v.numpy() for k, v in compiled.example_feeds(lr=1e-3).items()}
    want = open_program(tiny_artifact[0], tiny_artifact[1], program, "onnx")
    got = open_program(art, manifest, program, "onnx")
    fa = {t.name: feeds[t.name] for t in want.spec.inputs}
    a, b = want.run(fa), got.run(fa)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(b[k], a[k], err_msg=k)


def test_a_changed_or_missing_weights_file_is_refused(shared_weights_artifact, tmp_path):
    art = tmp_path / "a"
    shutil.copytree(shared_weights_artifact[0], art)
    with open(art / onnx_external.WEIGHTS_FILE, "r+b") as f:
        first = f.read(1)
        f.seek(0)
        f.write(bytes([first[0] ^ 1]))
    with pytest.raises(ArtifactError, match="weights.onnx.data does not match manifest.json"):
        load_manifest(art, "onnx")
    (art / onnx_external.WEIGHTS_FILE).unlink()
    with pytest.raises(ArtifactError, match="weights.onnx.data is listed in the manifest but missing"):
        load_manifest(art, "onnx")


def test_row_slices_of_a_weight_read_its_bytes_in_place(tmp_path):
    """A head reading a table in blocks of rows while a lookup gathers from all of it: the blocks
    become views into the table's bytes (onnxruntime would fold each Slice into a second copy),
    and the program computes what it did."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    table = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)  # 8 KB
    const = lambda name, v: helper.make_node("Constant", [], [name], value_ints=v)  # noqa: E731 (torch.onnx's bounds)
    nodes = [const("lo", [16]), const("hi", [48]), const("ax", [0]), const("one", [-1]),
             helper.make_node("Reshape", ["lo", "one"], ["lo1"]), helper.make_node("Reshape", ["hi", "one"], ["hi1"]),
             helper.make_node("Slice", ["table", "lo1", "hi1", "ax"], ["block"]),
             helper.make_node("MatMul", ["x", "block"], ["scores"]),
             helper.make_node("Gather", ["table", "ids"], ["rows"], axis=0)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 32]),
                                           helper.make_tensor_value_info("ids", TensorProto.INT64, [3])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("rows", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(table, "table")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    onnx.save(model, tmp_path / "p.onnx")
    feeds = {"x": np.arange(64, dtype=np.float32).reshape(2, 32), "ids": np.array([0, 63, 20])}
    want = ort.InferenceSession(str(tmp_path / "p.onnx")).run(None, feeds)
    assert onnx_external.share_onnx_weights(tmp_path, ["p.onnx"], min_total=0) == onnx_external.WEIGHTS_FILE
    shared = onnx.load(str(tmp_path / "p.onnx"), load_external_data=False)
    assert "Slice" not in {n.op_type for n in shared.graph.node}
    where = {t.name: {e.key: int(e.value) for e in t.external_data if e.key != "location"} for t in shared.graph.initializer}
    assert where["table__rows_16_48"] == {"offset": where["table"]["offset"] + 16 * 32 * 4, "length": 32 * 32 * 4}
    assert (tmp_path / onnx_external.WEIGHTS_FILE).stat().st_size == table.nbytes  # the block is not stored again
    got = ort.InferenceSession(str(tmp_path / "p.onnx")).run(None, feeds)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
