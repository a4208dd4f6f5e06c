import torch
import torch.nn.functional as F

from edgetune.step.losses import classification_loss, next_token_loss


def test_classification_loss_equals_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(6, 5, generator=g), torch.randint(0, 5, (6,), generator=g)
    torch.testing.assert_close(classification_loss(logits, labels), F.cross_entropy(logits, labels))


def test_next_token_loss_equals_cross_entropy_over_real_tokens():
    g = torch.Generator().manual_seed(0)
    b, s, v = 3, 7, 11
    logits, ids = torch.randn(b, s, v, generator=g), torch.randint(0, v, (b, s), generator=g)
    mask = torch.ones(b, s, dtype=torch.long)
    mask[1, 4:] = 0
    target = ids[:, 1:].clone()
    target[(mask[:, 1:] * mask[:, :-1]) == 0] = -100
    want = F.cross_entropy(logits[:, :-1].reshape(-1, v), target.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(next_token_loss(logits, ids, mask), want)
