"""Denoising diffusion (Ho et al. 2020, "Denoising Diffusion Probabilistic Models"), sampled by DDPM
ancestral sampling or DDIM (Song et al. 2021, "Denoising Diffusion Implicit Models").

The latent is x_T. `decode` is deterministic DDIM (eta = 0) from x_T, so interpolation and attribute edits
mean something here too, and `encode` is DDIM inversion; both, and every other step, are explorer.samplers
(on diffusers' schedulers). The UNet comes from diffusers. Two classes, one family: `Diffusion` is the
explorer's own small UNet trained on digits, `OpenedDiffusion` a UNet2DModel and scheduler config read from a
diffusers pipeline folder (explorer.open), any size, channels and prediction type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel

from .. import samplers
from ..base import LatentModel, Step, check_image_shape, check_seed


@dataclass
class DiffusionConfig:
    variant: str = "ddpm"
    block_channels: tuple = (32, 64, 64)  # small enough to train on a CPU; 28 -> 14 -> 7 pixels
    image_shape: tuple = (1, 28, 28)  # (channels, height, width): sides divisible by 2 per downsampling
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
        self.image_shape = check_image_shape(self.image_shape, multiple=2 ** (len(self.block_channels) - 1))


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
        colours, height, width = config.image_shape
        unet = UNet2DModel(  # a square sample_size stays one int, as diffusers' own pipelines write it
            sample_size=height if height == width else (height, width), in_channels=colours,
            out_channels=colours, layers_per_block=config.layers_per_block,
            block_out_channels=config.block_channels,
            down_block_types=("DownBlock2D", middle) + ("DownBlock2D",) * (len(config.block_channels) - 2),
            up_block_types=("UpBlock2D",) * (len(config.block_channels) - 2) + (middle.replace("Down", "Up"), "UpBlock2D"),
            norm_num_groups=8, attention_head_dim=min(32, config.block_channels[-1]),  # the 7x7 mid-block attends too
        )
        # trailing spacing reaches t = T - 1 at any step count (Lin et al. 2024, Table 2); x_0 is clipped to the
        # data's [-1, 1]. Written into the scheduler config, so an exported pipeline samples as we do.
        scheduler = DDPMScheduler(num_train_timesteps=config.train_timesteps, beta_schedule=config.beta_schedule,
                                  clip_sample=True, prediction_type="epsilon", timestep_spacing="trailing",
                                  variance_type="fixed_small")
        self._adopt(unet, dict(scheduler.config))

    def _adopt(self, unet: UNet2DModel, scheduler_config: dict) -> None:
        """Take this UNet and scheduler config: the image shape and the noise schedule follow from them."""
        self.unet = unet
        self.scheduler_config = {k: v for k, v in scheduler_config.items() if not k.startswith("_")}
        size = unet.config.sample_size
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        self.image_shape = (int(unet.config.in_channels), int(height), int(width))
        alphas_cumprod = DDPMScheduler.from_config(self.scheduler_config).alphas_cumprod
        self.register_buffer("alphas_cumprod", alphas_cumprod.float(), persistent=False)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return self.image_shape

    @property
    def train_timesteps(self) -> int:
        """T, the number of noise levels the network was trained on."""
        return int(self.scheduler_config["num_train_timesteps"])

    @property
    def prediction_type(self) -> str:
        return self.scheduler_config.get("prediction_type", "epsilon")

    def predict(self, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """The network's output at (x_t, t): eps, x_0 or v, as prediction_type says."""
        t = torch.as_tensor(t, device=x_t.device).expand(x_t.shape[0])
        return self.unet(x_t.to(self.unet.dtype), t).sample.to(x_t.dtype)

    # --- forward process and training: Algorithm 1 of Ho et al. 2020 ------------------------------------
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t ~ q(x_t | x_0) in closed form, Eq. 4 of Ho et al.: sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps."""
        abar = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x0 = x * 2 - 1  # 1. data to [-1, 1]
        t = torch.randint(0, self.train_timesteps, (x.shape[0],), device=x.device)  # 2. t ~ Uniform
        noise = torch.randn_like(x0)  # 3. eps ~ N(0, I)
        x_t = self.q_sample(x0, t, noise)
        abar = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        target = {"epsilon": noise, "sample": x0,  # 4. ||target - network||^2; v as Salimans & Ho 2022, Eq. 9
                  "v_prediction": abar.sqrt() * noise - (1 - abar).sqrt() * x0}[self.prediction_type]
        return {"loss": F.mse_loss(self.predict(x_t, t), target)}

    # --- reverse process: explorer.samplers ---------------------------------------------------------------
    @torch.inference_mode()
    def decode_steps(self, z: torch.Tensor, sampler: str = "ddim", steps: int | None = None, eta: float = 0.0,
                     seed: int = 0) -> Iterator[Step]:
        """Yield x_t and the predicted x_0 after every step of DDPM or DDIM (samplers.denoise)."""
        x = self.check_latent(z)
        steps = self.config.decode_steps if steps is None else steps
        generator = torch.Generator(device="cpu").manual_seed(check_seed(seed))
        for step in samplers.denoise(self.predict, x, self.scheduler_config, sampler, steps, eta, generator):
            yield Step(step.index, step.total, ((step.sample + 1) / 2).clamp(0, 1), f"t={step.t}",
                       {"predicted x0": ((step.predicted_x0 + 1) / 2).clamp(0, 1)}, step.info)

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return ((samplers.ddim(self.predict, z, self.scheduler_config, self.config.decode_steps) + 1) / 2).clamp(0, 1)

    def gradient_decode(self, z: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """The same DDIM in config.gradient_steps steps, run with autograd on (decode runs in inference mode).
        Backpropagating 8 steps costs about a third of one 50-step decode; the direction it gives is what
        classifier guidance needs, and edit() checks every result with the real decode."""
        steps = self.config.gradient_steps if steps is None else steps
        return ((samplers.ddim(self.predict, z, self.scheduler_config, steps) + 1) / 2).clamp(0, 1)

    def _encode(self, x: torch.Tensor, steps: int | None = None, progress=None) -> torch.Tensor:
        """DDIM inversion through the timesteps a decode visits (samplers.invert)."""
        steps = self.config.decode_steps if steps is None else steps
        return samplers.invert(self.predict, x * 2 - 1, self.scheduler_config, steps, progress)


@dataclass
class OpenedDiffusionConfig:
    """A diffusers pipeline folder's two configs, as diffusers reads them, and how this explorer samples it."""

    unet: dict  # unet/config.json: a UNet2DModel of any size, channels and blocks
    scheduler: dict  # scheduler/scheduler_config.json: DDPM or DDIM, any schedule, spacing and prediction type
    source: str = ""  # what it was opened as: a folder's name or a Hugging Face repo id
    decode_steps: int = 50  # DDIMPipeline's own default
    gradient_steps: int = 8


class OpenedDiffusion(Diffusion):
    """A diffusers UNet2DModel and scheduler, the same family as the explorer's own: every view that serves
    diffusion serves it. Its data is not known (domain None): views offer the measures any image has."""

    config_class = OpenedDiffusionConfig
    domain = None
    train_defaults = {}

    def __init__(self, config: OpenedDiffusionConfig, unet: UNet2DModel | None = None) -> None:
        LatentModel.__init__(self, config)
        self._adopt(UNet2DModel.from_config(config.unet) if unet is None else unet, config.scheduler)
