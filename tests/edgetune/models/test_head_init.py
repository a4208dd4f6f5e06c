import numpy as np
import pytest
import torch

from edgetune.errors import ConfigError
from edgetune.models.head_init import centroid_head
from edgetune.models.tiny import TinyClassifier


def test_centroid_head_points_at_class_means_and_classifies_them():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 128, (12, 10), generator=g)
    arrays = {"input_ids": ids.numpy(), "attention_mask": np.ones((12, 10), np.int64),
              "labels": np.array([0, 1, 2] * 4)}
    m = TinyClassifier()
    feats = []
    m.head.register_forward_hook(lambda mod, inp, out: feats.append(inp[0].detach()))
    centroid_head(m, arrays, scale=10.0, batch_size=5)
    h = torch.cat(feats)[:12]
    means = torch.stack([h[arrays["labels"] == k].mean(0) for k in range(3)])
    torch.testing.assert_close(torch.nn.functional.normalize(m.head.weight, dim=1),
                               torch.nn.functional.normalize(means, dim=1), rtol=1e-5, atol=1e-6)
    assert torch.count_nonzero(m.head.bias) == 0
    torch.testing.assert_close(m.head.weight.norm(dim=1), torch.full((3,), 10.0 / float(h.norm(dim=1).mean())))


def test_a_class_without_examples_is_an_error():
    arrays = {"input_ids": np.ones((2, 4), np.int64), "attention_mask": np.ones((2, 4), np.int64), "labels": np.array([0, 1])}
    with pytest.raises(ConfigError, match=r"classes \[2\] have no example"):
        centroid_head(TinyClassifier(), arrays)
