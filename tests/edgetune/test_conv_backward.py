"""A convolution's backward written as forward convolutions equals autograd's (the reference),
for 1-D and 2-D, strides, padding, dilation, and a grouped layer's input gradient."""
import pytest
import torch
import torch.nn.functional as F

from edgetune.step.conv_backward import convolution_backward


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("stride, padding, dilation", [(1, 0, 1), (2, 1, 1), (1, 2, 2), (2, 1, 2), (3, 0, 1)])
def test_equals_autograd(dim, stride, padding, dilation):
    torch.manual_seed(0)
    conv = F.conv1d if dim == 1 else F.conv2d
    x = torch.randn(3, 4, *([11] * dim), requires_grad=True)
    w = torch.randn(5, 4, *([3] * dim), requires_grad=True)
    b = torch.randn(5, requires_grad=True)
    y = conv(x, w, b, stride=stride, padding=padding, dilation=dilation)
    g = torch.randn_like(y)
    want = torch.autograd.grad(y, (x, w, b), g)
    got = convolution_backward(g, x.detach(), w.detach(), [5], [stride], [padding], [dilation], False, [0], 1,
                               [True, True, True])
    for a, r in zip(got, want):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-4)
    wg = torch.randn(8, 2, *([3] * dim))
    y = conv(x, wg, None, stride=stride, padding=padding, dilation=dilation, groups=2)
    g = torch.randn_like(y)
    (want,) = torch.autograd.grad(y, (x,), g)
    got, none_w, none_b = convolution_backward(g, x.detach(), wg, [0], [stride], [padding], [dilation], False, [0], 2,
                                               [True, False, False])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)
    assert none_w is None and none_b is None


def test_what_it_does_not_build_is_left_to_torch():
    x, w, g = torch.randn(1, 4, 8), torch.randn(4, 2, 3), torch.randn(1, 4, 6)
    assert convolution_backward(g, x, w, [0], [1], [0], [1], True, [0], 1, [True, True, False]) is NotImplemented
    assert convolution_backward(g, x, w, [0], [1], [0], [1], False, [0], 2, [True, True, False]) is NotImplemented
