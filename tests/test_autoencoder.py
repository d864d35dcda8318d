"""The plain and denoising autoencoders: sampling from the fitted code Gaussian, the running code statistics,
the corruption, that training rebuilds digits, and that the shipped denoising autoencoder removes noise."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_model
from explorer.data import load_mnist, to_tensor


def test_samples_follow_the_fitted_code_gaussian():
    model = tiny_model("autoencoder")
    model.code_mean.copy_(torch.tensor([1.0, -2.0, 0.5]))
    model.code_std.copy_(torch.tensor([0.5, 2.0, 1.0]))
    z = torch.cat([model.sample_latent(4000, seed=s) for s in range(5)])
    assert torch.allclose(z.mean(0), model.code_mean, atol=0.05)
    assert torch.allclose(z.std(0), model.code_std, rtol=0.05)
    assert torch.equal(model.sample_latent(4, seed=7), model.sample_latent(4, seed=7))


def test_training_tracks_the_codes_and_learns_to_rebuild_digits():
    torch.manual_seed(0)
    model = tiny_model("autoencoder").train()
    images = to_tensor(load_mnist("train").images[:256])
    optimizer = model.make_optimizers(3e-3)
    with torch.no_grad():
        first = float(model.loss(images)["mse"])
    for step in range(60):
        model.training_step(images[(step * 32) % 256:][:32], optimizer)
    model.eval()
    with torch.no_grad():
        codes = model.encoder(images * 2 - 1)
        assert float(model.loss(images)["mse"]) < 0.7 * first
    # the running statistics have moved from their (0, 1) start toward the codes' own
    assert (model.code_mean - codes.mean(0)).abs().max() < (codes.mean(0)).abs().max() + 1e-6
    assert not torch.equal(model.code_std, torch.ones(3))


def test_corruption_is_clipped_noise_and_only_for_the_denoising_variant():
    dae = tiny_model("dae")
    x = torch.rand(8, 1, 28, 28)
    noisy = dae.corrupt(x, torch.Generator().manual_seed(0))
    assert noisy.min() >= 0 and noisy.max() <= 1 and (noisy - x).abs().mean() > 0.1
    with pytest.raises(ValueError, match="noise_std"):
        type(dae.config)(noise_std=-0.1)


def test_the_shipped_denoising_autoencoder_removes_noise_the_plain_one_keeps_more_of():
    from conftest import shipped

    clean = to_tensor(load_mnist("heldout").images[:200])
    dae, ae = shipped("dae-mnist"), shipped("ae-mnist")
    noisy = dae.corrupt(clean, torch.Generator().manual_seed(0))  # the noise it was trained on (std 0.5)
    noise_error = float((noisy - clean).pow(2).mean())
    denoised_error = float((dae.decode(dae.encode(noisy)) - clean).pow(2).mean())
    plain_error = float((ae.decode(ae.encode(noisy)) - clean).pow(2).mean())
    assert denoised_error < 0.25 * noise_error
    assert denoised_error < plain_error
