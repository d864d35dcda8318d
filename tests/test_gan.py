from __future__ import annotations

import math

import torch
from torch import nn

from explorer.models.gan import GAN, GANConfig, gradient_penalty

from conftest import shipped


def test_gradient_penalty_of_a_linear_critic_is_exact():
    """D(x) = w.x has gradient w everywhere, so the penalty is (||w|| - 1)^2 exactly."""
    critic = nn.Sequential(nn.Flatten(), nn.Linear(784, 1, bias=False))
    with torch.no_grad():
        critic[1].weight.copy_(torch.randn(1, 784))
    norm = critic[1].weight.norm()
    penalty = gradient_penalty(critic, torch.rand(8, 1, 28, 28), torch.rand(8, 1, 28, 28))
    torch.testing.assert_close(penalty, (norm - 1) ** 2)


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic_and_differentiable():
    critic = nn.Sequential(nn.Flatten(), nn.Linear(784, 1, bias=False))
    with torch.no_grad():
        critic[1].weight.copy_(torch.ones(1, 784) / 28.0)  # ||w|| = 1
    penalty = gradient_penalty(critic, torch.rand(4, 1, 28, 28), torch.rand(4, 1, 28, 28))
    assert float(penalty.detach()) < 1e-10
    critic[1].weight.data.mul_(2)
    penalty = gradient_penalty(critic, torch.rand(4, 1, 28, 28), torch.rand(4, 1, 28, 28))
    penalty.backward()  # create_graph=True: the penalty trains the critic
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||, which is w itself at ||w|| = 2
    torch.testing.assert_close(critic[1].weight.grad, critic[1].weight.data)


def test_cross_entropy_losses_at_an_undecided_discriminator():
    model = GAN(GANConfig(latent_dim=4, g_channels=8, d_channels=4))
    nn.init.zeros_(model.discriminator.net[-1].weight)
    nn.init.zeros_(model.discriminator.net[-1].bias)
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(model.discriminator_loss(x, x)["d_loss"], torch.tensor(2 * math.log(2)))
    torch.testing.assert_close(model.generator_loss(x), torch.tensor(math.log(2)))


def test_wgan_critic_loss_is_minus_the_wasserstein_estimate_plus_penalty():
    model = GAN(GANConfig(loss="wgan-gp", latent_dim=4, g_channels=8, d_channels=4))
    real, fake = torch.rand(4, 1, 28, 28), torch.rand(4, 1, 28, 28)
    torch.manual_seed(0)
    terms = model.discriminator_loss(real, fake)
    torch.testing.assert_close(terms["wasserstein"], model.discriminator(real).mean() - model.discriminator(fake).mean())
    torch.testing.assert_close(terms["d_loss"], -terms["wasserstein"] + 10.0 * terms["gp"])


def test_inversion_recovers_a_generated_digit():
    model = shipped("dcgan-mnist")
    target = model.decode(model.sample_latent(2, seed=5))
    recovered = model.decode(model.encode(target))
    assert float((recovered - target).pow(2).mean()) < 0.01


def test_spectral_norm_discriminator_has_unit_largest_singular_values_and_no_batch_norm():
    """Miyato et al. 2018: each layer's weight is divided by its largest singular value (estimated by power
    iteration, which converges over training steps; here we run it to convergence by calling D in train mode)."""
    torch.manual_seed(0)
    model = GAN(GANConfig(latent_dim=4, g_channels=8, d_channels=4, spectral_norm=True))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.discriminator.modules())
    x = torch.rand(2, 1, 28, 28)
    model.discriminator.train()
    for _ in range(200):
        model.discriminator(x)
    layers = [m for m in model.discriminator.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 3
    for layer in layers:
        sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2)
        torch.testing.assert_close(sigma, torch.tensor(1.0), atol=1e-3, rtol=0)
        raw = torch.linalg.matrix_norm(layer.parametrizations.weight.original.detach().flatten(1), ord=2)
        assert abs(float(raw) - 1) > 0.05  # the raw weight is not already normalised: the division does it
    plain = GAN(GANConfig(latent_dim=4, g_channels=8, d_channels=4))
    assert any(isinstance(m, nn.BatchNorm2d) for m in plain.discriminator.modules())


def test_two_time_scale_rates():
    """Heusel et al. 2017: separate learning rates for generator and discriminator, as multiples of --lr."""
    model = GAN(GANConfig(latent_dim=4, g_channels=8, d_channels=4, g_lr_scale=0.5, d_lr_scale=2.0))
    g_opt, d_opt = model.make_optimizers(2e-4)
    assert g_opt.param_groups[0]["lr"] == 1e-4 and d_opt.param_groups[0]["lr"] == 4e-4
    assert {id(p) for p in g_opt.param_groups[0]["params"]} == {id(p) for p in model.generator.parameters()}
    assert {id(p) for p in d_opt.param_groups[0]["params"]} == {id(p) for p in model.discriminator.parameters()}
