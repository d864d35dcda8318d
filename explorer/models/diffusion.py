"""Denoising diffusion (Ho et al. 2020, "Denoising Diffusion Probabilistic Models"), sampled by DDPM
ancestral sampling or DDIM (Song et al. 2021, "Denoising Diffusion Implicit Models").

The latent is x_T. `decode` is deterministic DDIM (eta = 0) from x_T, so interpolation and attribute edits
mean something here too, and `encode` is DDIM inversion. The UNet and the schedulers come from diffusers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel

from ..base import LatentModel, Step, check_seed

MAX_SAMPLING_STEPS = 1000


@dataclass
class DiffusionConfig:
    variant: str = "ddpm"
    block_channels: tuple = (32, 64, 64)  # small enough to train on a CPU; 28 -> 14 -> 7 pixels
    layers_per_block: int = 1
    attention: bool = False  # self-attention at 14x14 (Ho et al. use it at 16x16) costs 40% more time per step on a CPU
    train_timesteps: int = 1000  # T = 1000 as in Ho et al. 2020
    beta_schedule: str = "linear"  # beta_1 = 1e-4 .. beta_T = 0.02, Ho et al. 2020 Section 4
    decode_steps: int = 50  # DDIM steps used by decode(): FID barely changes beyond 50 on MNIST
    gradient_steps: int = 8  # DDIM steps of gradient_decode, the stand-in that classifier guidance differentiates
    ema_decay: float = 0.999  # sample from EMA weights, as Ho et al. do (0.9999 there, over far more steps)
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        self.block_channels = tuple(self.block_channels)


class Diffusion(LatentModel):
    family = "diffusion"
    decode_is_slow = True  # 50 UNet passes per decode (deterministic DDIM)
    config_class = DiffusionConfig
    train_defaults = {"steps": 8000, "batch_size": 64, "lr": 5e-4, "warmup": 200}  # sized for a 2-core CPU
    can_encode = True  # DDIM inversion: approximate, so encode_is_exact stays False
    encode_method = "DDIM inversion"
    multi_step = True
    has_sampler_options = True
    has_forward_process = True

    def __init__(self, config: DiffusionConfig) -> None:
        super().__init__(config)
        middle = "AttnDownBlock2D" if config.attention else "DownBlock2D"
        self.unet = UNet2DModel(
            sample_size=28, in_channels=1, out_channels=1, layers_per_block=config.layers_per_block,
            block_out_channels=config.block_channels,
            down_block_types=("DownBlock2D", middle) + ("DownBlock2D",) * (len(config.block_channels) - 2),
            up_block_types=("UpBlock2D",) * (len(config.block_channels) - 2) + (middle.replace("Down", "Up"), "UpBlock2D"),
            norm_num_groups=8, attention_head_dim=min(32, config.block_channels[-1]),  # the 7x7 mid-block attends too
        )
        self.scheduler_config = dict(num_train_timesteps=config.train_timesteps, beta_schedule=config.beta_schedule,
                                     clip_sample=True, prediction_type="epsilon")
        alphas_cumprod = DDPMScheduler(**self.scheduler_config).alphas_cumprod
        self.register_buffer("alphas_cumprod", alphas_cumprod.float(), persistent=False)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (1, 28, 28)

    def predict_noise(self, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        t = torch.as_tensor(t, device=x_t.device).expand(x_t.shape[0])
        return self.unet(x_t, t).sample

    # --- forward process and training: Algorithm 1 of Ho et al. 2020 ------------------------------------
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t ~ q(x_t | x_0) in closed form, Eq. 4 of Ho et al.: sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps."""
        abar = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x0 = x * 2 - 1  # 1. data to [-1, 1]
        t = torch.randint(0, self.config.train_timesteps, (x.shape[0],), device=x.device)  # 2. t ~ Uniform
        noise = torch.randn_like(x0)  # 3. eps ~ N(0, I)
        loss = F.mse_loss(self.predict_noise(self.q_sample(x0, t, noise), t), noise)  # 4. ||eps - eps_theta||^2
        return {"loss": loss}

    # --- reverse process ----------------------------------------------------------------------------------
    def _scheduler(self, sampler: str, steps: int):
        if sampler == "ddim":
            scheduler = DDIMScheduler(**self.scheduler_config, timestep_spacing="trailing", set_alpha_to_one=True)
        elif sampler == "ddpm":
            scheduler = DDPMScheduler(**self.scheduler_config, timestep_spacing="trailing", variance_type="fixed_small")
        else:
            raise ValueError(f"sampler must be 'ddim' or 'ddpm', not {sampler!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= self.config.train_timesteps:
            raise ValueError(f"steps must be an integer in [1, {self.config.train_timesteps}], got {steps!r}")
        scheduler.set_timesteps(steps)
        return scheduler

    def _alpha_pairs(self, timesteps: torch.Tensor) -> list[tuple[int, float, float]]:
        """(t, abar_t, abar_prev) for each step of a trailing-spaced schedule; abar_prev = 1 after the last."""
        ts = [int(t) for t in timesteps]
        prev = ts[1:] + [-1]
        return [(t, float(self.alphas_cumprod[t]), float(self.alphas_cumprod[p]) if p >= 0 else 1.0) for t, p in zip(ts, prev)]

    @torch.inference_mode()
    def decode_steps(self, z: torch.Tensor, sampler: str = "ddim", steps: int | None = None, eta: float = 0.0,
                     seed: int = 0) -> Iterator[Step]:
        """Yield x_t and the predicted x_0 after every step. DDPM: Algorithm 2 of Ho et al. 2020 on a
        strided schedule. DDIM: Eq. 12 of Song et al. 2021 with eta scaling the noise (eta = 0: deterministic)."""
        x = self.check_latent(z)
        steps = self.config.decode_steps if steps is None else steps
        if not (isinstance(eta, (int, float)) and 0.0 <= eta <= 1.0):
            raise ValueError(f"eta must be a number in [0, 1], got {eta!r}")
        scheduler = self._scheduler(sampler, steps)
        generator = torch.Generator(device="cpu").manual_seed(check_seed(seed))
        pairs = self._alpha_pairs(scheduler.timesteps)
        for index, (t, abar, abar_prev) in enumerate(pairs):
            eps = self.predict_noise(x, t)  # 1. predicted noise eps_theta(x_t, t)
            if sampler == "ddim":  # 2. x_{t-1} from the predicted x_0 and eps
                noise = torch.randn(x.shape, generator=generator).to(x.device) if eta > 0 else None
                out = scheduler.step(eps, t, x, eta=eta, variance_noise=noise)
                sigma = eta * ((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)) ** 0.5
                info = {"t": t, "sqrt(abar_prev)": abar_prev ** 0.5,
                        "sqrt(1-abar_prev-sigma^2)": max(1 - abar_prev - sigma**2, 0.0) ** 0.5, "sigma": sigma}
            else:
                out = scheduler.step(eps, t, x, generator=generator)
                alpha = abar / abar_prev
                info = {"t": t, "1/sqrt(alpha_t)": alpha ** -0.5, "beta_t/sqrt(1-abar_t)": (1 - alpha) / (1 - abar) ** 0.5,
                        "sigma_t": ((1 - abar_prev) / (1 - abar) * (1 - alpha)) ** 0.5 if index < len(pairs) - 1 else 0.0}
            x = out.prev_sample
            x0 = out.pred_original_sample
            yield Step(index, len(pairs), ((x + 1) / 2).clamp(0, 1), f"t={t}",
                       {"predicted x0": ((x0 + 1) / 2).clamp(0, 1)}, info)

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        for step in self.decode_steps(z, sampler="ddim", steps=self.config.decode_steps):
            pass
        return step.image

    def gradient_decode(self, z: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """Deterministic DDIM (eta = 0; Song et al. 2021, Eq. 12, x_0 clipped as the scheduler clips it) in
        config.gradient_steps steps, written out so autograd can follow it (decode_steps runs in inference
        mode). Backpropagating 8 steps costs about a third of one 50-step decode; the direction it gives is
        what classifier guidance needs, and edit() checks every result with the real decode."""
        steps = self.config.gradient_steps if steps is None else steps
        x = z
        for t, abar, abar_prev in self._alpha_pairs(self._scheduler("ddim", steps).timesteps):
            eps = self.predict_noise(x, t)  # 1. predicted noise
            x0 = ((x - (1 - abar) ** 0.5 * eps) / abar ** 0.5).clamp(-1, 1)  # 2. predicted x_0
            x = abar_prev ** 0.5 * x0 + (1 - abar_prev) ** 0.5 * eps  # 3. x_prev, no added noise
        return ((x + 1) / 2).clamp(0, 1)

    def _encode(self, x: torch.Tensor, steps: int | None = None, progress=None) -> torch.Tensor:
        """DDIM inversion: run the deterministic DDIM update backwards, from x_0 to x_T, approximating
        eps_theta(x_t, t) by eps_theta(x_{t-1}, t) (Song et al. 2021, Sec. 4.3; Dhariwal & Nichol 2021, App. F)."""
        steps = self.config.decode_steps if steps is None else steps
        scheduler = self._scheduler("ddim", steps)
        x_t = x * 2 - 1
        pairs = list(reversed(self._alpha_pairs(scheduler.timesteps)))
        for i, (t, abar, abar_prev) in enumerate(pairs):
            eps = self.predict_noise(x_t, t)
            x0 = (x_t - (1 - abar_prev) ** 0.5 * eps) / abar_prev ** 0.5
            x_t = abar ** 0.5 * x0 + (1 - abar) ** 0.5 * eps
            if progress is not None:
                progress(i + 1, len(pairs))
        return x_t
