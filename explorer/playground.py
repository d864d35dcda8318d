"""The 2-D playground: tiny GAN, flow and diffusion models trained live on toy point sets, in the spirit of
GAN Lab (Kahng et al. 2019), so what the digit models do in 784 dimensions can be watched in two.

A `Playground` is one training run: a toy dataset, one small model, its optimiser and a history of losses.
`train_for(seconds)` runs updates for a time budget (the app calls it between frames) and `frame()` draws the
plane and the loss curves as images. Everything is seeded: the same settings give the same run.
"""

from __future__ import annotations

import importlib
import math
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
FAMILIES = ("GAN", "flow", "diffusion")
GAN_LOSSES = ("cross-entropy", "Wasserstein (gradient penalty)")
MODE_RADIUS = 1.0  # a generated point within this distance of a mode's centre counts for that mode
SHOWN_POINTS = 500
LOSS_HISTORY = 4000  # the loss curves show at least this many of the latest updates, and at most twice as many
PLANE_PIXELS = 360


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
    return model


# --- the three families ------------------------------------------------------------------------------------

class ToyGAN(nn.Module):
    """Generator z in R^2 -> R^2 and a discriminator (critic) R^2 -> R. Cross-entropy: the non-saturating loss
    of Goodfellow et al. 2014, Sec. 3. Wasserstein: WGAN-GP (Gulrajani et al. 2017, Algorithm 1) with 5 critic
    updates per generator update and the penalty weight scaled to the plane (0.1 rather than the images' 10)."""

    def __init__(self, loss: str) -> None:
        super().__init__()
        if loss not in GAN_LOSSES:
            raise ValueError(f"loss must be one of {', '.join(GAN_LOSSES)}; got {loss!r}")
        self.wasserstein = loss != "cross-entropy"
        self.generator, self.critic = mlp(2, 2), mlp(2, 1)
        betas = (0.0, 0.9) if self.wasserstein else (0.5, 0.999)
        self.g_optimizer = torch.optim.Adam(self.generator.parameters(), 2e-3, betas=betas)
        self.d_optimizer = torch.optim.Adam(self.critic.parameters(), 2e-3, betas=betas)

    def update(self, data, generator: torch.Generator) -> dict[str, float]:
        for _ in range(5 if self.wasserstein else 1):
            real = data(128)
            fake = self.generator(torch.randn(128, 2, generator=generator)).detach()
            if self.wasserstein:  # 1. critic: E[D(fake)] - E[D(real)] + lambda E[(|grad D(x_hat)| - 1)^2]
                mix = torch.rand(128, 1, generator=generator)
                between = (mix * real + (1 - mix) * fake).requires_grad_(True)
                grad, = torch.autograd.grad(self.critic(between).sum(), between, create_graph=True)
                d_loss = self.critic(fake).mean() - self.critic(real).mean() + 0.1 * ((grad.norm(dim=1) - 1) ** 2).mean()
            else:  # 1. discriminator: -log D(real) - log(1 - D(fake))
                d_loss = F.softplus(-self.critic(real)).mean() + F.softplus(self.critic(fake)).mean()
            self.d_optimizer.zero_grad()
            d_loss.backward()
            self.d_optimizer.step()
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


class ToyFlow(nn.Module):
    """RealNVP on the plane: eight couplings alternating the coordinate they move, a standard normal base,
    trained by maximum likelihood: log p(x) = log N(f(x)) + sum of log|det| (change of variables)."""

    SCALE = 3.0  # the data are divided by this first, so the base's unit normal has the points' size

    def __init__(self) -> None:
        super().__init__()
        self.couplings = nn.ModuleList(Coupling(i % 2) for i in range(8))
        self.optimizer = torch.optim.Adam(self.parameters(), 2e-3)

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        z, log_det = x / self.SCALE, torch.full((len(x),), -2 * math.log(self.SCALE))
        for coupling in self.couplings:
            z, step = coupling(z)
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
        for coupling in reversed(self.couplings):
            x = coupling.inverse(x)
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
        self.model = {"GAN": lambda: ToyGAN(s.loss), "flow": ToyFlow, "diffusion": ToyDiffusion}[s.family]()
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

    def train_for(self, seconds: float, most: int = 1000) -> int:
        """Updates until `seconds` have passed (at least one, at most `most`); returns how many ran."""
        with self.lock:
            self.model.train()
            began, done = time.perf_counter(), 0
            while done < most and (done == 0 or time.perf_counter() - began < seconds):
                self._update()
                done += 1
            self.updates_per_second = done / max(time.perf_counter() - began, 1e-9)
            return done

    def generated(self) -> torch.Tensor:
        self.model.eval()
        return self.model.sample(self.shown_noise)

    def coverage(self, points: torch.Tensor) -> np.ndarray | None:
        centres = mode_centres(self.settings.dataset)
        return None if centres is None else mode_shares(points, centres)

    # --- drawing ---------------------------------------------------------------------------------------------
    def frame(self) -> tuple[np.ndarray, np.ndarray, str]:
        """(the plane: background, real points, generated points; the loss curves; a caption)."""
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
        return plane, draw_losses(self.losses), caption


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
    for colour, points in (((235, 235, 235), real), ((255, 150, 40), fake)):
        for x, y in to_pixels(points.clamp(-2 * VIEW, 2 * VIEW)):
            draw.ellipse((x - 1.5, y - 1.5, x + 1.5, y + 1.5), fill=colour)
    return np.asarray(image)


def draw_losses(losses: dict[str, list[float]], width: int = 360, height: int = 200) -> np.ndarray:
    """Each loss against the update number, smoothed over 10 updates, on a shared vertical scale."""
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
    for i, (name, v) in enumerate(series.items()):
        if len(v) > 1:
            xs = np.linspace(4, width - 4, len(v))
            ys = height - 20 - (np.clip(v, low, high) - low) / (high - low) * (height - 40)
            draw.line(list(zip(xs.tolist(), ys.tolist())), fill=colours[i % 3], width=2)
        draw.text((6, 4 + 12 * i), name, fill=colours[i % 3])
    draw.text((width - 60, height - 14), f"{low:.2f}..{high:.2f}", fill=(160, 160, 160))
    return np.asarray(image)
