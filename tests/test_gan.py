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
