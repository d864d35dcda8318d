"""A gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders"): an
autoregressive model p(x) = prod_i p(x_i | x_<i) over the 784 pixels in raster order, each pixel a 256-way
softmax over its 8-bit values (van den Oord et al. 2016, "Pixel Recurrent Neural Networks", Sec. 5.3), so
bits_per_dim is the exact likelihood of the 8-bit digits.

Masking. Two stacks remove the blind spot of a single masked convolution (2016b, Sec. 2.2): the vertical
stack at row i sees only rows above i (every column), the horizontal stack at (i, j) sees the pixels left of
j in row i plus what the vertical stack brings from above. Layer 0 sees strictly earlier pixels ("mask A");
later layers also see their own position in the stack below ("mask B"), which by then only carries
earlier pixels. Masks are made by padding and cropping rather than by zeroing weights.

Sampling. The latent z is a standard normal per pixel; pixel i takes the value whose cumulative probability
first exceeds Phi(z_i) (inverse-CDF sampling), so decode(z) is deterministic. Because of the two stacks the
distribution of row i needs the vertical stack once per row and the horizontal stack on row i only, once
per pixel and only up to that pixel: about 15 network passes per image instead of 784, exactly the same
probabilities (tests compare the two).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..base import LatentModel, Step

LEVELS = 256  # 8-bit pixel values


@dataclass
class PixelCNNConfig:
    variant: str = "gated-pixelcnn"
    channels: int = 48  # width of both stacks
    layers: int = 10  # gated layers; the receptive field grows by one row and column per layer
    kernel: int = 5  # odd: layer 0 sees kernel // 2 rows above and kernel // 2 columns left
    head_channels: int = 128  # hidden width of the 1x1 output network
    sample_temperature: float = 1.0  # scales z: below 1, Phi(z) nears 1/2 and each pixel nears its median value
    grad_clip: float = 10.0

    def __post_init__(self) -> None:
        if self.kernel < 3 or self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd and at least 3, got {self.kernel}")
        if self.layers < 1 or self.channels < 1:
            raise ValueError("layers and channels must be positive")


def gate(x: torch.Tensor) -> torch.Tensor:
    """tanh(a) * sigmoid(b) on the two halves of the channels (2016b, Eq. 2)."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    """One layer of both stacks. `first` is mask A: nothing at the pixel's own position."""

    def __init__(self, channels_in: int, channels: int, kernel: int, first: bool) -> None:
        super().__init__()
        self.first, self.half = first, kernel // 2
        rows = self.half if first else self.half + 1  # rows above (and, after layer 0, this row of the stack)
        cols = self.half if first else self.half + 1  # columns to the left (and, after layer 0, this column)
        self.vertical = nn.Conv2d(channels_in, 2 * channels, (rows, kernel))
        self.horizontal = nn.Conv2d(channels_in, 2 * channels, (1, cols))
        self.link = nn.Conv2d(2 * channels, 2 * channels, 1)  # vertical -> horizontal, at the same position
        self.out = nn.Conv2d(channels, channels, 1)

    def vertical_pre(self, v: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> the vertical stack's pre-gate (N, 2C, H, W); row i sees input rows < i only."""
        h = self.half
        if self.first:  # rows i-h .. i-1: pad h on top, convolve, drop the last row (which saw row H-1 .. )
            return self.vertical(F.pad(v, (h, h, h, 0)))[:, :, :-1]
        return self.vertical(F.pad(v, (h, h, h, 0)))  # rows i-h .. i of a stack that already lags a row

    def horizontal_pre(self, x: torch.Tensor) -> torch.Tensor:
        """Columns j-h .. j-1 (mask A) or j-h .. j (mask B) of the same row."""
        h = self.half
        if self.first:
            return self.horizontal(F.pad(x, (h, 0, 0, 0)))[:, :, :, :-1]
        return self.horizontal(F.pad(x, (h, 0, 0, 0)))

    def horizontal_step(self, h_in: torch.Tensor, link: torch.Tensor) -> torch.Tensor:
        """The horizontal stack's output, given its input and the vertical stack's linked pre-gate."""
        update = self.out(gate(self.horizontal_pre(h_in) + link))
        return update if self.first else h_in + update  # residual after layer 0 (2016b, Fig. 2)


class PixelCNN(LatentModel):
    family = "pixelcnn"
    needs_float64 = True  # the per-pixel CDFs are cumulated and searched in float64
    config_class = PixelCNNConfig
    train_defaults = {"steps": 6000, "batch_size": 32, "lr": 1e-3, "warmup": 200}
    has_likelihood = True
    likelihood_kind = "exact"
    multi_step = True
    smooth_latent = False  # z is per-pixel sampling noise: a change early on changes every later pixel

    def __init__(self, config: PixelCNNConfig) -> None:
        super().__init__(config)
        c = config.channels
        self.layers = nn.ModuleList(
            GatedLayer(1 if i == 0 else c, c, config.kernel, first=(i == 0)) for i in range(config.layers))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(c, config.head_channels, 1), nn.ReLU(),
                                  nn.Conv2d(config.head_channels, LEVELS, 1))

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (1, 28, 28)

    # --- the network ---------------------------------------------------------------------------------------
    def vertical_links(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's vertical-stack contribution to the horizontal stack, at every position."""
        links, v = [], x * 2 - 1
        for layer in self.layers:
            pre = layer.vertical_pre(v)
            links.append(layer.link(pre))
            v = gate(pre)
        return links

    def horizontal_logits(self, x: torch.Tensor, links: list[torch.Tensor]) -> torch.Tensor:
        h = x * 2 - 1
        for layer, link in zip(self.layers, links):
            h = layer.horizontal_step(h, link)
        return self.head(h)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) in [0, 1] -> (N, 256, 28, 28): the logits of p(x_i | x_<i) at every pixel at once."""
        return self.horizontal_logits(x, self.vertical_links(x))

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # 1. teacher forcing: every conditional at once, from the true earlier pixels (2016a, Sec. 3.4)
        target = (x * (LEVELS - 1)).round().long().squeeze(1)
        # 2. negative log-likelihood of the 8-bit values, in bits per pixel
        nats = F.cross_entropy(self.logits(x), target)
        return {"loss": nats / math.log(2), "bits_per_dim": nats.detach() / math.log(2)}

    def _bits_per_dim(self, x: torch.Tensor) -> torch.Tensor:
        target = (x * (LEVELS - 1)).round().long().squeeze(1)
        nats = F.cross_entropy(self.logits(x), target, reduction="none").flatten(1).mean(1)
        return nats / math.log(2)

    # --- sampling ------------------------------------------------------------------------------------------
    @staticmethod
    def inverse_cdf(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """(N, 256) logits and (N,) uniforms -> (N,) values in [0, 1]: the first level whose cumulative
        probability exceeds u."""
        cdf = torch.softmax(logits.double(), dim=1).cumsum(1)
        level = torch.searchsorted(cdf, u.double().unsqueeze(1).contiguous()).clamp_max(LEVELS - 1).squeeze(1)
        return level.float() / (LEVELS - 1)

    def paint_rows(self, z: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield (row, canvas) after each row is drawn. Row i needs the vertical stack on rows <= i (run once
        per row) and the horizontal stack on row i up to column j (once per pixel): both stacks only look up
        and left, so cropping below and to the right changes nothing."""
        u = torch.special.ndtr(z.double()).clamp(1e-12, 1 - 1e-12)  # 1. uniforms from the Gaussian latent
        n = z.shape[0]
        canvas = torch.zeros(n, 1, 28, 28, device=z.device)
        for i in range(28):
            links = [link[:, :, i : i + 1] for link in self.vertical_links(canvas[:, :, : i + 1])]  # 2. rows above
            for j in range(28):
                row = canvas[:, :, i : i + 1, : j + 1]  # 3. this row, up to the pixel being drawn
                logits = self.horizontal_logits(row, [link[..., : j + 1] for link in links])[:, :, 0, j]
                canvas[:, 0, i, j] = self.inverse_cdf(logits, u[:, 0, i, j])  # 4. draw it
            yield i, canvas

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        for _, canvas in self.paint_rows(z):
            pass
        return canvas

    @torch.inference_mode()
    def decode_steps(self, z: torch.Tensor, **options) -> Iterator[Step]:
        """The canvas after each of the 28 rows: PixelCNN paints in raster order, one pixel at a time."""
        z = self.check_latent(z)
        for i, canvas in self.paint_rows(z):
            yield Step(i, 28, canvas.clone(), f"row {i + 1} of 28", info={"pixels drawn": float(28 * (i + 1))})
