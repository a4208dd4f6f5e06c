"""LoRA-SB against docs/methods.md: orthonormal frozen factors, B R A = trunc_r(-lr sign(sum G)),
and one step on R moves the weight by s^2 B B^T G A^T A (here projected SGD)."""
import pytest
import torch

from edgetune import SGD, prepare
from edgetune.adapters import Calibration, LoRASB
from edgetune.errors import ConfigError
from edgetune.models.tiny import TinyClassifier
from helpers.adapter_steps import base_weight_grad, one_step

R = 4


def _calibration(n=12):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 128, (n, 10), generator=g)
    return Calibration.from_arrays({"input_ids": ids.numpy(), "attention_mask": torch.ones_like(ids).numpy(),
                                    "labels": torch.randint(0, 3, (n,), generator=g).numpy()}, n_samples=n, batch_size=5)


def test_lora_sb_init_is_the_truncated_sign_update():
    calib = _calibration()
    base = TinyClassifier()
    names = [f"encoder.layers.{i}.attention.{n}" for i in range(2) for n in ("query", "value")]
    grads = calib.summed_gradients(base, [base.get_submodule(n) for n in names])
    p = prepare(TinyClassifier(), [LoRASB(r=R, init_lr=1e-3)], calibration=calib)
    assert calib.n_samples == 12 and p.report.trainable_params == len(names) * R * R
    for name, g in zip(names, grads):
        lin = p.model.get_submodule(name)
        eye = torch.eye(R)
        torch.testing.assert_close(lin.core_B.T @ lin.core_B, eye, atol=1e-5, rtol=0)
        torch.testing.assert_close(lin.core_A @ lin.core_A.T, eye, atol=1e-5, rtol=0)
        u, s, vh = torch.linalg.svd(-1e-3 * torch.sign(g).double())
        trunc = (u[:, :R] * s[:R] @ vh[:R]).float()
        torch.testing.assert_close(lin.core_B @ lin.core_R @ lin.core_A, trunc, atol=1e-7, rtol=1e-4)
        assert lin.scale == 1.0 and torch.count_nonzero(lin.core_R - torch.diag(torch.diagonal(lin.core_R))) == 0


def test_lora_sb_is_deliberately_not_a_noop(batch):
    m = TinyClassifier()
    with torch.no_grad():
        ref = m(batch["input_ids"], batch["attention_mask"])
    p = prepare(m, [LoRASB(r=R, init_lr=1e-2)], calibration=_calibration())
    with torch.no_grad():
        assert not torch.allclose(p.model(batch["input_ids"], batch["attention_mask"]), ref, atol=1e-4)


def test_one_step_on_r_is_the_projected_full_gradient(batch):
    p = prepare(TinyClassifier(), [LoRASB(r=R)], calibration=_calibration())
    name = "encoder.layers.1.attention.value"
    lin = p.model.get_submodule(name)
    g = base_weight_grad(p, name, batch)
    lr = 0.1
    new = one_step(p, batch, SGD(lr=lr))
    dw = lin.scale * lin.core_B @ (new[f"{name}.core_R"] - lin.core_R.detach()) @ lin.core_A
    bb, aa = lin.core_B @ lin.core_B.T, lin.core_A.T @ lin.core_A
    torch.testing.assert_close(dw, -lr * lin.scale ** 2 * bb @ g @ aa, atol=1e-7, rtol=1e-4)


def test_lora_sb_without_calibration_says_how_to_get_it():
    with pytest.raises(ConfigError, match="calibration"):
        prepare(TinyClassifier(), [LoRASB(r=R)])
