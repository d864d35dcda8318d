from __future__ import annotations

import math

import torch

from explorer.models.vae import VAE, VAEConfig, discretized_logistic_log_prob, gaussian_kl


def test_closed_form_kl_matches_monte_carlo():
    generator = torch.Generator().manual_seed(0)
    mu = torch.tensor([[0.5, -1.0, 2.0]])
    logvar = torch.tensor([[-1.0, 0.3, 0.8]])
    std = (0.5 * logvar).exp()
    z = mu + std * torch.randn(400_000, 3, generator=generator)
    log_q = (-0.5 * ((z - mu) / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum(1)
    log_p = (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(1)
    monte_carlo = (log_q - log_p).mean()
    standard_error = (log_q - log_p).std() / math.sqrt(len(z))
    assert abs(gaussian_kl(mu, logvar)[0] - monte_carlo) < 4 * standard_error


def test_discretized_logistic_sums_to_one_over_the_256_values():
    values = torch.arange(256, dtype=torch.float64).view(256, 1, 1, 1) / 255
    for mean, log_scale in [(0.0, -3.0), (0.37, -5.0), (1.0, -1.0), (0.5, 0.5)]:
        log_probs = discretized_logistic_log_prob(values, torch.full_like(values, mean), torch.full_like(values, log_scale))
        assert abs(float(log_probs.exp().sum()) - 1.0) < 1e-6


def test_bits_per_dim_is_the_negative_elbo():
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=3, channels=(4, 8), hidden=16, bound_samples=1)).eval()
    x = torch.rand(2, 1, 28, 28).mul(255).round().div(255)
    noise = torch.randn((2, 3), generator=torch.Generator().manual_seed(0))
    elbo, reconstruction, kl = model.elbo(x, noise)
    torch.testing.assert_close(elbo, reconstruction - kl)
    torch.testing.assert_close(model.bits_per_dim(x), -elbo / (784 * math.log(2)))
    assert (kl >= 0).all()


def test_encode_is_the_posterior_mean():
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=3, channels=(4, 8), hidden=16)).eval()
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(model.encode(x), model.posterior(x)[0])
