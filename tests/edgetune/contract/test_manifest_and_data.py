import numpy as np
import pytest

from edgetune.contract import Manifest, ProgramSpec, TensorSpec
from edgetune.data.records import read_examples
from edgetune.data.text import fixed_batches
from edgetune.errors import ArtifactError, DataError


def test_manifest_round_trip():
    spec = ProgramSpec((TensorSpec("x", (2, 3), "float32", "state"),),
                       (TensorSpec("next.x", (2, 3), "float32", "state", feeds="x"),), {"onnx": "step.onnx"})
    m = Manifest("0123456789abcdef", "sequence_classification", 2, 8, {"step": spec}, {"name": "sgd"},
                 {"step.onnx": "0" * 64}, labels=["a", "b"])
    back = Manifest.from_json(m.to_json())
    assert back == m and back.state_specs()[0].name == "x"
    with pytest.raises(ArtifactError, match="role"):
        TensorSpec("x", (1,), "float32", "weights")


def test_read_examples_csv_jsonl_and_errors(tmp_path):
    (tmp_path / "a.csv").write_text("text,label\nhi there,x\nbye,y\n")
    (tmp_path / "a.jsonl").write_text('{"text": "hi", "label": "x"}\n\n{"text": "yo", "label": 3}\n')
    assert [e.label for e in read_examples(tmp_path / "a.csv")] == ["x", "y"]
    assert [e.label for e in read_examples(tmp_path / "a.jsonl")] == ["x", "3"]
    (tmp_path / "b.csv").write_text("sentence,label\nhi,x\n")
    with pytest.raises(DataError, match="has no 'text' column"):
        read_examples(tmp_path / "b.csv")
    (tmp_path / "c.jsonl").write_text('{"text": "hi"\n')
    with pytest.raises(DataError, match="c.jsonl:1 is not valid JSON"):
        read_examples(tmp_path / "c.jsonl")
    (tmp_path / "a.txt").write_text("hi")
    with pytest.raises(DataError, match="suffix"):
        read_examples(tmp_path / "a.txt")


def test_fixed_batches_wrap_and_resume():
    arrays = {"x": np.arange(5)}
    it = fixed_batches(arrays, 2, seed=3)
    seq = [next(it)["x"] for _ in range(6)]
    assert all(len(b) == 2 for b in seq)
    assert sorted(np.concatenate(seq[:3])[:5].tolist()) == list(range(5))  # an epoch covers every example
    resumed = fixed_batches(arrays, 2, seed=3, start=4)
    np.testing.assert_array_equal(next(resumed)["x"], seq[4])


def test_batches_by_length_cover_the_epoch_and_group_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 40, 400)
    mask = (np.arange(40)[None] < lengths[:, None]).astype(np.int64)
    arrays = {"x": np.arange(400), "attention_mask": mask}
    it = fixed_batches(arrays, 8, seed=1, by_length=True)
    epoch = [next(it) for _ in range(50)]
    assert sorted(np.concatenate([b["x"] for b in epoch]).tolist()) == list(range(400))  # each text once
    longest = np.mean([b["attention_mask"].sum(1).max() for b in epoch])
    plain = fixed_batches(arrays, 8, seed=1)
    longest_random = np.mean([next(plain)["attention_mask"].sum(1).max() for _ in range(50)])
    assert longest < 0.75 * longest_random, (longest, longest_random)  # measured: 21.7 vs 36.0
    resumed = fixed_batches(arrays, 8, seed=1, by_length=True, start=57)
    again = fixed_batches(arrays, 8, seed=1, by_length=True)
    for _ in range(57):
        next(again)
    np.testing.assert_array_equal(next(resumed)["x"], next(again)["x"])
    with pytest.raises(DataError, match="attention_mask"):
        next(fixed_batches({"x": np.arange(4)}, 2, by_length=True))


def test_manifest_keeps_buckets_and_lowering():
    spec = ProgramSpec((TensorSpec("x", (2, 8), "int64", "batch"),), (TensorSpec("loss", (), "float32", "metric"),),
                       {"executorch": "step.pte"}, {"executorch": {"delegated_ops": 3, "total_ops": 4}})
    m = Manifest("0123456789abcdef", "sequence_classification", 2, 32, {"step": spec}, {}, {}, seq_buckets=[8, 16])
    back = Manifest.from_json(m.to_json())
    assert back.seq_buckets == [8, 16] and back.step.lowering == spec.lowering
    assert [back.step_program_for(n) for n in (1, 8, 12, 30)] == [("step_s8", 8), ("step_s8", 8),
                                                                   ("step_s16", 16), ("step", 32)]
