"""DDPM and DDIM sampling, DDIM inversion and the short differentiable DDIM, written once, on diffusers' own
schedulers: every step here is a scheduler's `step()`, so a decode equals what diffusers' DDIMPipeline draws
from the same noise, steps and scheduler config, whatever that config says (epsilon, sample or v prediction,
any beta schedule, leading, trailing or linspace spacing, clipping). Before, DDIM was written out three times
(the sampler, the differentiable stand-in and the inversion) and they drifted: at 7 steps one stepped to t=856
where diffusers steps to t=857.

`predict(x_t, t)` is the network's output for a batch at one timestep, in whatever the config's
`prediction_type` says it predicts; images here are in the network's [-1, 1]."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler, DDPMScheduler

SAMPLERS = ("ddim", "ddpm")
Predict = Callable[[torch.Tensor, int], torch.Tensor]


@dataclass
class Transition:
    """One reverse step x_t -> x_prev, as `denoise` yields it."""

    index: int
    total: int
    t: int
    prev_t: int  # -1 after the last step (the clean image)
    sample: torch.Tensor  # x_prev
    predicted_x0: torch.Tensor
    info: dict[str, float] = field(default_factory=dict)  # the step's coefficients, for the Denoise view


def scheduler_for(config: dict, sampler: str, steps: int, **overrides):
    """A diffusers scheduler of the sampler's kind built from any DDPM or DDIM scheduler config (diffusers' own
    DDIMPipeline converts a DDPM config the same way), its timesteps set for `steps` steps."""
    kinds = {"ddim": DDIMScheduler, "ddpm": DDPMScheduler, "inverse": DDIMInverseScheduler}
    if sampler not in kinds:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
    total = int(config["num_train_timesteps"])
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= total:
        raise ValueError(f"steps must be an integer in [1, {total}], got {steps!r}")
    kind = kinds[sampler]
    accepted = inspect.signature(kind.__init__).parameters  # a DDPM config has keys DDIM does not take
    scheduler = kind.from_config({k: v for k, v in config.items() if k in accepted} | overrides)
    scheduler.set_timesteps(steps)
    return scheduler


def previous_timestep(scheduler, t: int) -> int:
    """Where the scheduler's step() from t lands: DDIM steps back by T // steps (Song et al.'s tau), DDPM to the
    next timestep of its list; -1 past the last."""
    if isinstance(scheduler, DDIMScheduler):
        return int(t - scheduler.config.num_train_timesteps // scheduler.num_inference_steps)
    return int(scheduler.previous_timestep(t))


def alpha_bar(scheduler, t: int) -> float:
    """abar_t, with the value the scheduler itself uses before the first timestep."""
    if t >= 0:
        return float(scheduler.alphas_cumprod[t])
    return float(scheduler.final_alpha_cumprod) if isinstance(scheduler, DDIMScheduler) else 1.0


def coefficients(scheduler, t: int, prev_t: int, eta: float) -> dict[str, float]:
    """The numbers one step multiplies by, as the Denoise view names them."""
    abar, abar_prev = alpha_bar(scheduler, t), alpha_bar(scheduler, prev_t)
    if isinstance(scheduler, DDIMScheduler):  # Eq. 12 and 16 of Song et al. 2021
        sigma = eta * ((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)) ** 0.5
        return {"t": t, "sqrt(abar_prev)": abar_prev ** 0.5,
                "sqrt(1-abar_prev-sigma^2)": max(1 - abar_prev - sigma ** 2, 0.0) ** 0.5, "sigma": sigma}
    alpha = abar / abar_prev  # Algorithm 2 of Ho et al. 2020, sigma_t^2 = beta-tilde_t (Eq. 7)
    return {"t": t, "1/sqrt(alpha_t)": alpha ** -0.5, "beta_t/sqrt(1-abar_t)": (1 - alpha) / (1 - abar) ** 0.5,
            "sigma_t": ((1 - abar_prev) / (1 - abar) * (1 - alpha)) ** 0.5 if prev_t >= 0 else 0.0}


def denoise(predict: Predict, x: torch.Tensor, config: dict, sampler: str = "ddim", steps: int = 50,
            eta: float = 0.0, generator: torch.Generator | None = None) -> Iterator[Transition]:
    """The reverse process from x_T = x, one Transition per step. DDIM: Eq. 12 of Song et al. 2021, eta scaling
    the added noise (0: deterministic); DDPM: Algorithm 2 of Ho et al. 2020 on the scheduler's strided timesteps.
    Noise is drawn on the CPU from `generator`, so a seed gives the same run on every device. Runs under
    whatever autograd mode the caller is in: the differentiable decode is this loop with gradients on."""
    if not (isinstance(eta, (int, float)) and not isinstance(eta, bool) and 0.0 <= eta <= 1.0):
        raise ValueError(f"eta must be a number in [0, 1], got {eta!r}")
    scheduler = scheduler_for(config, sampler, steps)
    timesteps = [int(t) for t in scheduler.timesteps]
    for index, t in enumerate(timesteps):
        output = predict(x, t)  # 1. the network's eps, x_0 or v at (x_t, t)
        prev_t = previous_timestep(scheduler, t)
        if sampler == "ddim":  # 2. x_prev from the predicted x_0 and eps (plus sigma_t z when eta > 0)
            noise = torch.randn(x.shape, generator=generator).to(x.device, x.dtype) if eta > 0 else None
            out = scheduler.step(output, t, x, eta=float(eta), variance_noise=noise)
        else:  # 2. the posterior mean plus sigma_t z
            out = scheduler.step(output, t, x, generator=generator)
        x = out.prev_sample
        yield Transition(index, len(timesteps), t, prev_t, x, out.pred_original_sample,
                         coefficients(scheduler, t, prev_t, eta))


def ddim(predict: Predict, x: torch.Tensor, config: dict, steps: int) -> torch.Tensor:
    """Deterministic DDIM (eta = 0) from x_T to x_0."""
    for transition in denoise(predict, x, config, "ddim", steps):
        pass
    return transition.sample


def invert(predict: Predict, x0: torch.Tensor, config: dict, steps: int, progress=None) -> torch.Tensor:
    """DDIM inversion, x_0 -> x_T: the deterministic DDIM update run backwards through the very timesteps a
    `steps`-step decode visits, eps_theta(x_t, t) approximated by its value at x_prev (Song et al. 2021,
    Sec. 4.3; Dhariwal & Nichol 2021, App. F), by diffusers' DDIMInverseScheduler."""
    # The first step starts from abar = 1 when set_alpha_to_one (as the last decode step ends there): the eps of
    # a sample or v prediction is then 0/0, so those start from abar_0 instead (within 1e-4 of 1 for the usual
    # schedules); an epsilon model's inversion mirrors the decode exactly.
    start = {} if config.get("prediction_type", "epsilon") == "epsilon" else {"set_alpha_to_one": False}
    try:
        scheduler = scheduler_for(config, "inverse", steps, **start)
    except ValueError as error:
        if "timestep_spacing" in str(error) or "not supported" in str(error):
            raise ValueError(f"DDIM inversion needs 'leading' or 'trailing' timestep spacing; this scheduler "
                             f"spaces its timesteps '{config.get('timestep_spacing')}'") from error
        raise
    x = x0
    timesteps = [int(t) for t in scheduler.timesteps]
    for i, t in enumerate(timesteps):
        x = scheduler.step(predict(x, t), t, x).prev_sample
        if progress is not None:
            progress(i + 1, len(timesteps))
    return x
