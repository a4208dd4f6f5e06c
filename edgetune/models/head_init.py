"""Data-dependent initialisation of a classifier's linear ``head``: class centroids.

Row k of the head becomes the direction of the mean feature of class k (the features
the head sees, e.g. mean-pooled encoder states), scaled so that logits are cosine-like
similarities times ``scale``; the bias is 0. A nearest-centroid classifier before any
training: useful with few examples per class, and the starting point that makes
forward-only (zeroth-order) training practical, which cannot learn a random 77-way
head in a reasonable number of steps.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from edgetune.errors import ConfigError


@torch.no_grad()
def centroid_head(model: nn.Module, arrays: dict[str, np.ndarray], scale: float = 20.0, batch_size: int = 64) -> None:
    """Set ``model.head`` (nn.Linear [C, D]) from the examples in ``arrays`` (input_ids,
    attention_mask [N, S], labels [N] in 0..C-1); every class needs an example."""
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear):
        raise ConfigError("centroid head initialisation needs a Linear `head` module")
    feats = []
    hook = head.register_forward_hook(lambda mod, inp, out: feats.append(inp[0].detach()))
    try:
        for i in range(0, len(arrays["labels"]), batch_size):
            model(torch.as_tensor(arrays["input_ids"][i:i + batch_size]),
                  torch.as_tensor(arrays["attention_mask"][i:i + batch_size]))
    finally:
        hook.remove()
    h = torch.cat(feats)
    labels = torch.as_tensor(arrays["labels"])
    counts = torch.bincount(labels, minlength=head.out_features)
    if (counts == 0).any():
        raise ConfigError(f"centroid head: classes {torch.nonzero(counts == 0).flatten().tolist()[:5]} have no example")
    sums = torch.zeros(head.out_features, h.shape[1]).index_add_(0, labels, h)
    centroids = sums / counts[:, None]
    head.weight.copy_(scale * nn.functional.normalize(centroids, dim=1) / h.norm(dim=1).mean())
    head.bias.zero_()
