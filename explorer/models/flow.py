"""A multi-scale normalizing flow of affine coupling layers: RealNVP (Dinh et al. 2017, "Density estimation
using Real NVP") with Glow's steps (Kingma & Dhariwal 2018: ActNorm, invertible 1x1 convolution, affine
coupling) and its learned prior for the factored-out half.

Every layer has encode(x) -> (y, log|det dy/dx|) and decode(y) -> (x, log|det dx/dy|); the two
log-determinants of a layer sum to zero. The latent is laid out as a 1x28x28 image (the inverse of the
squeezes and splits), so the state after any block of decoding can be shown as a picture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..base import LatentModel, Step

STATE_LIMIT = 1e4  # bound on the states a coupling's inverse returns, see AffineCoupling.decode

@dataclass
class FlowConfig:
    variant: str = "realnvp-glow"
    steps_per_scale: tuple = (8, 8)  # flow steps at 14x14 (4 channels) and at 7x7 (8 channels)
    hidden_channels: tuple = (96, 128)  # width of each scale's coupling networks
    logit_alpha: float = 1e-6  # logit(alpha + (1 - 2 alpha) y): alpha as for MNIST in Papamakarios et al. 2017
    sample_temperature: float = 1.0  # Glow shows samples at 0.7; here FID at 0.7 / 0.8 / 1.0 was 25.8x / 25.1x / 24.6x the floor
    grad_clip: float = 50.0  # flows have large early gradients; clip only the outliers
    ema_decay: float = 0.0  # > 0 ships a Polyak average of the weights (train.EMA)

    def __post_init__(self) -> None:
        self.steps_per_scale = tuple(self.steps_per_scale)
        self.hidden_channels = tuple(self.hidden_channels)
        if len(self.steps_per_scale) != 2 or len(self.hidden_channels) != 2:
            raise ValueError("a 28x28 flow has two scales: give two steps_per_scale and two hidden_channels")


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """(C, H, W) -> (4C, H/2, W/2): each 2x2 patch becomes four channels (RealNVP Section 3.6)."""
    n, c, h, w = x.shape
    return x.view(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, c * 4, h // 2, w // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c // 4, h * 2, w * 2)


class ActNorm(nn.Module):
    """Per-channel affine y = (x + b) * exp(log_s), initialised so the first batch has zero mean and unit
    variance per channel (Glow Section 3.1)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(0.0))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.initialized and self.training:
            with torch.no_grad():
                self.bias.copy_(-x.mean(dim=(0, 2, 3), keepdim=True))
                self.log_scale.copy_(-torch.log(x.std(dim=(0, 2, 3), keepdim=True) + 1e-6))
                self.initialized.fill_(1.0)
        logdet = self.log_scale.sum() * x.shape[2] * x.shape[3]
        return (x + self.bias) * self.log_scale.exp(), logdet.expand(x.shape[0])

    def decode(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = -self.log_scale.sum() * y.shape[2] * y.shape[3]
        return y * torch.exp(-self.log_scale) - self.bias, logdet.expand(y.shape[0])


class InvConv1x1(nn.Module):
    """y = W x at every pixel with W invertible, a learned channel permutation (Glow Section 3.2);
    log|det| = H * W * log|det W|."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.linalg.qr(torch.randn(channels, channels))[0])

    def _logdet(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.linalg.slogdet(self.weight)[1] * x.shape[2] * x.shape[3]).expand(x.shape[0])

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.conv2d(x, self.weight[:, :, None, None]), self._logdet(x)

    def decode(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inverse = torch.linalg.inv(self.weight.double()).to(self.weight.dtype)  # inverted in float64 for accuracy
        return F.conv2d(y, inverse[:, :, None, None]), -self._logdet(y)


class AffineCoupling(nn.Module):
    """Split the channels into halves (a, b); b' = (b + t(a)) * s(a) with s = sigmoid(h + 2) in (0, 1),
    a passes unchanged (RealNVP Eq. 7; Glow's parameterisation). log|det| = sum log s.
    With `condition_channels` the network sees those extra channels too but they are not transformed:
    that is Glow's learned prior for the half a multi-scale split factors out."""

    def __init__(self, channels: int, hidden: int, transform_first: bool = False) -> None:
        super().__init__()
        self.transform_first = transform_first
        self.split = channels // 2
        given = channels - self.split
        changed = self.split
        self.net = nn.Sequential(
            nn.Conv2d(given, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
            nn.Conv2d(hidden, 2 * changed, 3, padding=1),
        )
        nn.init.zeros_(self.net[-1].weight)  # start as the identity (Glow Section 3.3)
        nn.init.zeros_(self.net[-1].bias)

    def _halves(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first, second = x[:, : self.split], x[:, self.split :]
        return (second, first) if self.transform_first else (first, second)  # (given, changed)

    def _join(self, given: torch.Tensor, changed: torch.Tensor) -> torch.Tensor:
        return torch.cat([changed, given] if self.transform_first else [given, changed], dim=1)

    def _scale_shift(self, given: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net(given)
        shift, raw_scale = h[:, 0::2], h[:, 1::2]
        return torch.sigmoid(raw_scale + 2.0), shift

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        given, changed = self._halves(x)
        scale, shift = self._scale_shift(given)
        return self._join(given, (changed + shift) * scale), scale.log().flatten(1).sum(1)

    def decode(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The inverse, clamped to +-STATE_LIMIT. Data never comes near the bound (its logits lie within
        +-14), so decode(encode(x)) stays exact; but a latent far in the prior's tail can meet a scale that
        underflows to 0 in float32, and without the bounds the division overflows and later layers give NaN."""
        given, changed = self._halves(y)
        scale, shift = self._scale_shift(given)
        scale = scale.clamp_min(1e-30)
        return self._join(given, (changed / scale - shift).clamp(-STATE_LIMIT, STATE_LIMIT)), -scale.log().flatten(1).sum(1)


class FlowStep(nn.Module):
    """One step of Glow: ActNorm, then an invertible 1x1 convolution, then an affine coupling."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([ActNorm(channels), InvConv1x1(channels), AffineCoupling(channels, hidden)])

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        total = torch.zeros(x.shape[0], device=x.device)
        for layer in self.layers:
            x, logdet = layer.encode(x)
            total = total + logdet
        return x, total

    def decode(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        total = torch.zeros(y.shape[0], device=y.device)
        for layer in reversed(self.layers):
            y, logdet = layer.decode(y)
            total = total + logdet
        return y, total


class Flow(LatentModel):
    family = "flow"
    needs_float64 = True  # the 1x1 convolutions are inverted in float64
    config_class = FlowConfig
    train_defaults = {"steps": 6000, "batch_size": 64, "lr": 1e-3, "warmup": 200}  # Glow's lr; sized for a CPU
    can_encode = True
    encode_method = "exact inverse"
    encode_is_exact = True
    encode_is_fast = True
    multi_step = True
    has_likelihood = True
    likelihood_kind = "exact (uniform dequantisation bound on the discrete likelihood)"

    def __init__(self, config: FlowConfig) -> None:
        super().__init__(config)
        (k1, k2), (h1, h2) = config.steps_per_scale, config.hidden_channels
        self.scale1 = nn.ModuleList([FlowStep(4, h1) for _ in range(k1)])  # 4 x 14 x 14
        self.split_prior = AffineCoupling(4, h1, transform_first=True)  # channels 0-1 given 2-3, then factored out
        self.scale2 = nn.ModuleList([FlowStep(8, h2) for _ in range(k2)])  # 8 x 7 x 7

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (1, 28, 28)

    # --- the data <-> logit-space preprocessing (RealNVP Section 4.1) --------------------------------------
    def _to_logit(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """y in (0, 1) -> s = logit(alpha + (1 - 2 alpha) y), with log|ds/dy| per image."""
        a = self.config.logit_alpha
        p = a + (1 - 2 * a) * y
        logdet = (math.log(1 - 2 * a) - p.log() - (1 - p).log()).flatten(1).sum(1)
        return p.log() - (1 - p).log(), logdet

    def _from_logit(self, s: torch.Tensor) -> torch.Tensor:
        a = self.config.logit_alpha
        return (torch.sigmoid(s) - a) / (1 - 2 * a)

    # --- the multi-scale flow, in logit space ---------------------------------------------------------------
    def _blocks(self):
        """(name, block, scale) in encoding order."""
        k1, k2 = self.config.steps_per_scale
        return ([(f"scale 1 step {i + 1}/{k1}", b, 1) for i, b in enumerate(self.scale1)]
                + [("split prior", self.split_prior, 1)]
                + [(f"scale 2 step {i + 1}/{k2}", b, 2) for i, b in enumerate(self.scale2)])

    @staticmethod
    def _to_layout(h: torch.Tensor, scale: int) -> torch.Tensor:
        """The state inside the flow -> a 1x28x28 picture of it (scale 2's state carries the factored half)."""
        if scale == 1:
            return unsqueeze(h)
        factored, h2 = h
        return unsqueeze(torch.cat([factored, unsqueeze(h2)], dim=1))

    def flow_encode(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """logit-space image (N, 1, 28, 28) -> latent (N, 1, 28, 28), log|det|."""
        h, total = squeeze(s), torch.zeros(s.shape[0], device=s.device)
        for _, block, scale in self._blocks():
            if scale == 2 and not isinstance(h, tuple):
                h = (h[:, :2], squeeze(h[:, 2:]))  # factor out channels 0-1, keep squeezing the rest
            if scale == 1:
                h, logdet = block.encode(h)
            else:
                inner, logdet = block.encode(h[1])
                h = (h[0], inner)
            total = total + logdet
        return self._to_layout(h, 2), total

    def flow_decode_steps(self, z: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """latent -> logit-space image, yielding (block name, state as 1x28x28) after each block."""
        state = squeeze(z)
        h = (state[:, :2], squeeze(state[:, 2:]))
        for name, block, scale in reversed(self._blocks()):
            if scale == 1 and isinstance(h, tuple):
                h = torch.cat([h[0], unsqueeze(h[1])], dim=1)
            if scale == 1:
                h, _ = block.decode(h)
            else:
                h = (h[0], block.decode(h[1])[0])
            yield name, self._to_layout(h, scale)

    # --- the interface ---------------------------------------------------------------------------------
    def log_prob_logit(self, s: torch.Tensor) -> torch.Tensor:
        """log density of logit-space images: log N(z; 0, I) + log|det dz/ds| (RealNVP Eq. 3)."""
        z, logdet = self.flow_encode(s)
        log_normal = -0.5 * (z**2 + math.log(2 * math.pi)).flatten(1).sum(1)
        return log_normal + logdet

    def nll_bits_per_dim(self, y: torch.Tensor) -> torch.Tensor:
        """bits/dim of dequantised images y in (0, 1): -log p(y) + D log 256 in bits over D (Theis et al. 2016)."""
        s, logdet_logit = self._to_logit(y)
        dims = y[0].numel()
        nll = -(self.log_prob_logit(s) + logdet_logit) + dims * math.log(256)
        return nll / (dims * math.log(2))

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y = (x * 255 + torch.rand_like(x)) / 256  # uniform dequantisation of the 8-bit values
        bpd = self.nll_bits_per_dim(y).mean()
        return {"loss": bpd, "bits_per_dim": bpd}

    def initialise_from_data(self, x: torch.Tensor) -> None:
        self.train()
        self.loss(x)  # ActNorm layers set their scale and bias from this batch

    def _bits_per_dim(self, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
        k = (x * 255).round()
        noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed)).to(x.device)
        return self.nll_bits_per_dim((k + noise) / 256)

    def _encode(self, x: torch.Tensor, progress=None) -> torch.Tensor:  # one pass: nothing to report
        y = (x * 255 + 0.5) / 256  # k/255 -> the centre of its dequantisation bin; invertible for any x
        return self.flow_encode(self._to_logit(y)[0])[0]

    def _y_to_x(self, y: torch.Tensor) -> torch.Tensor:
        return (y * 256 - 0.5) / 255

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        for _, state in self.flow_decode_steps(z):
            pass
        return self._y_to_x(self._from_logit(state))

    @torch.inference_mode()
    def decode_steps(self, z: torch.Tensor, **options) -> Iterator[Step]:
        """The image after each block of decoding: Gaussian noise turned, block by block, into a digit."""
        z = self.check_latent(z)
        blocks = list(self.flow_decode_steps(z))
        for index, (name, state) in enumerate(blocks):
            image = self._y_to_x(self._from_logit(state)).clamp(0, 1)
            yield Step(index, len(blocks), image, f"after {name}")
