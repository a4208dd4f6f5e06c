"""Padding-free batches: shorter step programs compute the padded step's numbers, and the
runner picks the shortest one that holds each batch."""
import numpy as np
import pytest
import torch

from device_harness.runner import Trainer
from device_harness.runtimes import SharedWeights, open_program
from edgetune.app.classifier import ClassifierPlan, export_classifier, prepare_classifier
from edgetune.errors import ConfigError
from exporters.artifact import compare_outputs


@pytest.fixture(scope="module")
def bucketed(tmp_path_factory, demo_data):
    out = tmp_path_factory.mktemp("buckets") / "artifact"
    plan = ClassifierPlan(model="tiny", adapter={"method": "lora", "r": 4}, embedding_rows=0, batch_size=4, seq_len=32,
                          optimizer={"name": "adamw", "lr": 1e-3, "weight_decay": 0.0}, seq_buckets=[8, 16])
    manifest, compiled = export_classifier(plan, demo_data[0], out, formats=("onnx",))
    return out, manifest, compiled


def test_manifest_lists_the_bucket_programs(bucketed):
    _, manifest, _ = bucketed
    assert manifest.seq_buckets == [8, 16]
    assert set(manifest.programs) == {"step", "step_s8", "step_s16", "infer"}
    assert {t.name: t.shape for t in manifest.programs["step_s8"].inputs}["input_ids"] == (4, 8)


def test_trimmed_batch_steps_like_the_padded_one(bucketed):
    """Eager step on the batch padded to 32 vs the 8-token program on the same batch trimmed."""
    art, manifest, compiled = bucketed
    feeds = compiled.example_feeds(lr=1e-4)
    short = (np.arange(32)[None] < np.array([[3], [8], [5], [1]])).astype(np.int64)
    feeds["attention_mask"] = feeds["attention_mask"].new_tensor(short)
    feeds["input_ids"] = feeds["input_ids"].clone() * feeds["attention_mask"] + 7 * feeds["attention_mask"]
    want = compiled.eager_step(feeds)
    tr = Trainer(art, "onnx", art / "t.state")
    batch = {k: feeds[k].numpy() for k in ("input_ids", "attention_mask", "labels")}
    program, trimmed = tr.program_for(batch)
    assert program.spec == manifest.programs["step_s8"] and trimmed["input_ids"].shape == (4, 8)
    got = program.run({**tr.state, **trimmed, "lr": np.array(1e-4, np.float32), "step": np.array(1.0, np.float32)})
    assert not compare_outputs(want, got)


def test_bucket_programs_share_one_copy_of_the_weights(bucketed):
    """Every large initializer of the three step programs is one pooled tensor, and a pooled
    program computes what a program with its own weights does."""
    import onnx

    art, manifest, compiled = bucketed
    tr = Trainer(art, "onnx", art / "shared.state")
    batch = {k: v.numpy() for k, v in compiled.example_batch().items()}
    batch["attention_mask"][:, 6:] = 0
    program, trimmed = tr.program_for(batch)
    tr.program_for({"attention_mask": np.ones((4, 16), np.int64)})
    assert set(tr._programs) == {"step", "step_s8", "step_s16"}
    large = {(i.data_type, tuple(i.dims), i.raw_data) for name in ("step", "step_s8", "step_s16")
             for i in onnx.load(art / manifest.programs[name].files["onnx"]).graph.initializer
             if len(i.raw_data) >= SharedWeights.MIN_BYTES}
    assert large and len(tr._shared._pool) == len(large)  # the embedding at least; one copy each
    feeds = {**tr.state, **trimmed, "lr": np.array(1e-4, np.float32), "step": np.array(1.0, np.float32)}
    own = open_program(art, manifest, "step_s8", "onnx").run(feeds)
    assert not compare_outputs({k: torch.from_numpy(v) for k, v in own.items()}, program.run(feeds))


def test_training_uses_short_programs(bucketed, demo_data):
    art, manifest, _ = bucketed
    tr = Trainer(art, "onnx", art / "train.state")
    losses = [r.loss for r in tr.train(demo_data[0], 4)]
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert set(tr._programs) - {"step"}  # the demo texts are short: a bucket program ran


def test_buckets_are_checked(tmp_path, demo_data):
    plan = ClassifierPlan(model="tiny", adapter=None, embedding_rows=0, batch_size=2, seq_len=16, seq_buckets=[16])
    compiled, _, _ = prepare_classifier(plan, demo_data[0])
    from exporters.artifact import export_artifact

    with pytest.raises(ConfigError, match="below seq_len"):
        export_artifact(compiled, tmp_path / "a", ("onnx",), seq_buckets=[16])
