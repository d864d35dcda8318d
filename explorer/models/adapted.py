"""Anyone's PyTorch generator or decoder, wrapped so every view of the explorer can use it, in the spirit of
the model wrappers GANSpace and plat keep for other people's networks.

A Python file names a function that returns an `Adapter` (explorer.open loads `my_model.py:make`):

    # my_model.py
    import torch
    from explorer import Adapter

    def make():
        generator = MyGenerator()
        generator.load_state_dict(torch.load("g.pt", weights_only=True))
        return Adapter(decode=generator, latent_shape=(128,), image_shape=(3, 64, 64), output_range=(-1, 1),
                       encode=None)  # or a function images -> latents, if the model has one

`decode` takes latents (N, *latent_shape) and returns images (N, *image_shape) in `output_range`; `encode`, if
given, takes images in [0, 1] and returns latents. Latents are drawn from N(0, I) like every family here's.
This runs the user's own code, so the explorer only ever takes such a file from its command line or Python,
never from the web page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..base import LatentModel


@dataclass
class Adapter:
    """What a Python adapter file's function returns (see the module's docstring)."""

    decode: Callable[[torch.Tensor], torch.Tensor]
    latent_shape: tuple
    image_shape: tuple  # (channels, height, width)
    output_range: tuple = (0.0, 1.0)  # what decode's images span: (-1, 1) for a tanh generator
    encode: Callable[[torch.Tensor], torch.Tensor] | None = None
    smooth_latent: bool = True  # False where nearby latents do not give similar images (sampling noise)
    name: str = ""

    def __post_init__(self) -> None:
        self.latent_shape = tuple(int(n) for n in self.latent_shape)
        self.image_shape = tuple(int(n) for n in self.image_shape)
        if len(self.image_shape) != 3 or self.image_shape[0] not in (1, 3) or min(self.image_shape) < 1:
            raise ValueError(f"image_shape must be (channels, height, width) with 1 or 3 channels, got {self.image_shape}")
        if not self.latent_shape or min(self.latent_shape) < 1:
            raise ValueError(f"latent_shape must be a tuple of positive sizes, got {self.latent_shape}")
        low, high = (float(v) for v in self.output_range)
        if not low < high:
            raise ValueError(f"output_range must be (low, high) with low < high, got {self.output_range}")
        self.output_range = (low, high)
        if not callable(self.decode) or (self.encode is not None and not callable(self.encode)):
            raise TypeError("decode (and encode, if given) must be callables on torch tensors")


@dataclass
class AdaptedConfig:
    """What describes an adapted model (its weights live in the user's own code)."""

    source: str
    latent_shape: tuple
    image_shape: tuple
    output_range: tuple


class AdaptedModel(LatentModel):
    family = "adapted"
    domain = None
    config_class = AdaptedConfig

    def __init__(self, adapter: Adapter, source: str) -> None:
        super().__init__(AdaptedConfig(source, adapter.latent_shape, adapter.image_shape, adapter.output_range))
        self.adapter = adapter
        self.image_shape = adapter.image_shape
        self.can_encode = adapter.encode is not None  # a flag of this model, not of its class
        self.encode_is_fast = self.can_encode
        self.encode_method = "the adapter's encode" if self.can_encode else ""
        self.smooth_latent = adapter.smooth_latent
        # the user's networks, if they are modules, go where the model goes (.to(device))
        self.networks = nn.ModuleList([f for f in (adapter.decode, adapter.encode) if isinstance(f, nn.Module)])

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return self.adapter.latent_shape

    @property
    def device(self) -> torch.device:
        first = next(self.parameters(), None)
        return first.device if first is not None else torch.device("cpu")

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        images = self.adapter.decode(z)
        if not isinstance(images, torch.Tensor) or tuple(images.shape) != (z.shape[0], *self.image_shape):
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"the adapter's decode must return images of shape (N, {', '.join(map(str, self.image_shape))}), got {got}")
        low, high = self.adapter.output_range
        return ((images.float() - low) / (high - low)).clamp(0, 1)

    def _encode(self, x: torch.Tensor, progress=None) -> torch.Tensor:
        z = self.adapter.encode(x)
        if not isinstance(z, torch.Tensor) or tuple(z.shape) != (x.shape[0], *self.latent_shape):
            raise ValueError(f"the adapter's encode must return latents of shape (N, {', '.join(map(str, self.latent_shape))})")
        return z.float()
