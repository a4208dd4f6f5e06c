import torch

from edgetune import prepare
from edgetune.adapters import Kronecker
from edgetune.adapters.kronecker import near_sqrt_factors
from edgetune.models.tiny import TinyClassifier


def test_near_sqrt_factors():
    assert near_sqrt_factors(384) == (16, 24) and near_sqrt_factors(1536) == (32, 48) and near_sqrt_factors(13) == (1, 13)
    assert near_sqrt_factors(32, factor=8) == (4, 8)


def test_kronecker_applies_torch_kron_without_materialising(batch):
    m = TinyClassifier()
    with torch.no_grad():
        ref = m(batch["input_ids"], batch["attention_mask"])
    for rank in (0, 2):
        p = prepare(TinyClassifier(), [Kronecker(rank=rank, scale=0.5, targets=("up", "down"))])
        with torch.no_grad():  # no-op at init (A = 0)
            torch.testing.assert_close(p.model(batch["input_ids"], batch["attention_mask"]), ref, atol=0, rtol=0)
        for name in ("up", "down"):  # 32 -> 128 and 128 -> 32: rectangular factors
            lin = getattr(p.model.encoder.layers[0], name)
            with torch.no_grad():
                lin.kron_A.normal_()
            b = lin.kron_B if rank == 0 else lin.kron_B1 @ lin.kron_B2
            x = torch.randn(2, 3, lin.base.in_features)
            want = lin.base(x) + 0.5 * x @ torch.kron(lin.kron_A, b).T
            torch.testing.assert_close(lin(x), want, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(lin.delta_weight(), 0.5 * torch.kron(lin.kron_A, b))
        # 128 = 8 x 16 and 32 = 4 x 8: A is 8 x 4 (or 4 x 8), B is 16 x 8 or rank (16 + 8)
        per_layer = 2 * (8 * 4 + (rank * (16 + 8) if rank else 16 * 8))
        cfg = Kronecker(rank=rank, targets=("up", "down"))
        assert p.report.trainable_params == 2 * per_layer == cfg.param_count(TinyClassifier())
