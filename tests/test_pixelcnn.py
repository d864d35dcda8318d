"""PixelCNN: the masks are causal and blind-spot free, row-wise sampling equals pixel-by-pixel sampling with the
whole network, and the likelihood is the sum of the conditionals."""

from __future__ import annotations

import math

import torch

from explorer.data import load_mnist, to_tensor
from explorer.models.pixelcnn import LEVELS, PixelCNN, PixelCNNConfig

from conftest import shipped


def small_pixelcnn(seed: int = 0, scale: float = 1.0) -> PixelCNN:
    torch.manual_seed(seed)
    model = PixelCNN(PixelCNNConfig(channels=6, layers=3, kernel=3, head_channels=12)).eval()
    with torch.no_grad():  # larger weights than at initialisation: peaked, varied conditionals
        for p in model.parameters():
            p.mul_(scale)
    return model


def test_each_output_depends_on_earlier_pixels_only():
    model = small_pixelcnn().double()
    x = torch.rand(1, 1, 28, 28, dtype=torch.float64)

    def per_pixel_logits(flat):  # 784 pixels -> the summed logits of each pixel's conditional
        return model.logits(flat.view(1, 1, 28, 28)).sum(1).flatten()

    jacobian = torch.autograd.functional.jacobian(per_pixel_logits, x.flatten())  # (784 outputs, 784 inputs)
    depends = jacobian.abs() > 0
    later_or_same = torch.ones(784, 784, dtype=torch.bool).triu()  # input index >= output index
    assert not (depends & later_or_same).any(), "an output sees its own pixel or a later one"
    assert not depends[0].any()  # the first pixel's distribution is unconditional
    # no blind spot (2016b, Sec. 2.2): (i, j) sees the pixel above and to its right, through the vertical stack
    i, j = 10, 10
    assert depends[i * 28 + j, (i - 1) * 28 + j + 1] and depends[i * 28 + j, i * 28 + j - 1]
    assert depends[i * 28 + j, (i - 1) * 28 + j]


def test_row_wise_sampling_equals_sampling_with_the_whole_network():
    model = small_pixelcnn(seed=1, scale=3.0)
    z = model.sample_latent(3, seed=5)
    fast = model.decode(z)
    u = torch.special.ndtr(z.double()).clamp(1e-12, 1 - 1e-12)
    canvas = torch.zeros(3, 1, 28, 28)
    with torch.no_grad():
        for i in range(28):
            for j in range(28):  # the textbook loop: the full network for every pixel
                canvas[:, 0, i, j] = model.inverse_cdf(model.logits(canvas)[:, :, i, j], u[:, 0, i, j])
    assert torch.equal(fast, canvas)
    assert fast.unique().numel() > 10  # a varied image, not a blank one that would match trivially


def test_inverse_cdf_draws_follow_the_softmax():
    logits = torch.randn(1, LEVELS, generator=torch.Generator().manual_seed(0)) * 2
    u = torch.rand(200_000, generator=torch.Generator().manual_seed(1))
    values = PixelCNN.inverse_cdf(logits.expand(len(u), -1), u)
    counts = torch.bincount((values * (LEVELS - 1)).round().long(), minlength=LEVELS).double() / len(u)
    expected = torch.softmax(logits.double(), 1)[0]
    assert (counts - expected).abs().max() < 4 * math.sqrt(expected.max() / len(u))


def test_bits_per_dim_is_the_sum_of_the_conditionals(digits):
    model = small_pixelcnn(seed=2)
    x, _ = digits
    bpd = model.bits_per_dim(x[:2])
    with torch.no_grad():
        log_probs = torch.log_softmax(model.logits(x[:2]), 1)
    levels = (x[:2] * 255).round().long()
    total_nats = -log_probs.gather(1, levels).flatten(1).sum(1)
    torch.testing.assert_close(bpd, (total_nats / (784 * math.log(2))).float(), rtol=1e-5, atol=1e-6)
    assert torch.allclose(model.bits_per_dim(x[:1]), bpd[:1], atol=1e-5)


def test_decode_steps_paint_row_by_row():
    model = small_pixelcnn(seed=3, scale=3.0)
    z = model.sample_latent(2, seed=9)
    steps = list(model.decode_steps(z))
    final = model.decode(z)
    assert len(steps) == 28 and steps[-1].label == "row 28 of 28"
    for step in steps:
        i = step.index
        assert torch.equal(step.image[:, :, : i + 1], final[:, :, : i + 1])  # painted rows are final
        assert not step.image[:, :, i + 1 :].any()  # rows below are still blank


def test_shipped_pixelcnn_gives_digits_an_exact_likelihood_without_overfitting():
    model = shipped("pixelcnn-mnist")
    heldout = to_tensor(load_mnist("heldout").images[:100])
    train = to_tensor(load_mnist("train").images[:100])
    heldout_bpd, train_bpd = model.bits_per_dim(heldout).mean(), model.bits_per_dim(train).mean()
    # the same pixels in another order: a model of digits, not of grey-level counts, finds them far less likely
    order = torch.randperm(784, generator=torch.Generator().manual_seed(1))
    scattered_bpd = model.bits_per_dim(heldout.flatten(1)[:, order].view_as(heldout)).mean()
    assert heldout_bpd < 1.2 and scattered_bpd > 2 * heldout_bpd
    assert abs(heldout_bpd - train_bpd) < 0.1  # no sign of memorising the training digits
    record = model.checkpoint_record["metrics"]
    assert record["min_class_share"] >= 0.04 and record["confidence"] >= 0.85  # its 1,000 samples, as evaluated
