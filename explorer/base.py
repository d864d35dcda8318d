"""The one interface every model family implements, so the app never branches on the model's type.

Words used at every boundary: encode is data -> latent, decode is latent -> data. Images are (N, C, H, W)
floats in [0, 1] outside a model, of the shape its `image_shape` names (the shipped models: 1x28x28 digits);
each model converts to its own range inside. `domain` names the kind of data a model draws ("digits"), or is
None for a model that came from elsewhere: explorer.domains says what each domain offers the views.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import ClassVar, Iterator

import torch
from torch import nn

MAX_SEED = 2**63 - 1
MAX_BATCH = 4096  # decode/encode refuse more images than this in one call: a client cannot exhaust memory


@dataclass
class Step:
    """One frame of a generation process, as decode_steps yields it."""

    index: int  # 0-based position in the process
    total: int  # how many steps the process has
    image: torch.Tensor  # (N, *image_shape) in [0, 1]: what the process holds now (x_t, the canvas, ...)
    label: str  # what this step is, in the family's own terms, e.g. "t=980"
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # e.g. {"predicted x0": ...}
    info: dict[str, float] = field(default_factory=dict)  # scalars shown beside the step (coefficients, ...)


class Trainable(nn.Module):
    """Anything `python -m explorer.train` can fit: a config, a loss, and how one optimisation step goes.
    The default step suits any model with one objective; GANs override it."""

    needs_labels: ClassVar[bool] = False  # training batches are (images, labels) rather than images

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config

    def loss(self, batch) -> dict[str, torch.Tensor]:
        """Training objective on a batch; the "loss" entry is minimised."""
        raise NotImplementedError

    # --- training (the default suits any model with one objective; GANs override) ------------------------
    def make_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.parameters(), lr=lr)]

    def training_step(self, batch, optimizers: list[torch.optim.Optimizer]) -> dict[str, float]:
        (optimizer,) = optimizers
        terms = self.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        grad_norm = nn.utils.clip_grad_norm_(self.parameters(), max_norm=getattr(self.config, "grad_clip", 1e9))
        optimizer.step()
        return {k: float(v.detach()) for k, v in terms.items()} | {"grad_norm": float(grad_norm)}


class LatentModel(Trainable):
    """Base class: a generative model of images with a latent space.

    Capability flags say which views can use a model: `can_encode` (data -> latent exists),
    `has_likelihood` (bits_per_dim exists), `encode_is_exact` (decode(encode(x)) == x up to float error).
    """

    family: ClassVar[str] = ""
    can_encode: ClassVar[bool] = False
    encode_method: ClassVar[str] = ""  # how encode works, in words, for the UI to show
    encode_is_exact: ClassVar[bool] = False
    conditional: ClassVar[bool] = False  # the latent carries a chosen digit: with_digit(z, k) sets it
    encode_is_fast: ClassVar[bool] = False  # one network pass: thousands of images encode in seconds (latent map)
    has_likelihood: ClassVar[bool] = False
    likelihood_kind: ClassVar[str] = ""  # "exact" or "bound (ELBO)" where has_likelihood
    encode_needs_grad: ClassVar[bool] = False  # encoding by optimisation (GAN inversion) needs autograd
    multi_step: ClassVar[bool] = False  # decode_steps shows a process of several steps worth watching
    has_sampler_options: ClassVar[bool] = False  # decode_steps takes sampler=, steps=, eta=, seed=
    has_forward_process: ClassVar[bool] = False  # q_sample(x0, t, noise) and alphas_cumprod exist (diffusion)
    has_free_energy: ClassVar[bool] = False  # image_free_energy(x) exists (RBM): an unnormalised -log p(x)
    smooth_latent: ClassVar[bool] = True  # nearby latents decode to similar images, so editing, interpolating
    # and mapping latents mean something; False where z is sampling noise (PixelCNN, the RBM's Gibbs chain)
    decode_is_slow: ClassVar[bool] = False  # one decode runs the network many times (diffusion's DDIM): the app
    # queues its edits in a lane of their own, so they never hold up the edits of models that decode in one pass
    needs_float64: ClassVar[bool] = False  # computes in float64 somewhere (Apple's MPS has none: it runs on the CPU)
    # the images it makes, (channels, height, width), and the kind of data they are (explorer.domains); every
    # shipped family draws digits, and a model opened from elsewhere says its own (explorer.open)
    image_shape: tuple[int, int, int] = (1, 28, 28)
    domain: str | None = "digits"
    weights_id: str | None = None  # the sha256 of weights opened from elsewhere (explorer.open); ours: see latent.fitted_for

    # --- what subclasses provide ------------------------------------------------------------------------
    @property
    def latent_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        """latent (N, *latent_shape) on the model's device -> images (N, *image_shape) in [0, 1]."""
        raise NotImplementedError

    def _encode(self, x: torch.Tensor, **options) -> torch.Tensor:
        raise NotImplementedError(f"a {self.family} model has no encoder")

    def gradient_decode(self, z: torch.Tensor) -> torch.Tensor:
        """A decode autograd can follow, for gradients in latent space (classifier guidance): _decode itself
        where backpropagating through it costs about one decode, a shorter stand-in where it does not (diffusion)."""
        return self._decode(z)

    def _bits_per_dim(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"a {self.family} model defines no likelihood")

    # --- the public interface ----------------------------------------------------------------------------
    @property
    def default_temperature(self) -> float:
        """The prior scale this model's samples are shown and evaluated at (1 unless its config says)."""
        return float(getattr(self.config, "sample_temperature", 1.0))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def sample_latent(self, n: int, seed: int | None = 0, temperature: float = 1.0) -> torch.Tensor:
        """(n, *latent_shape) draws from the prior, scaled by temperature. Drawn on the CPU from `seed`,
        so the same seed gives the same latents on every device."""
        n = check_count(n)
        if not (isinstance(temperature, (int, float)) and 0 <= temperature <= 10 and math.isfinite(temperature)):
            raise ValueError(f"temperature must be a number in [0, 10], got {temperature!r}")
        generator = torch.Generator().manual_seed(check_seed(seed)) if seed is not None else None
        z = torch.randn((n, *self.latent_shape), generator=generator) * float(temperature)
        return z.to(self.device)

    @torch.inference_mode()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """latent -> images (N, *image_shape) in [0, 1]; deterministic given z."""
        return self._decode(self.check_latent(z)).clamp(0, 1)

    def decode_in_batches(self, z: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
        """decode() for any number of latents, `batch_size` at a time (for evaluation and fitting, which
        decode thousands); the images come back on the CPU."""
        return torch.cat([self.decode(chunk.to(self.device)).cpu() for chunk in z.split(batch_size)])

    def decode_steps(self, z: torch.Tensor, **options) -> Iterator[Step]:
        """The generation process step by step. One step for families that decode in one pass."""
        yield Step(0, 1, self.decode(z), "decoded")

    def encode(self, x: torch.Tensor, progress=None, **options) -> torch.Tensor:
        """images (N, *image_shape) in [0, 1] -> latents (N, *latent_shape). `progress(done, total)` is called as
        iterative encoders (GAN inversion, DDIM inversion) go."""
        if not self.can_encode:
            raise NotImplementedError(f"a {self.family} model has no encoder")
        x = self.check_images(x)
        with torch.inference_mode(not self.encode_needs_grad):
            return self._encode(x, progress=progress, **options).detach()

    @torch.inference_mode()
    def bits_per_dim(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) bits per dimension of 8-bit images given as k/255 floats (exact, or a bound: likelihood_kind)."""
        if not self.has_likelihood:
            raise NotImplementedError(f"a {self.family} model defines no likelihood")
        return self._bits_per_dim(self.check_images(x))

    def describe(self) -> dict:
        """Plain facts about the model, for the UI and the docs."""
        return {
            "family": self.family,
            "variant": getattr(self.config, "variant", self.family),
            "latent_shape": list(self.latent_shape),
            "image_shape": list(self.image_shape),
            "domain": self.domain,
            "parameters": sum(p.numel() for p in self.parameters()),
            "can_encode": self.can_encode,
            "has_likelihood": self.has_likelihood,
            "multi_step": self.multi_step,
            "default_temperature": self.default_temperature,
            "config": asdict(self.config),
        }

    # --- argument checks shared by every entry point -----------------------------------------------------
    def check_latent(self, z) -> torch.Tensor:
        if not isinstance(z, torch.Tensor):
            raise TypeError(f"latent must be a torch.Tensor, got {type(z).__name__}")
        if z.dim() == len(self.latent_shape):
            z = z.unsqueeze(0)
        if tuple(z.shape[1:]) != tuple(self.latent_shape):
            raise ValueError(f"latent must have shape (N, {', '.join(map(str, self.latent_shape))}), got {tuple(z.shape)}")
        check_count(z.shape[0])
        if not z.is_floating_point() or not torch.isfinite(z).all():
            raise ValueError("latent must hold finite floating-point numbers")
        return z.to(self.device, torch.float32)

    def check_images(self, x) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"images must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or tuple(x.shape[1:]) != tuple(self.image_shape):
            raise ValueError(f"images must have shape (N, {', '.join(map(str, self.image_shape))}), got {tuple(x.shape)}")
        check_count(x.shape[0])
        if not x.is_floating_point() or not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise ValueError("images must be finite floats in [0, 1]")
        return x.to(self.device, torch.float32)


def check_image_shape(shape, multiple: int) -> tuple[int, int, int]:
    """A family config's image_shape as (channels, height, width): grey or colour, and sides that a network
    halving them log2(multiple) times can take."""
    try:
        shape = tuple(int(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"image_shape must be three integers (channels, height, width), got {shape!r}") from None
    if len(shape) != 3 or shape[0] not in (1, 3) or min(shape[1:]) < multiple or shape[1] % multiple or shape[2] % multiple:
        raise ValueError(f"image_shape must be (1 or 3, H, W) with H and W multiples of {multiple}, got {shape}")
    return shape


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be an integer in [0, 2**63 - 1], got {seed!r}")
    return seed


def check_count(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_BATCH:
        raise ValueError(f"the number of images must be an integer in [1, {MAX_BATCH}], got {n!r}")
    return n


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """None: cuda if available, else mps, else cpu."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
