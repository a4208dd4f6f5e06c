"""A fixed batch for the adapter tests."""
import pytest
import torch


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 128, (3, 10), generator=g)
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[0, 6:] = 0
    return {"input_ids": ids * mask, "attention_mask": mask, "labels": torch.tensor([0, 2, 1])}
