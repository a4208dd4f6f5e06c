"""The runner's own ONNX initializer reader against the onnx package's parser."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from device_harness.onnx_weights import read_initializers


def test_reads_what_onnx_reads(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"w": rng.standard_normal((300, 7)).astype(np.float32), "codes": rng.integers(-128, 128, (5, 4, 3), np.int8),
              "ids": np.arange(6, dtype=np.int64), "scalar": np.array(2.5, np.float64), "half": np.ones((2, 2), np.float16)}
    inits = [numpy_helper.from_array(a, name) for name, a in arrays.items()]
    inits.append(helper.make_tensor("typed", TensorProto.FLOAT, [2], [1.0, 2.0]))  # values in float_data, not raw_data
    graph = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "g", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [300, 7])], inits)
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), path)
    want = {i.name: i for i in onnx.load(path).graph.initializer}
    got = list(read_initializers(path))
    assert [g.name for g in got] == list(want)
    for g in got:
        w = want[g.name]
        assert (g.data_type, g.dims, g.raw) == (w.data_type, tuple(w.dims), w.raw_data)
        if g.raw:
            np.testing.assert_array_equal(g.array(), numpy_helper.to_array(w))


def test_a_cut_file_is_an_error(tmp_path):
    graph = helper.make_graph([], "g", [], [], [numpy_helper.from_array(np.ones(1000, np.float32), "w")])
    data = helper.make_model(graph).SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.onnx|runs past"):
        list(read_initializers(path))


def _external_model(tmp_path):
    arrays = {"w": np.arange(3000, dtype=np.float32).reshape(100, 30), "codes": np.arange(-64, 64, dtype=np.int8)}
    graph = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "g", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [100, 30])],
                              [numpy_helper.from_array(a, name) for name, a in arrays.items()])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), path, save_as_external_data=True, location="m.onnx.data", size_threshold=0)
    return path, arrays


def test_reads_weights_stored_in_an_external_file(tmp_path):
    path, arrays = _external_model(tmp_path)
    assert (tmp_path / "m.onnx.data").stat().st_size >= 3000 * 4 + 128
    got = {g.name: g.array() for g in read_initializers(path)}
    assert got.keys() == arrays.keys()
    for name, a in arrays.items():
        np.testing.assert_array_equal(got[name], a)


@pytest.mark.parametrize("key, value, match", [("location", "../m.onnx.data", "not a file next to the program"),
                                               ("offset", "99999", "lies outside"),
                                               ("length", "x", "no whole offset and length")])
def test_an_external_reference_outside_its_file_is_an_error(tmp_path, key, value, match):
    path, _ = _external_model(tmp_path)
    model = onnx.load(path, load_external_data=False)
    entry = next(e for e in model.graph.initializer[0].external_data if e.key == key)
    entry.value = value
    onnx.save(model, path)
    with pytest.raises(ValueError, match=match):
        list(read_initializers(path))
