"""Generative adversarial networks in the DCGAN style (Radford et al. 2016), trained with either loss the
field compares:

- "bce": the non-saturating cross-entropy loss of Goodfellow et al. 2014 (Section 3), as DCGAN uses;
- "wgan-gp": the Wasserstein loss with gradient penalty (Gulrajani et al. 2017, Algorithm 1), whose critic
  has no batch normalisation (the penalty is per sample) and takes n_critic steps per generator step.

A GAN has no encoder; `encode` inverts the generator by optimisation (Zhu et al. 2016; Creswell & Bharath
2018): Adam on z to minimise the pixel error of G(z) against the image, from the best of several starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..base import LatentModel, check_image_shape


@dataclass
class GANConfig:
    variant: str = "dcgan"
    loss: str = "bce"  # "bce" (non-saturating cross-entropy) or "wgan-gp"
    latent_dim: int = 64
    g_channels: int = 128  # generator width at 1/4 of the image's side, 7x7 for digits (halved at 1/2)
    d_channels: int = 64  # discriminator width at 1/2 of the side (doubled at 1/4)
    image_shape: tuple = (1, 28, 28)  # (channels, height, width); height and width divisible by 4
    n_critic: int = 1  # discriminator steps per generator step: 1 for DCGAN, 5 in WGAN-GP's Algorithm 1
    spectral_norm: bool = False  # discriminator layers divided by their largest singular value (Miyato et al.
    # 2018) instead of batch norm: it bounds D's Lipschitz constant, so G's gradients stay informative
    g_lr_scale: float = 1.0  # the two time-scale update rule (Heusel et al. 2017): separate rates for G and D,
    d_lr_scale: float = 1.0  # as multiples of --lr
    gp_weight: float = 10.0  # lambda = 10 in Gulrajani et al. 2017
    adam_betas: tuple = (0.5, 0.999)  # DCGAN's; WGAN-GP uses (0.0, 0.9)
    ema_decay: float = 0.999  # sample from an EMA of the generator (Yazici et al. 2019)
    inversion_steps: int = 300
    inversion_starts: int = 4

    def __post_init__(self) -> None:
        self.adam_betas = tuple(self.adam_betas)
        self.image_shape = check_image_shape(self.image_shape, multiple=4)  # two stride-2 stages each way
        if self.loss not in ("bce", "wgan-gp"):
            raise ValueError(f"loss must be 'bce' or 'wgan-gp', not {self.loss!r}")


class Generator(nn.Module):
    def __init__(self, latent_dim: int, width: int, image_shape: tuple = (1, 28, 28)) -> None:
        super().__init__()
        colours, height, side = image_shape[0], image_shape[1] // 4, image_shape[2] // 4
        self.net = nn.Sequential(
            nn.Linear(latent_dim, width * height * side, bias=False), nn.Unflatten(1, (width, height, side)),
            nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2), nn.ReLU(),
            nn.ConvTranspose2d(width // 2, colours, 4, 2, 1), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)  # in [-1, 1]


class Discriminator(nn.Module):
    def __init__(self, width: int, batch_norm: bool, spectral_norm: bool = False,
                 image_shape: tuple = (1, 28, 28)) -> None:
        super().__init__()
        colours, cells = image_shape[0], (image_shape[1] // 4) * (image_shape[2] // 4)
        norm = nn.BatchNorm2d(width * 2) if batch_norm else nn.Identity()
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda layer: layer)
        self.net = nn.Sequential(
            sn(nn.Conv2d(colours, width, 4, 2, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(width, width * 2, 4, 2, 1)), norm, nn.LeakyReLU(0.2),
            nn.Flatten(), sn(nn.Linear(width * 2 * cells, 1)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)  # a logit (bce) or a critic value (wgan-gp)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """(||grad_x D(x_hat)||_2 - 1)^2 at x_hat on random lines between real and fake (Gulrajani et al. Eq. 3)."""
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


class GAN(LatentModel):
    family = "gan"
    config_class = GANConfig
    # one step = one generator update; with n_critic = 5 a batch holds 5 x 64 images, one slice per critic step
    train_defaults = {"steps": 3000, "batch_size": 64, "lr": 2e-4, "warmup": 1}
    can_encode = True
    encode_method = "inversion by optimisation"
    encode_needs_grad = True

    def __init__(self, config: GANConfig) -> None:
        super().__init__(config)
        self.image_shape = config.image_shape
        self.generator = Generator(config.latent_dim, config.g_channels, config.image_shape)
        self.discriminator = Discriminator(config.d_channels, batch_norm=config.loss == "bce" and not config.spectral_norm,
                                           spectral_norm=config.spectral_norm, image_shape=config.image_shape)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.config.latent_dim,)

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return (self.generator(z) + 1) / 2

    def make_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        betas, config = self.config.adam_betas, self.config
        return [torch.optim.Adam(self.generator.parameters(), lr=lr * config.g_lr_scale, betas=betas),
                torch.optim.Adam(self.discriminator.parameters(), lr=lr * config.d_lr_scale, betas=betas)]

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        d_real, d_fake = self.discriminator(real), self.discriminator(fake)
        if self.config.loss == "bce":  # -log D(x) - log(1 - D(G(z)))
            loss = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) + \
                F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
            return {"d_loss": loss}
        wasserstein = d_real.mean() - d_fake.mean()  # the critic's estimate of W(p_data, p_G)
        penalty = gradient_penalty(self.discriminator, real, fake)
        return {"d_loss": -wasserstein + self.config.gp_weight * penalty, "wasserstein": wasserstein, "gp": penalty}

    def generator_loss(self, fake: torch.Tensor) -> torch.Tensor:
        d_fake = self.discriminator(fake)
        if self.config.loss == "bce":  # non-saturating: -log D(G(z)) (Goodfellow et al. 2014, Section 3)
            return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
        return -d_fake.mean()

    def training_step(self, x: torch.Tensor, optimizers: list[torch.optim.Optimizer]) -> dict[str, float]:
        g_opt, d_opt = optimizers
        logs: dict[str, float] = {}
        for real in x.chunk(self.config.n_critic):  # 1. n_critic discriminator steps on fresh real images
            real = real * 2 - 1
            with torch.no_grad():
                fake = self.generator(torch.randn(real.shape[0], self.config.latent_dim, device=x.device))
            terms = self.discriminator_loss(real, fake)
            d_opt.zero_grad(set_to_none=True)
            terms["d_loss"].backward()
            d_opt.step()
        logs.update({k: float(v.detach()) for k, v in terms.items()})
        fake = self.generator(torch.randn(real.shape[0], self.config.latent_dim, device=x.device))
        g_loss = self.generator_loss(fake)  # 2. one generator step
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        return logs | {"g_loss": float(g_loss.detach())}

    def _encode(self, x: torch.Tensor, steps: int | None = None, seed: int = 0,
                progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """Inversion by optimisation: argmin_z ||G(z) - x||^2 + 1e-3 ||z||^2 from several seeded starts."""
        steps = self.config.inversion_steps if steps is None else steps
        starts, n = self.config.inversion_starts, x.shape[0]
        target = x.detach().clone().repeat(starts, 1, 1, 1)
        generator = torch.Generator().manual_seed(seed)
        z = torch.randn((starts * n, self.config.latent_dim), generator=generator).to(x.device).requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=0.05)
        # the gradient with respect to z alone (autograd.grad, not backward): the generator's weights are never
        # written, and their requires_grad is never touched, so a shared model serves inversions side by side
        for i in range(steps):
            error = (self._decode(z) - target).pow(2).flatten(1).mean(1)
            loss = error.sum() + 1e-3 * z.pow(2).sum()  # the small prior term keeps z where G was trained
            (z.grad,) = torch.autograd.grad(loss, [z])
            optimizer.step()
            if progress is not None:
                progress(i + 1, steps)
        with torch.no_grad():
            error = (self._decode(z) - target).pow(2).flatten(1).mean(1).view(starts, n)
            best = error.argmin(0)
            return z.detach().view(starts, n, -1)[best, torch.arange(n)]
