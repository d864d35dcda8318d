"""A conditional VAE (Sohn, Lee & Yan 2015, "Learning Structured Output Representation using Deep Conditional
Generative Models"; Kingma et al. 2014, "Semi-Supervised Learning with Deep Generative Models", M2): the
digit is given, so the latent only has to hold the style.

Encoder q(z | x, y), decoder p(x | z, y), prior p(z) = N(0, I), and the ELBO of log p(x | y). In the shared
interface a latent is the style z followed by ten digit weights (one-hot for a sampled digit): choosing the
digit is setting those weights, and moving between two digits blends them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..base import LatentModel
from .vae import conv_decoder, conv_encoder, discretized_logistic_log_prob, gaussian_kl, logistic_params

DIGITS = 10


@dataclass
class CVAEConfig:
    variant: str = "cvae"
    # The style part (the interface's latent is latent_dim + 10). Kept small on purpose: with 16 dimensions
    # the encoder stored the digit in z as well and the decoder learnt to ignore y (the digit asked for was
    # drawn 50% of the time, against 80% with 4 at the same step count).
    latent_dim: int = 4
    channels: tuple = (32, 64)
    hidden: int = 256
    min_log_scale: float = -6.0
    grad_clip: float = 100.0

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)


class CVAE(LatentModel):
    family = "cvae"
    config_class = CVAEConfig
    train_defaults = {"steps": 4000, "batch_size": 128, "lr": 1e-3, "warmup": 100}
    needs_labels = True
    conditional = True
    can_encode = True
    encode_method = "posterior mean, given the digit the classifier reads"
    encode_is_fast = True

    def __init__(self, config: CVAEConfig) -> None:
        super().__init__(config)
        self.features = conv_encoder(config.channels, config.hidden, config.hidden)
        self.posterior_head = nn.Sequential(nn.ReLU(), nn.Linear(config.hidden + DIGITS, 2 * config.latent_dim))
        self.decoder = conv_decoder(config.latent_dim + DIGITS, config.hidden, config.channels, 2)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.config.latent_dim + DIGITS,)

    def posterior(self, x: torch.Tensor, digit_weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x, y): (mu, logvar), each (N, latent_dim)."""
        mu, logvar = self.posterior_head(torch.cat([self.features(x * 2 - 1), digit_weights], 1)).chunk(2, dim=1)
        return mu, logvar.clamp(-12, 8)

    def likelihood_params(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """p(x | z, y) from the full latent (style, digit weights): the logistic's mean and log-scale."""
        return logistic_params(self.decoder(latent), self.config.min_log_scale)

    def loss(self, batch) -> dict[str, torch.Tensor]:
        x, digits = batch
        y = F.one_hot(digits.long(), DIGITS).to(x)
        mu, logvar = self.posterior(x, y)  # 1. q(z | x, y)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)  # 2. reparameterisation
        mean, log_scale = self.likelihood_params(torch.cat([z, y], 1))
        reconstruction = discretized_logistic_log_prob(x, mean, log_scale)  # 3. log p(x | z, y)
        kl = gaussian_kl(mu, logvar)  # 4. KL(q(z | x, y) || N(0, I)): the prior does not depend on y
        dims = x[0].numel() * math.log(2)
        return {"loss": (kl - reconstruction).mean() / dims, "recon_bpd": -reconstruction.mean() / dims, "kl_bpd": kl.mean() / dims}

    def with_digit(self, latent: torch.Tensor, digit: int) -> torch.Tensor:
        """The same styles with the digit set to `digit` (one-hot)."""
        if not (isinstance(digit, int) and 0 <= digit < DIGITS):
            raise ValueError(f"digit must be an integer from 0 to 9, got {digit!r}")
        out = self.check_latent(latent).clone()
        out[:, self.config.latent_dim:] = F.one_hot(torch.tensor(digit), DIGITS).to(out)
        return out

    def sample_latent(self, n: int, seed: int | None = 0, temperature: float = 1.0) -> torch.Tensor:
        """Style from the prior scaled by temperature; the digit drawn uniformly with the same seed."""
        style = super().sample_latent(n, seed, temperature)[:, : self.config.latent_dim]
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        digits = torch.randint(0, DIGITS, (n,), generator=generator)
        return torch.cat([style, F.one_hot(digits, DIGITS).to(style)], 1)

    def _encode(self, x: torch.Tensor, progress=None) -> torch.Tensor:
        from ..metrics import load_classifier

        classifier = load_classifier(self.device)  # where this model runs, not wherever a GPU happens to be
        digits = classifier(x.to(next(classifier.parameters()).device)).argmax(1).to(x.device)
        y = F.one_hot(digits, DIGITS).to(x)
        return torch.cat([self.posterior(x, y)[0], y], 1)

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.likelihood_params(z)[0]
