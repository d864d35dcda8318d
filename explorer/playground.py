"""The 2-D playground: tiny GAN, flow and diffusion models trained live on toy point sets, in the spirit of
GAN Lab (Kahng et al. 2019), so what the digit models do in 784 dimensions can be watched in two.

A `Playground` is one training run: a toy dataset, one small model, its optimiser and a history of losses.
`train_for(seconds)` runs updates for a time budget (the app calls it between frames) and `frame()` draws the
plane and the loss curves as images. Everything is seeded: the same settings give the same run.
"""

from __future__ import annotations

import atexit
import ctypes
import importlib
import math
import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn

VIEW = 6.0  # the plane shown is [-VIEW, VIEW]^2
DATASETS = ("two separated modes", "ring of eight Gaussians", "two moons", "your drawing")
FAMILIES = ("GAN", "flow", "planar flow", "diffusion")
GAN_LOSSES = ("cross-entropy", "Wasserstein (gradient penalty)", "Wasserstein (weight clipping)")
WEIGHT_CLIP = 0.01  # the clipped critic's weights stay in [-c, c]: Arjovsky et al. 2017's c, which works here too
MODE_RADIUS = 1.0  # a generated point within this distance of a mode's centre counts for that mode
SHOWN_POINTS = 500
LOSS_HISTORY = 4000  # the loss curves show at least this many of the latest updates, and at most twice as many
PLANE_PIXELS = 360
LOSSES_WIDTH = 360  # pixels; the loss curves' image


# --- toy data ------------------------------------------------------------------------------------------------

def mode_centres(dataset: str) -> np.ndarray | None:
    """The centres of a dataset's Gaussian modes, or None where it has none (moons, drawings)."""
    if dataset == "two separated modes":
        return np.array([[-4.0, 0.0], [4.0, 0.0]])
    if dataset == "ring of eight Gaussians":
        angles = np.arange(8) * 2 * np.pi / 8
        return 4.0 * np.stack([np.cos(angles), np.sin(angles)], 1)
    return None


def points_from_drawing(drawing: np.ndarray) -> np.ndarray:
    """A sketch (H, W[, C]) -> the plane coordinates of its inked pixels (dark on light, or any opaque
    stroke on a transparent layer), the image spanning the whole view."""
    array = np.asarray(drawing)
    if array.ndim not in (2, 3) or min(array.shape[:2]) < 2:
        raise ValueError(f"a drawing must be an image, got an array of shape {array.shape}")
    if array.ndim == 3 and array.shape[2] == 4 and (array[..., 3] < 255).any():
        ink = array[..., 3] > 127  # strokes on a transparent layer
    else:
        gray = array if array.ndim == 2 else array[..., :3].mean(2)
        ink = gray < 128  # dark strokes on a light canvas
    rows, cols = np.nonzero(ink)
    if len(rows) == 0:
        raise ValueError("the drawing is empty: draw some strokes where the points should be")
    height, width = ink.shape
    x = ((cols + 0.5) / width * 2 - 1) * VIEW
    y = -((rows + 0.5) / height * 2 - 1) * VIEW
    return np.stack([x, y], 1)


def toy_data(dataset: str, n: int, generator: torch.Generator, drawn: np.ndarray | None = None) -> torch.Tensor:
    """n points of a toy dataset, drawn from `generator`."""
    if dataset in ("two separated modes", "ring of eight Gaussians"):
        centres = torch.as_tensor(mode_centres(dataset), dtype=torch.float32)
        spread = 0.2 if dataset == "two separated modes" else 0.15
        which = torch.randint(len(centres), (n,), generator=generator)
        return centres[which] + spread * torch.randn(n, 2, generator=generator)
    if dataset == "two moons":  # the two interleaved half circles of scikit-learn's make_moons, scaled
        t = torch.rand(n, generator=generator) * math.pi
        upper = torch.rand(n, generator=generator) < 0.5
        x = torch.where(upper, torch.cos(t), 1 - torch.cos(t))
        y = torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))
        points = 2.5 * (torch.stack([x, y], 1) - torch.tensor([0.5, 0.25]))
        return points + 0.1 * torch.randn(n, 2, generator=generator)
    if dataset == "your drawing":
        if drawn is None or len(drawn) == 0:
            raise ValueError("draw the points first")
        pixel = 2 * VIEW / PLANE_PIXELS
        pick = torch.randint(len(drawn), (n,), generator=generator)
        return torch.as_tensor(drawn, dtype=torch.float32)[pick] + pixel * torch.rand(n, 2, generator=generator)
    raise ValueError(f"dataset must be one of {', '.join(DATASETS)}; got {dataset!r}")


def mode_shares(points: torch.Tensor, centres: np.ndarray) -> np.ndarray:
    """The share of points within MODE_RADIUS of each centre."""
    distances = torch.cdist(points.float(), torch.as_tensor(centres, dtype=torch.float32))
    return (distances < MODE_RADIUS).float().mean(0).numpy()


def mlp(inputs: int, outputs: int, hidden: int = 64, layers: int = 2) -> nn.Sequential:
    parts, width = [], inputs
    for _ in range(layers):
        parts += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
        width = hidden
    return nn.Sequential(*parts, nn.Linear(width, outputs))


def seeded_init(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Every linear layer's weights drawn again, from `generator` alone, exactly as nn.Linear.reset_parameters
    draws them from the global RNG (weight: Kaiming-uniform with a = sqrt(5), bias: U(+-1/sqrt(fan_in))), in
    module order: a run's initial weights depend on its seed only, never on what another user's request drew
    from the global RNG meanwhile (and a generator seeded with s gives what torch.manual_seed(s) used to)."""
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
                bound = 1 / math.sqrt(layer.in_features)
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
            elif isinstance(layer, Planar):
                layer.reset_parameters(generator)
    return model


# --- the three families ------------------------------------------------------------------------------------

class ToyGAN(nn.Module):
    """Generator z in R^2 -> R^2 and a discriminator (critic) R^2 -> R. Cross-entropy: the non-saturating loss
    of Goodfellow et al. 2014, Sec. 3. Wasserstein (gradient penalty): WGAN-GP (Gulrajani et al. 2017,
    Algorithm 1) with 5 critic updates per generator update and the penalty weight scaled to the plane (0.1
    rather than the images' 10). Wasserstein (weight clipping): the original WGAN (Arjovsky et al. 2017,
    Algorithm 1): RMSProp, 5 critic updates, and after each every critic weight clipped to [-c, c], the crude
    Lipschitz bound that Gulrajani et al. replaced because it pushes the critic toward the simplest functions."""

    def __init__(self, loss: str) -> None:
        super().__init__()
        if loss not in GAN_LOSSES:
            raise ValueError(f"loss must be one of {', '.join(GAN_LOSSES)}; got {loss!r}")
        self.wasserstein = loss != "cross-entropy"
        self.clipped = loss == "Wasserstein (weight clipping)"
        self.generator, self.critic = mlp(2, 2), mlp(2, 1)
        if self.clipped:  # Algorithm 1 of Arjovsky et al.: RMSProp (momentum made their critic unstable)
            self.g_optimizer = torch.optim.RMSprop(self.generator.parameters(), 5e-4)
            self.d_optimizer = torch.optim.RMSprop(self.critic.parameters(), 5e-4)
        else:
            betas = (0.0, 0.9) if self.wasserstein else (0.5, 0.999)
            self.g_optimizer = torch.optim.Adam(self.generator.parameters(), 2e-3, betas=betas)
            self.d_optimizer = torch.optim.Adam(self.critic.parameters(), 2e-3, betas=betas)

    def update(self, data, generator: torch.Generator) -> dict[str, float]:
        for _ in range(5 if self.wasserstein else 1):
            real = data(128)
            fake = self.generator(torch.randn(128, 2, generator=generator)).detach()
            if self.clipped:  # 1. critic: E[D(fake)] - E[D(real)], its weights then clipped (below)
                d_loss = self.critic(fake).mean() - self.critic(real).mean()
            elif self.wasserstein:  # 1. critic: E[D(fake)] - E[D(real)] + lambda E[(|grad D(x_hat)| - 1)^2]
                mix = torch.rand(128, 1, generator=generator)
                between = (mix * real + (1 - mix) * fake).requires_grad_(True)
                grad, = torch.autograd.grad(self.critic(between).sum(), between, create_graph=True)
                d_loss = self.critic(fake).mean() - self.critic(real).mean() + 0.1 * ((grad.norm(dim=1) - 1) ** 2).mean()
            else:  # 1. discriminator: -log D(real) - log(1 - D(fake))
                d_loss = F.softplus(-self.critic(real)).mean() + F.softplus(self.critic(fake)).mean()
            self.d_optimizer.zero_grad()
            d_loss.backward()
            self.d_optimizer.step()
            if self.clipped:
                with torch.no_grad():
                    for weight in self.critic.parameters():
                        weight.clamp_(-WEIGHT_CLIP, WEIGHT_CLIP)
        score = self.critic(self.generator(torch.randn(128, 2, generator=generator)))
        g_loss = -score.mean() if self.wasserstein else F.softplus(-score).mean()  # 2. generator: -log D(G(z))
        self.g_optimizer.zero_grad()
        g_loss.backward()
        self.g_optimizer.step()
        return {"critic loss" if self.wasserstein else "discriminator loss": float(d_loss.detach()), "generator loss": float(g_loss.detach())}

    @torch.no_grad()
    def sample(self, noise: torch.Tensor) -> torch.Tensor:
        return self.generator(noise)

    @torch.no_grad()
    def background(self, grid: torch.Tensor) -> torch.Tensor:
        """What the discriminator says at each point: D(x) in [0, 1], or the critic's score rescaled."""
        score = self.critic(grid).squeeze(1)
        if not self.wasserstein:
            return torch.sigmoid(score)
        return (score - score.min()) / (score.max() - score.min() + 1e-8)


class Coupling(nn.Module):
    """One affine coupling on the plane (Dinh et al. 2017, Eq. 4-5): keep one coordinate, scale and shift the
    other by functions of it. log|det| is the log-scale."""

    def __init__(self, keep: int) -> None:
        super().__init__()
        self.keep = keep
        self.net = mlp(1, 2, hidden=64)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # data -> base
        kept, moved = x[:, self.keep : self.keep + 1], x[:, 1 - self.keep : 2 - self.keep]
        log_scale, shift = self.net(kept).chunk(2, 1)
        log_scale = torch.tanh(log_scale)  # bounded scales keep early training stable
        moved = moved * log_scale.exp() + shift
        out = torch.cat([kept, moved], 1) if self.keep == 0 else torch.cat([moved, kept], 1)
        return out, log_scale.squeeze(1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        kept, moved = y[:, self.keep : self.keep + 1], y[:, 1 - self.keep : 2 - self.keep]
        log_scale, shift = self.net(kept).chunk(2, 1)
        moved = (moved - shift) * torch.exp(-torch.tanh(log_scale))
        return torch.cat([kept, moved], 1) if self.keep == 0 else torch.cat([moved, kept], 1)


class Planar(nn.Module):
    """One planar map on the plane, y = x + u_hat tanh(w.x + b) (Rezende & Mohamed 2015, Eq. 10), used here in
    the data -> base direction so that the density is one forward pass:

    1. log|det dy/dx| = log|1 + u_hat.psi(x)| with psi(x) = (1 - tanh^2(w.x + b)) w (their Eq. 11-12).
    2. Invertible only if w.u_hat >= -1 (their Appendix A.1): the free parameter u is mapped to
       u_hat = u + (m(w.u) - w.u) w / |w|^2 with m(a) = -1 + softplus(a), so w.u_hat = m(w.u) > -1 always.
    3. The inverse has no closed form but is one monotone equation: along w, alpha = w.x solves
       alpha + (w.u_hat) tanh(alpha + b) = w.y, whose slope 1 + (w.u_hat)(1 - tanh^2) is positive by step 2, so
       bisection finds it; then x = y - u_hat tanh(alpha + b)."""

    def __init__(self) -> None:
        super().__init__()
        self.w, self.u = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
        self.b = nn.Parameter(torch.zeros(()))

    def reset_parameters(self, generator: torch.Generator) -> None:
        with torch.no_grad():
            self.w.copy_(torch.randn(2, generator=generator))
            self.u.copy_(0.5 * torch.randn(2, generator=generator))
            self.b.copy_(0.5 * torch.randn((), generator=generator))

    def u_hat(self) -> torch.Tensor:  # step 2
        wu = self.w @ self.u
        return self.u + (F.softplus(wu) - 1 - wu) * self.w / (self.w @ self.w)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # data -> base
        u_hat = self.u_hat()
        activation = torch.tanh(x @ self.w + self.b)
        psi = (1 - activation**2).unsqueeze(1) * self.w  # step 1
        return x + activation.unsqueeze(1) * u_hat, torch.log((1 + psi @ u_hat).abs())

    def inverse(self, y: torch.Tensor, iterations: int = 60) -> torch.Tensor:  # step 3
        u_hat = self.u_hat()
        wu, target = self.w @ u_hat, y @ self.w
        low, high = target - wu.abs() - 1e-6, target + wu.abs() + 1e-6  # |tanh| <= 1 brackets the root
        for _ in range(iterations):
            middle = (low + high) / 2
            above = middle + wu * torch.tanh(middle + self.b) > target
            low, high = torch.where(above, low, middle), torch.where(above, middle, high)
        return y - torch.tanh((low + high) / 2 + self.b).unsqueeze(1) * u_hat


class ToyFlow(nn.Module):
    """A flow on the plane with a standard normal base, trained by maximum likelihood: log p(x) = log N(f(x)) +
    the sum of the layers' log|det| (change of variables). RealNVP: eight couplings alternating the coordinate
    they move; planar: PLANAR_LAYERS planar maps (Rezende & Mohamed 2015), far less expressive per layer."""

    SCALE = 3.0  # the data are divided by this first, so the base's unit normal has the points' size
    PLANAR_LAYERS = 16

    def __init__(self, kind: str = "RealNVP") -> None:
        super().__init__()
        if kind not in ("RealNVP", "planar"):
            raise ValueError(f"a toy flow is RealNVP or planar, not {kind!r}")
        if kind == "RealNVP":
            layers = [Coupling(i % 2) for i in range(8)]
        else:
            layers = [Planar() for _ in range(self.PLANAR_LAYERS)]
        self.layers = nn.ModuleList(layers)  # each maps data -> base and returns its log|det|
        self.optimizer = torch.optim.Adam(self.parameters(), 2e-3)

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        z, log_det = x / self.SCALE, torch.full((len(x),), -2 * math.log(self.SCALE))
        for layer in self.layers:
            z, step = layer(z)
            log_det = log_det + step
        return -0.5 * (z**2).sum(1) - math.log(2 * math.pi) + log_det

    def update(self, data, generator: torch.Generator) -> dict[str, float]:
        loss = -self.log_density(data(256)).mean()
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.parameters(), 10.0)
        self.optimizer.step()
        return {"negative log-likelihood": float(loss.detach())}

    @torch.no_grad()
    def sample(self, noise: torch.Tensor) -> torch.Tensor:
        x = noise
        for layer in reversed(self.layers):
            x = layer.inverse(x)
        return x * self.SCALE

    @torch.no_grad()
    def background(self, grid: torch.Tensor) -> torch.Tensor:
        """The learned log-density, shown over the 8 nats below its peak on the plane (a linear scale would
        show the peaks only)."""
        log_p = self.log_density(grid)
        return ((log_p - log_p.max() + 8) / 8).clamp(0, 1)


def preload_diffusers() -> None:
    """Import diffusers in the background (it takes seconds), so that a diffusion run asked for later starts
    at once; the app calls this when it builds the playground."""
    threading.Thread(target=importlib.import_module, args=("diffusers",), daemon=True).start()


class ToyDiffusion(nn.Module):
    """DDPM on the plane (Ho et al. 2020): an MLP predicts the noise in x_t given t, trained with Algorithm 1's
    loss over 100 steps of a cosine schedule (Nichol & Dhariwal 2021, so that x_T is pure noise even with few
    steps), and sampled with Algorithm 2 through diffusers' DDPMScheduler on every fourth step (the posterior
    between strided steps, as DDPMScheduler computes it), to draw a frame in a few tens of milliseconds."""

    SCALE = 3.0
    STEPS = 100
    SAMPLE_STEPS = 25
    PATHS = 10  # denoising paths drawn

    def __init__(self) -> None:
        super().__init__()
        from diffusers import DDPMScheduler

        self.scheduler = DDPMScheduler(num_train_timesteps=self.STEPS, beta_schedule="squaredcos_cap_v2", clip_sample=False)
        self.net = mlp(2 + 16, 2, hidden=128, layers=3)
        self.optimizer = torch.optim.Adam(self.parameters(), 2e-3)
        self.paths: torch.Tensor | None = None

    def predict_noise(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        frequencies = torch.exp(-math.log(1000.0) * torch.arange(8) / 8)
        angles = t.float().unsqueeze(1) * frequencies  # the sinusoidal time embedding of Vaswani et al. 2017
        return self.net(torch.cat([x, angles.sin(), angles.cos()], 1))

    def update(self, data, generator: torch.Generator) -> dict[str, float]:
        x0 = data(256) / self.SCALE
        t = torch.randint(self.STEPS, (len(x0),), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        loss = F.mse_loss(self.predict_noise(self.scheduler.add_noise(x0, noise, t), t), noise)  # Algorithm 1
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"noise-prediction MSE": float(loss.detach())}

    @torch.no_grad()
    def sample(self, noise: torch.Tensor) -> torch.Tensor:
        """Algorithm 2 from x_T = noise, with the step noise seeded so frames do not flicker; keeps the first
        PATHS trajectories (x_T ... x_0) for drawing."""
        generator = torch.Generator().manual_seed(0)
        self.scheduler.set_timesteps(self.SAMPLE_STEPS)
        x, trail = noise.clone(), [noise[: self.PATHS].clone()]
        for t in self.scheduler.timesteps:
            predicted = self.predict_noise(x, t.expand(len(x)))
            x = self.scheduler.step(predicted, t, x, generator=generator).prev_sample
            trail.append(x[: self.PATHS].clone())
        self.paths = torch.stack(trail, 1) * self.SCALE  # (PATHS, SAMPLE_STEPS + 1, 2)
        return x * self.SCALE

    def background(self, grid: torch.Tensor) -> None:
        return None


# --- a training run ------------------------------------------------------------------------------------------

ANY_TOKEN = object()  # train_for without a token: Step and tests, which train whatever the run's play token

@dataclass
class Settings:
    family: str = "GAN"
    dataset: str = "two separated modes"
    loss: str = "cross-entropy"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}; got {self.family!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {', '.join(DATASETS)}; got {self.dataset!r}")
        if self.loss not in GAN_LOSSES:
            raise ValueError(f"loss must be one of {', '.join(GAN_LOSSES)}; got {self.loss!r}")


@dataclass
class Playground:
    settings: Settings
    drawn: np.ndarray | None = None  # plane coordinates of a drawing's ink, for "your drawing"
    step: int = 0
    losses: dict[str, list[float]] = field(default_factory=dict)
    updates_per_second: float = 0.0
    play_token: object | None = None  # set by whoever is playing this run; clearing it stops them

    def __post_init__(self) -> None:
        s = self.settings
        if s.dataset == "your drawing" and (self.drawn is None or len(self.drawn) == 0):
            raise ValueError("draw the points first, on the sketchpad below the plane")
        self.lock = threading.Lock()  # one update or frame at a time, whichever event asks
        self.model = {"GAN": lambda: ToyGAN(s.loss), "flow": ToyFlow, "planar flow": lambda: ToyFlow("planar"),
                      "diffusion": ToyDiffusion}[s.family]()
        seeded_init(self.model, torch.Generator().manual_seed(s.seed))  # the networks' initial weights
        self.batches = torch.Generator().manual_seed(s.seed + 1)  # data and noise draws during training
        shown = torch.Generator().manual_seed(s.seed + 2)
        self.shown_data = toy_data(s.dataset, SHOWN_POINTS, shown, self.drawn)
        self.shown_noise = torch.randn(SHOWN_POINTS, 2, generator=shown)  # fixed: the points move smoothly
        self.grid = torch.stack(torch.meshgrid(torch.linspace(VIEW, -VIEW, 48), torch.linspace(-VIEW, VIEW, 48),
                                               indexing="ij")[::-1], -1).reshape(-1, 2)

    def data(self, n: int) -> torch.Tensor:
        return toy_data(self.settings.dataset, n, self.batches, self.drawn)

    def _update(self) -> None:
        for name, value in self.model.update(self.data, self.batches).items():
            history = self.losses.setdefault(name, [])
            history.append(value)
            if len(history) >= 2 * LOSS_HISTORY:  # hours of Play keep a bounded history (trimmed now and then,
                del history[:-LOSS_HISTORY]       # so an update pays for it once in LOSS_HISTORY updates)
        self.step += 1

    def train(self, updates: int) -> None:
        self.train_for(float("inf"), most=updates)

    def train_for(self, seconds: float, most: int = 1000, token: object = ANY_TOKEN) -> int:
        """Updates until `seconds` have passed (at least one, at most `most`); returns how many ran. With a
        `token`, only while it is still the run's play token: checked under the lock before every update, so
        once Pause (or Reset, or the limit) has taken the token and drawn its frame, no update follows it."""
        with self.lock:
            self.model.train()
            began, done = time.perf_counter(), 0
            while (done < most and (token is ANY_TOKEN or self.play_token is token)
                   and (done == 0 or time.perf_counter() - began < seconds)):
                self._update()
                done += 1
            if done:
                self.updates_per_second = done / max(time.perf_counter() - began, 1e-9)
            return done

    def generated(self) -> torch.Tensor:
        self.model.eval()
        return self.model.sample(self.shown_noise)

    def coverage(self, points: torch.Tensor) -> np.ndarray | None:
        centres = mode_centres(self.settings.dataset)
        return None if centres is None else mode_shares(points, centres)

    # --- drawing ---------------------------------------------------------------------------------------------
    def losses_moved_since(self, step: int) -> bool:
        """Whether the updates since `step` fill at least one pixel column of the loss curves (draw_losses puts
        the history, up to 2 * LOSS_HISTORY updates, into LOSSES_WIDTH - 8 columns)."""
        shown = max((len(v) for v in self.losses.values()), default=0)
        return self.step - step >= max(1.0, shown / (LOSSES_WIDTH - 8))

    def frame(self, since: int | None = None) -> tuple[np.ndarray, np.ndarray | None, str]:
        """(the plane: background, real points, generated points; the loss curves; a caption). With `since`, the
        step at which the loss curves were last drawn, they are drawn only if they have moved (else None): with
        many people playing, a run gets a few updates per frame, and its curves were a third of each frame's
        drawing, encoding and decoding in the browser for no visible change."""
        with self.lock:
            points = self.generated()
            plane = draw_plane(self.model.background(self.grid), self.shown_data, points,
                               getattr(self.model, "paths", None))
        shares = self.coverage(points)
        caption = f"step **{self.step}** · {self.updates_per_second:.0f} updates/s"
        for name, values in self.losses.items():
            caption += f" · {name} {np.mean(values[-20:]):.3f}"
        if shares is not None:
            covered = int((shares > 0.5 / len(shares)).sum())
            caption += (f" · modes covered: **{covered} of {len(shares)}** (points within {MODE_RADIUS:g} of each: "
                        + ", ".join(f"{s:.0%}" for s in shares) + ")")
        losses = draw_losses(self.losses) if since is None or self.losses_moved_since(since) else None
        return plane, losses, caption


def to_pixels(points: torch.Tensor) -> np.ndarray:
    return ((points.numpy() / VIEW + 1) / 2 * PLANE_PIXELS) * np.array([1, -1]) + np.array([0, PLANE_PIXELS])


def draw_plane(background: torch.Tensor | None, real: torch.Tensor, fake: torch.Tensor,
               paths: torch.Tensor | None) -> np.ndarray:
    """The plane as an RGB array: the background field in purple-green (as GAN Lab colours its
    discriminator), real points white, generated points orange, denoising paths faint blue."""
    if background is None:
        image = Image.new("RGB", (PLANE_PIXELS, PLANE_PIXELS), (24, 24, 32))
    else:
        side = int(math.isqrt(len(background)))
        value = background.reshape(side, side).clamp(0, 1).numpy()[..., None]
        low, high = np.array([40, 24, 64]), np.array([40, 150, 90])
        field_rgb = (low + value * (high - low)).astype(np.uint8)
        image = Image.fromarray(field_rgb).resize((PLANE_PIXELS, PLANE_PIXELS), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    if paths is not None:
        for path in paths:
            draw.line([tuple(p) for p in to_pixels(path)], fill=(70, 100, 170), width=1)
    pixels = np.array(image)
    for colour, points in (((235, 235, 235), real), ((255, 150, 40), fake)):
        stamp_dots(pixels, to_pixels(points.clamp(-2 * VIEW, 2 * VIEW)), colour)
    return pixels


# The dot PIL's ellipse((x - 1.5, y - 1.5, x + 1.5, y + 1.5)) draws: a 4x4 square less its corners, its top left
# at floor(x - 1.5), floor(y - 1.5). Stamped for all points at once: drawing a thousand ellipses one by one took
# most of a frame's drawing, and with a class playing the trainer draws a frame for each of them in turn.
DOT = np.array([(row, col) for row in range(4) for col in range(4) if (row in (0, 3)) + (col in (0, 3)) < 2])


def stamp_dots(pixels: np.ndarray, xy: np.ndarray, colour: tuple[int, int, int]) -> None:
    """Paint a DOT of `colour` at each pixel position (x, y) in `xy`, clipped to the image."""
    xy = xy[np.isfinite(xy).all(1)]
    corner = np.floor(xy - 1.5).astype(int)
    rows, cols = (corner[:, 1:2] + DOT[:, 0]).ravel(), (corner[:, 0:1] + DOT[:, 1]).ravel()
    inside = (rows >= 0) & (rows < pixels.shape[0]) & (cols >= 0) & (cols < pixels.shape[1])
    pixels[rows[inside], cols[inside]] = colour


LEGEND_PX = 22  # the band above the curves that names them: drawn over the curves, a name hid their start
SCALE_PX = 20  # the band below, for the updates and the vertical range
LEGEND_FONT = 14  # px, Pillow's own scalable font: the bitmap font's 9 px was unreadable on a projector


def draw_losses(losses: dict[str, list[float]], width: int = LOSSES_WIDTH, height: int = 200,
                quantity: str = "loss") -> np.ndarray:
    """Each loss against the update number, smoothed over 10 updates, on a shared vertical scale, its name and
    colour in a band above the curves and the scale in a band below (neither drawn over a curve)."""
    image = Image.new("RGB", (width, height), (24, 24, 32))
    draw = ImageDraw.Draw(image)
    colours = [(255, 150, 40), (120, 200, 255), (160, 230, 140)]
    series = {name: np.convolve(v, np.ones(10) / 10, "valid") if len(v) >= 10 else np.asarray(v)
              for name, v in losses.items()}
    values = np.concatenate([v for v in series.values() if len(v)]) if any(len(v) for v in series.values()) else None
    if values is None:
        draw.text((10, height // 2), "losses appear here as it trains", fill=(200, 200, 200))
        return np.asarray(image)
    low, high = np.percentile(values, 1), np.percentile(values, 99)
    high = high if high > low else low + 1
    top, bottom = LEGEND_PX + 4, height - SCALE_PX - 4  # the curves' band
    x = 6
    for i, (name, v) in enumerate(series.items()):
        colour = colours[i % 3]
        draw.line([(x, LEGEND_PX // 2), (x + 14, LEGEND_PX // 2)], fill=colour, width=3)
        draw.text((x + 18, LEGEND_PX // 2), name, fill=colour, font_size=LEGEND_FONT, anchor="lm")
        x += 18 + int(draw.textlength(name, font_size=LEGEND_FONT)) + 14
        if len(v) > width - 8:  # one mean per pixel column: a line through 8,000 points cost more than the plane
            edges = np.linspace(0, len(v), width - 8 + 1).astype(int)
            v = np.add.reduceat(v, edges[:-1]) / np.diff(edges)
        if len(v) > 1:
            xs = np.linspace(4, width - 4, len(v))
            ys = bottom - (np.clip(v, low, high) - low) / (high - low) * (bottom - top)
            draw.line(list(zip(xs.tolist(), ys.tolist())), fill=colour, width=2)
    updates = max(len(v) for v in losses.values())
    draw.line([(4, bottom + 2), (width - 4, bottom + 2)], fill=(70, 70, 84))
    scale = f"{quantity} {low:.2f} to {high:.2f}"
    middle = height - SCALE_PX // 2
    draw.text((6, middle), f"updates 0 to {updates:,}", fill=(200, 200, 210), font_size=LEGEND_FONT - 1, anchor="lm")
    draw.text((width - 6, middle), scale, fill=(200, 200, 210), font_size=LEGEND_FONT - 1, anchor="rm")
    return np.asarray(image)


# --- many runs, one trainer ----------------------------------------------------------------------------------

def one_openmp_thread_here() -> bool:
    """Make torch's operations called from this thread run on one OpenMP thread, leaving every other thread's
    setting alone (OpenMP's thread count is per calling thread; torch.set_num_threads would change the whole
    server's). The playground's networks are so small that splitting an operation across cores only adds a
    barrier, and on a busy machine that barrier waits for a core someone else holds: on this project's 2-core
    machine, under other work, a GAN trained 59 updates/s with two threads and 819 with one (the Wasserstein
    GAN 8 against 167). -> whether it could be set (torch bundles GNU OpenMP on Linux; elsewhere nothing
    changes)."""
    library = os.path.join(os.path.dirname(torch.__file__), "lib", "libgomp.so.1")
    if not os.path.exists(library):
        return False
    try:
        gomp = ctypes.CDLL(library)  # the copy torch has loaded already: the same handle, the same runtime
    except OSError:
        return False
    torch.get_num_threads()  # torch sets a thread's count when it first asks; then this thread's is ours to set
    gomp.omp_set_num_threads(1)
    return torch.get_num_threads() == 1


RATE_SECONDS = 1.0  # a Play's caption reports its updates per second over at least this long


class Player:
    """One Play of one run, as a SharedTrainer serves it: the trainer posts frames, the Play takes them."""

    def __init__(self, run: Playground, token: object, lock: threading.Lock) -> None:
        self.run, self.token = run, token
        self.ready = threading.Condition(lock)  # one per player, on the trainer's lock: a frame wakes its Play only
        self.frame: tuple[np.ndarray, np.ndarray | None, str] | None = None  # drawn and not yet taken
        self.posted_at = 0.0
        self.done = False  # left, stopped (its token was taken) or dropped
        self.error: Exception | None = None
        self.losses_step: int | None = None  # the step of the loss curves this Play last got (None: none yet)
        self.drawn = 0  # frames drawn for it
        self.rate_step, self.rate_at = run.step, time.perf_counter()  # for the rate the caption reports


class SharedTrainer:
    """One thread trains every playing run in turns and draws each its next frame once the last was taken.

    Why one thread for everyone rather than one per Play: a Play is pure CPU (tiny networks, so Python and the
    GIL, not arithmetic, set the pace), and a server's cores are the same whether 1 or 12 people press Play.
    One thread per Play makes 12 players 12 threads fighting for the GIL and the cores, and the Playground
    takes them from the other tabs. In turns, the Playground costs one thread (plus Gradio's encoding of the
    frames), every Play gets an equal share of it, and a Play waiting for its frame holds no CPU, so a whole
    class can be admitted at once. Measured with 12 browsers pressing Play together on this 2-core machine
    under the same heavy load (`benchmarks/playground.py --class`): one thread per Play in a lane of 16 gave 8
    of the 12 a frame within 5 s and each 1-3 updates/s, using 0.49 cores; in turns, 12 of 12 (the worst after
    4.5 s) and 6-12 updates/s each, using 0.28 cores. With the old lane of 4, 8 of the 12 saw nothing at all
    for the ten minutes the first four could play.

    A turn trains for the run's share of `frame_seconds` (less a frame's typical drawing time; at least
    `min_train_seconds` and at least that drawing time), then draws a frame if the previous one was taken (the
    loss curves only when they have moved: Playground.frame's `since`); a frame left untaken for
    `abandoned_s` means no Play is reading any more (its generator was dropped without being closed) and
    the player is dropped."""

    def __init__(self, frame_seconds: float = 0.085, min_train_seconds: float = 0.01,
                 abandoned_s: float = 30.0) -> None:
        self.frame_seconds, self.min_train_seconds, self.abandoned_s = frame_seconds, min_train_seconds, abandoned_s
        self.lock = threading.Lock()
        self.work = threading.Condition(self.lock)  # the thread sleeps on it while nobody plays
        self.players: list[Player] = []
        self.thread: threading.Thread | None = None
        self.closing = False
        self.draw_seconds = 0.0  # a frame's drawing time, a running mean over every player's frames

    def playing(self) -> int:
        with self.lock:
            return len(self.players)

    def join(self, run: Playground, token: object) -> Player:
        """Start training `run` for as long as `token` is its play token."""
        with self.lock:
            if self.closing:
                raise RuntimeError("the server is stopping")
            player = Player(run, token, self.lock)
            self.players.append(player)
            if self.thread is None:
                self.thread = threading.Thread(target=self._serve, daemon=True, name="playground-trainer")
                self.thread.start()
                atexit.register(self.close)
            self.work.notify()
            return player

    def leave(self, player: Player) -> None:
        """The Play is over (ended, closed, cancelled): stop training its run and take back its token."""
        with self.lock:
            self._drop(player)
        if player.run.play_token is player.token:
            player.run.play_token = None

    def stop(self, run: Playground) -> None:
        """Pause, Reset or a new setting: take the run's token and end every Play of it now (its Play wakes at
        once instead of at the trainer's next turn for it)."""
        run.play_token = None
        with self.lock:
            for player in [p for p in self.players if p.run is run]:
                # a frame drawn before the stop and not yet taken is thrown away: whoever stopped the run shows
                # its last frame, and this older one would land on the page after it (a Pause's caption was
                # replaced by a Play frame of an earlier step)
                player.frame = None
                self._drop(player)

    def next_frame(self, player: Player, timeout: float | None) -> tuple[np.ndarray, np.ndarray | None, str] | None:
        """The player's next frame, waiting up to `timeout` s; None when it timed out or the player is done."""
        with self.lock:
            player.ready.wait_for(lambda: player.frame is not None or player.done, timeout)
            if player.error is not None:
                raise player.error
            frame, player.frame = player.frame, None
            return frame

    def close(self) -> None:
        """End every Play and the thread, once its turn in hand is over. Called at exit: a process that ends
        while a daemon thread is inside torch's autograd aborts ("terminate called without an active
        exception", exit status 134), so the turn must finish first."""
        with self.lock:
            self.closing = True
            for player in list(self.players):
                self._drop(player)
            self.work.notify()
            thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _drop(self, player: Player) -> None:  # with the lock held
        player.done = True
        if player in self.players:
            self.players.remove(player)
        player.ready.notify_all()

    def _serve(self) -> None:
        one_openmp_thread_here()
        while True:
            with self.lock:
                while not self.players and not self.closing:
                    self.work.wait()
                if self.closing:
                    return
                turn = list(self.players)
            share = self.frame_seconds / len(turn)
            for player in turn:
                if player.done or self.closing:
                    continue
                try:
                    self._turn(player, share)
                except Exception as error:  # a broken run ends its own Play, with the reason, never the trainer
                    with self.lock:
                        player.error = error
                        self._drop(player)

    def _turn(self, player: Player, share: float) -> None:
        run = player.run
        with self.lock:
            abandoned = player.frame is not None and time.perf_counter() - player.posted_at > self.abandoned_s
            if abandoned or run.play_token is not player.token:
                self._drop(player)
                return
        # a newcomer's first turn is one update and its first frame: everyone who presses Play at once sees the
        # points move within one round of drawings, not one of trainings
        newcomer = player.drawn == 0
        # otherwise its share of a round, less a frame's drawing; and never less than a frame's drawing, so that
        # however many play and however slow the machine, at least half the trainer's time trains. One typical
        # drawing time for everyone, not each player's own last one (noisy under load): equal turns
        seconds = max(self.min_train_seconds, share - self.draw_seconds, self.draw_seconds)
        run.train_for(0.0 if newcomer else seconds, token=player.token)
        if player.frame is not None:  # its Play has not taken the last frame yet: drawing another is wasted
            return
        began = time.perf_counter()
        # the caption's rate is updates per second of wall time (the player's real share, not the rate of its
        # turns), over a second or more so that it can be read
        if newcomer or began - player.rate_at >= RATE_SECONDS:
            run.updates_per_second = (run.step - player.rate_step) / max(began - player.rate_at, 1e-9)
            player.rate_step, player.rate_at = run.step, began
        player.drawn += 1
        step = run.step
        frame = run.frame(since=player.losses_step)
        if frame[1] is not None:
            player.losses_step = step
        self.draw_seconds += 0.2 * (time.perf_counter() - began - self.draw_seconds)
        with self.lock:
            if not player.done:
                player.frame, player.posted_at = frame, time.perf_counter()
                player.ready.notify_all()
