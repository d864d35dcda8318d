"""A convolutional variational autoencoder (Kingma & Welling 2014, "Auto-Encoding Variational Bayes").

Gaussian encoder q(z|x) = N(mu(x), diag sigma(x)^2), standard normal prior, and a decoder that gives each
pixel a discretised logistic distribution over its 256 values (Salimans et al. 2017, PixelCNN++ Eq. 2), so
the ELBO is a bound on the likelihood of the 8-bit images themselves and bits/dim means what it says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..base import LatentModel, check_image_shape


@dataclass
class VAEConfig:
    variant: str = "vae"
    latent_dim: int = 16  # enough for MNIST's stroke styles; a 2-D version makes a plottable map
    channels: tuple = (32, 64)  # conv widths at 1/2 and 1/4 of the image's side (14x14 and 7x7 for digits)
    image_shape: tuple = (1, 28, 28)  # (channels, height, width); height and width divisible by 4
    # p(x|z) per pixel: "logistic", the discretised logistic over the 256 grey levels (a likelihood of 8-bit
    # images, so bits/dim mean what they say), or "bernoulli", cross-entropy against the pixel's level, as the
    # disentanglement literature trains on known-factor worlds (Higgins et al. 2017; Locatello et al. 2019's
    # disentanglement_lib): its fixed spread makes the code carry colour and position, where a learnt logistic
    # scale lets a 2,000-step model call a small shape's colour noise. Not a likelihood of the images: no bits/dim.
    likelihood: str = "logistic"
    beta: float = 1.0  # the KL's weight in the training loss: > 1 is the beta-VAE (Higgins et al. 2017, Eq. 4)
    hidden: int = 256
    min_log_scale: float = -6.0  # floor on the logistic's log-scale: keeps the likelihood finite early on
    bound_samples: int = 8  # z samples averaged when bits_per_dim estimates the ELBO
    grad_clip: float = 100.0

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        self.image_shape = check_image_shape(self.image_shape, multiple=4)  # two stride-2 stages
        if self.likelihood not in ("logistic", "bernoulli"):
            raise ValueError(f"likelihood must be 'logistic' or 'bernoulli', not {self.likelihood!r}")
        if not self.beta > 0:
            raise ValueError(f"beta must be positive, got {self.beta}")


def conv_encoder(channels: tuple, hidden: int, out: int, image_shape: tuple = (1, 28, 28)) -> nn.Sequential:
    """(C, H, W) image -> `out` numbers: two stride-2 convolutions (to H/2 and H/4), then two linear layers.
    Shared by the autoencoder families so they differ only in what they do with the code."""
    (c1, c2), (colours, height, width) = channels, image_shape
    return nn.Sequential(
        nn.Conv2d(colours, c1, 4, 2, 1), nn.ReLU(), nn.Conv2d(c1, c2, 4, 2, 1), nn.ReLU(), nn.Flatten(),
        nn.Linear(c2 * (height // 4) * (width // 4), hidden), nn.ReLU(), nn.Linear(hidden, out),
    )


def conv_decoder(latent_dim: int, hidden: int, channels: tuple, out_channels: int,
                 image_shape: tuple = (1, 28, 28)) -> nn.Sequential:
    """The mirror image of conv_encoder: a code -> (out_channels, H, W) before any output function."""
    (c1, c2), (_, height, width) = channels, image_shape
    return nn.Sequential(
        nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, c2 * (height // 4) * (width // 4)), nn.ReLU(),
        nn.Unflatten(1, (c2, height // 4, width // 4)), nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(c1, out_channels, 4, 2, 1),
    )


def logistic_params(decoded: torch.Tensor, min_log_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A 2C-channel decoder output -> the discretised logistic's (mean in [0, 1], floored log-scale) for each
    of the C colour channels."""
    mean, log_scale = decoded.chunk(2, dim=1)
    return torch.sigmoid(mean), log_scale.clamp_min(min_log_scale)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per row, in closed form (Kingma & Welling 2014, Appendix B)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(dim=1)


def discretized_logistic_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log P(x) for x = k/255 under a logistic(mean, scale) on [0, 1] discretised into 256 bins, the edge bins
    taking the tails (PixelCNN++ Eq. 2). Summed over pixels: (N,)."""
    half_bin = 0.5 / 255
    inv_scale = torch.exp(-log_scale)
    upper = torch.sigmoid((x + half_bin - mean) * inv_scale)
    lower = torch.sigmoid((x - half_bin - mean) * inv_scale)
    log_cdf_upper = F.logsigmoid((x + half_bin - mean) * inv_scale)  # for k = 0: P(x <= half a bin)
    log_one_minus_lower = F.logsigmoid(-(x - half_bin - mean) * inv_scale)  # for k = 255
    log_mid = torch.log((upper - lower).clamp_min(1e-12))
    log_prob = torch.where(x < half_bin, log_cdf_upper, torch.where(x > 1 - half_bin, log_one_minus_lower, log_mid))
    return log_prob.flatten(1).sum(1)


class VAE(LatentModel):
    family = "vae"
    config_class = VAEConfig
    train_defaults = {"steps": 4000, "batch_size": 128, "lr": 1e-3, "warmup": 100}
    can_encode = True
    encode_method = "posterior mean"
    encode_is_fast = True
    has_likelihood = True
    likelihood_kind = "bound (negative ELBO)"

    def __init__(self, config: VAEConfig) -> None:
        super().__init__(config)
        self.image_shape = config.image_shape
        # mu and log-variance
        self.encoder = conv_encoder(config.channels, config.hidden, 2 * config.latent_dim, config.image_shape)
        # per colour channel and pixel: the logistic's mean and log-scale, or the Bernoulli's logit
        outputs = (2 if config.likelihood == "logistic" else 1) * config.image_shape[0]
        self.decoder = conv_decoder(config.latent_dim, config.hidden, config.channels, outputs, config.image_shape)
        if config.likelihood == "bernoulli":
            self.has_likelihood = False  # its cross-entropy on grey levels is no likelihood of the images
            self.likelihood_kind = ""

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.config.latent_dim,)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x): (mu, logvar), each (N, latent_dim)."""
        mu, logvar = self.encoder(x * 2 - 1).chunk(2, dim=1)
        return mu, logvar.clamp(-12, 8)

    def likelihood_params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """p(x|z): the logistic's (mean in [0, 1], log-scale) per pixel."""
        return logistic_params(self.decoder(z), self.config.min_log_scale)

    def elbo(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ELBO, reconstruction log-likelihood, KL) per image, in nats."""
        mu, logvar = self.posterior(x)  # 1. q(z|x)
        noise = torch.randn_like(mu) if noise is None else noise
        z = mu + (0.5 * logvar).exp() * noise  # 2. reparameterisation trick (Kingma & Welling Sec. 2.4)
        if self.config.likelihood == "bernoulli":  # 3. log p(x|z), one sample
            reconstruction = -F.binary_cross_entropy_with_logits(self.decoder(z), x, reduction="none").flatten(1).sum(1)
        else:
            mean, log_scale = self.likelihood_params(z)
            reconstruction = discretized_logistic_log_prob(x, mean, log_scale)
        kl = gaussian_kl(mu, logvar)  # 4. KL(q(z|x) || p(z)) in closed form
        return reconstruction - kl, reconstruction, kl

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        elbo, reconstruction, kl = self.elbo(x)
        dims = x[0].numel() * math.log(2)
        # the beta-VAE's objective, E[log p(x|z)] - beta KL (Higgins et al. 2017, Eq. 4); beta = 1 is the ELBO.
        # bits_per_dim always reports the ELBO itself, the bound on the likelihood.
        objective = reconstruction - self.config.beta * kl
        return {"loss": -objective.mean() / dims, "recon_bpd": -reconstruction.mean() / dims, "kl_bpd": kl.mean() / dims}

    def _bits_per_dim(self, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        elbos = [self.elbo(x, torch.randn((x.shape[0], self.config.latent_dim), generator=generator).to(x.device))[0]
                 for _ in range(self.config.bound_samples)]
        return -torch.stack(elbos).mean(0) / (x[0].numel() * math.log(2))

    def _encode(self, x: torch.Tensor, progress=None) -> torch.Tensor:  # one pass: nothing to report
        return self.posterior(x)[0]

    def _decode(self, z: torch.Tensor) -> torch.Tensor:  # the mean image: deterministic given z
        if self.config.likelihood == "bernoulli":
            return torch.sigmoid(self.decoder(z))
        return self.likelihood_params(z)[0]
