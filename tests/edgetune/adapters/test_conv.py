"""The low-rank methods on convolutions: each update is the method's matrix dW (PEFT's
factors for LoRA, the SVD for LoRA-XS, the sign update of the calibration gradient for
LoRA-SB, A kron B for Kronecker) applied as a convolution with dW as its kernel."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from edgetune import FullyTrainable, Kronecker, LoRA, LoRASB, LoRAXS, prepare
from edgetune.adapters import Calibration
from edgetune.adapters.merge import merge
from edgetune.errors import ConfigError
from edgetune.step.tensors import batch_loss
from helpers.tensor_models import SensorNet, SmallCNN, image_batch, sensor_batch

MODELS = {"conv2d": (SmallCNN, image_batch, "images"), "conv1d": (SensorNet, sensor_batch, "windows")}


def _calibration(data, name, n=16):
    x, y = data(n, seed=1)
    return Calibration([{**x, **y}], loss_of=lambda m, b: batch_loss(m, (name,), "cross_entropy", b))


def _prepared(kind, cfg):
    model_cls, data, name = MODELS[kind]
    torch.manual_seed(0)
    return prepare(model_cls(), [cfg, FullyTrainable(("fc",))], calibration=_calibration(data, name))


def _randomize(m):
    with torch.no_grad():
        for n, p in m.named_parameters():
            if p.requires_grad and ("lora_B" in n or "kron_A" in n or "core_R" in n):
                p.normal_(0, 0.1)


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("cfg", [LoRA(targets=("conv1", "conv2"), r=3, alpha=6), LoRAXS(targets=("conv2",), r=4),
                                 LoRASB(targets=("conv1", "conv2"), r=2, n_samples=16),
                                 Kronecker(targets=("conv2",))], ids=lambda c: c.method)
def test_update_is_the_methods_matrix_as_a_kernel(kind, cfg):
    p = _prepared(kind, cfg)
    _randomize(p.model)
    conv = F.conv1d if kind == "conv1d" else F.conv2d
    for name in cfg.targets:
        m = p.model.get_submodule(name)
        b = m.base
        x = torch.randn(2, b.in_channels, *((12, 12) if kind == "conv2d" else (40,)))
        with torch.no_grad():
            want = b(x) + conv(x, m.delta_weight().reshape(b.weight.shape), None, b.stride, b.padding, b.dilation)
            torch.testing.assert_close(m(x), want, rtol=1e-5, atol=1e-5)
    # merging folds the same update into the kernels
    _, data, input_name = MODELS[kind]
    x, _ = data(4)
    with torch.no_grad():
        torch.testing.assert_close(merge(p)(x[input_name]), p.model(x[input_name]), rtol=1e-5, atol=1e-5)


def test_lora_conv_matches_peft():
    import peft

    torch.manual_seed(0)
    base = SmallCNN()
    theirs = peft.get_peft_model(SmallCNN(), peft.LoraConfig(r=3, lora_alpha=6, target_modules=["conv2"]))
    theirs.base_model.model.load_state_dict({k: v for k, v in base.state_dict().items()}, strict=False)
    ours = prepare(base, [LoRA(targets=("conv2",), r=3, alpha=6)]).model
    lora = theirs.base_model.model.conv2
    with torch.no_grad():
        nn.init.normal_(lora.lora_B["default"].weight, 0, 0.1)
        ours.conv2.lora_A.copy_(lora.lora_A["default"].weight.reshape(3, -1))  # [r, in, kh, kw] -> [r, in*kh*kw]
        ours.conv2.lora_B.copy_(lora.lora_B["default"].weight.reshape(-1, 3))  # [out, r, 1, 1] -> [out, r]
        for n in ("conv1", "fc"):
            getattr(theirs.base_model.model, n).load_state_dict(getattr(ours, n).state_dict())
        lora.base_layer.load_state_dict(ours.conv2.base.state_dict())
        x = image_batch(4)[0]["images"]
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-6)


def test_lora_xs_conv_factors_are_the_svd_of_the_kernel_matrix():
    p = _prepared("conv2d", LoRAXS(targets=("conv2",), r=4))
    m = p.model.conv2
    u, s, vh = torch.linalg.svd(m.base.weight.reshape(16, -1).double(), full_matrices=False)
    torch.testing.assert_close(m.core_B.abs(), u[:, :4].float().abs(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(m.core_A.abs(), (s[:4, None] * vh[:4]).float().abs(), rtol=1e-4, atol=1e-5)


def test_lora_sb_conv_starts_from_the_sign_update_of_the_kernel_gradient():
    torch.manual_seed(0)
    model = SmallCNN()
    x, y = image_batch(16, seed=1)
    loss = F.cross_entropy(model(x["images"]), y["labels"]) * 16
    (g,) = torch.autograd.grad(loss, model.conv2.weight)  # the summed gradient, by autograd
    cfg = LoRASB(targets=("conv2",), r=2, n_samples=16, init_lr=1e-3)
    p = prepare(model, [cfg], calibration=_calibration(image_batch, "images"))
    u, s, vh = torch.linalg.svd((-1e-3 * torch.sign(g.reshape(16, -1))).double(), full_matrices=False)
    want = (u[:, :2] * s[:2]) @ vh[:2]
    torch.testing.assert_close(p.model.conv2.delta_weight().double(), want, rtol=1e-4, atol=1e-7)


def test_grouped_convolutions_are_refused_by_name():
    model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=4), nn.Conv2d(4, 8, 1))
    with pytest.raises(ConfigError, match="0 is a grouped convolution"):
        prepare(model, [LoRA(targets=("0",), r=2)])
    prepare(model, [LoRA(targets=("1",), r=2)])  # the pointwise one is fine
