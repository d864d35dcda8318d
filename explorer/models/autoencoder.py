"""Plain and denoising autoencoders: the deterministic ancestors of the VAE, here to show what the VAE's prior
and KL term buy.

A plain autoencoder (Hinton & Salakhutdinov 2006) learns a code z = f(x) and a decoder g with g(f(x)) ~ x,
and nothing asks its codes to fill any particular region: sampling from a Gaussian fitted to the training
codes lands in holes between them, and the samples are poor. A denoising autoencoder (Vincent et al. 2008,
"Extracting and Composing Robust Features with Denoising Autoencoders") is trained to rebuild the clean x
from a corrupted copy, so it also cleans up noisy inputs (the app's "denoise an upload"). With
`latent_dim=2` either one gives a map of the digits to set beside the 2-D VAE's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..base import LatentModel, check_image_shape
from .vae import conv_decoder, conv_encoder


def add_pixel_noise(x: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """x + std * N(0, I), clipped to [0, 1]: the corruption the denoising autoencoder is trained to undo."""
    noise = torch.randn(x.shape, generator=generator).to(x)
    return (x + std * noise).clamp(0, 1)


@dataclass
class AutoencoderConfig:
    variant: str = "ae"
    latent_dim: int = 16
    channels: tuple = (32, 64)  # conv widths at 1/2 and 1/4 of the image's side, as the VAE's
    image_shape: tuple = (1, 28, 28)  # (channels, height, width); height and width divisible by 4
    hidden: int = 256
    noise_std: float = 0.0  # > 0: a denoising autoencoder, trained on x + noise_std * N(0, I), clipped to [0, 1]
    code_momentum: float = 0.01  # running mean and spread of the training codes, as batch norm keeps them
    grad_clip: float = 100.0

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        self.image_shape = check_image_shape(self.image_shape, multiple=4)  # the VAE's two stride-2 stages
        if self.noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}")


class Autoencoder(LatentModel):
    family = "autoencoder"
    config_class = AutoencoderConfig
    train_defaults = {"steps": 4000, "batch_size": 128, "lr": 1e-3, "warmup": 100}
    can_encode = True
    encode_method = "the encoder (deterministic)"
    encode_is_fast = True
    encode_is_exact = False

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__(config)
        self.image_shape = config.image_shape
        self.encoder = conv_encoder(config.channels, config.hidden, config.latent_dim, config.image_shape)
        self.decoder = conv_decoder(config.latent_dim, config.hidden, config.channels, config.image_shape[0],
                                    config.image_shape)
        # No prior is learned; samples come from N(code_mean, diag code_std^2) fitted to the training codes.
        self.register_buffer("code_mean", torch.zeros(config.latent_dim))
        self.register_buffer("code_std", torch.ones(config.latent_dim))

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.config.latent_dim,)

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The denoising autoencoder's input: additive Gaussian noise (Vincent et al. 2010, Sec. 4.1), clipped."""
        return add_pixel_noise(x, self.config.noise_std, generator)

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        source = self.corrupt(x) if self.config.noise_std > 0 else x  # 1. corrupt (denoising only)
        code = self.encoder(source * 2 - 1)  # 2. z = f(x~)
        logits = self.decoder(code)  # 3. g(z), as Bernoulli logits per pixel
        # 4. cross-entropy against the clean image, the usual loss for [0, 1] intensities (no likelihood claimed)
        cross_entropy = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1).mean()
        if self.training:  # 5. track where the codes lie, for sampling
            with torch.no_grad():
                clean = code if self.config.noise_std == 0 else self.encoder(x * 2 - 1)
                momentum = self.config.code_momentum
                self.code_mean.lerp_(clean.mean(0), momentum)
                self.code_std.lerp_(clean.std(0).clamp_min(1e-3), momentum)
        mse = (torch.sigmoid(logits) - x).pow(2).mean()
        return {"loss": cross_entropy / (x[0].numel() * math.log(2)), "mse": mse}

    def sample_latent(self, n: int, seed: int | None = 0, temperature: float = 1.0) -> torch.Tensor:
        """Draws from the Gaussian fitted to the training codes: where the codes are dense this decodes to a
        digit, in the holes between clusters it does not, which is the autoencoder's lesson."""
        eps = super().sample_latent(n, seed, temperature)
        return self.code_mean + self.code_std * eps

    def _encode(self, x: torch.Tensor, progress=None) -> torch.Tensor:  # one pass: nothing to report
        return self.encoder(x * 2 - 1)

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))
