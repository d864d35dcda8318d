"""An adapter example: a hand-written colour "generator" whose factors are known, to try `--model` on and to see
the Edit tab's generic sliders find them.

    python app.py --model examples/coloured_square.py:make

A square on a grey page, 3x32x32: latent coordinate 0 sets its brightness, 1 its position across the page, 2 its
hue (an angle, in radians); the other three change nothing. Fitted to the measures any image has, the Edit tab's
"brightness", "centre x" and "hue" sliders point along those three coordinates (tests/test_attributes.py checks
it), and "centre y" does not vary, so its slider says so. No weights: the decoder is a formula."""

from __future__ import annotations

import torch

from explorer import Adapter

SIZE = 32
_ys, _xs = torch.meshgrid(torch.linspace(0, 1, SIZE), torch.linspace(0, 1, SIZE), indexing="ij")


def decode(z: torch.Tensor) -> torch.Tensor:
    """Latents (N, 6) -> images (N, 3, 32, 32) in [0, 1]: soft-edged squares, so a small move of a factor makes a
    small change of the image."""
    xs, ys = _xs.to(z), _ys.to(z)
    centre = 0.5 + 0.15 * torch.tanh(z[:, 1])[:, None, None]
    square = torch.sigmoid((0.15 - (xs - centre).abs()) * 40) * torch.sigmoid((0.15 - (ys - 0.5).abs()) * 40)
    level, hue = torch.sigmoid(z[:, 0])[:, None, None], z[:, 2][:, None, None]
    rgb = torch.stack([level * (1 + 0.3 * torch.cos(hue + shift)) for shift in (0.0, -2.09, 2.09)], 1) / 1.3
    return 0.2 + (rgb - 0.2) * square[:, None]


def make() -> Adapter:
    return Adapter(decode=decode, latent_shape=(6,), image_shape=(3, SIZE, SIZE), name="coloured-square")
