"""The Denoise tab: a model's generation process streamed step by step (x_t beside the predicted x_0 for
diffusion), scrubbable afterwards and exportable as a GIF; and the forward process q(x_t | x_0) on a real digit."""

from __future__ import annotations

from functools import lru_cache

import gradio as gr
import imageio.v3 as iio
import numpy as np
import pandas as pd
import torch

from ..data import load_mnist, to_tensor
from ..models.autoencoder import add_pixel_noise
from .common import (LONG_WORK, MAX_SEED, check_choice, check_float, check_int, export_folder, image_view, labelled_strip,
                     model_or_error, one_uint8, to_image)
from .edit import digit_from_upload
from .models import ModelCache

EXPLANATION = (
    "Diffusion generates by starting from pure noise **x_T** and removing **predicted noise** ε̂ step by step. "
    "Left: the current **x_t**; right: the model's **predicted x_0**, its guess of the finished digit at that "
    "step. **DDPM** adds fresh noise at each step (Algorithm 2 of Ho et al. 2020); **DDIM** with eta = 0 is "
    "deterministic. For a flow, each step is the image after one more **coupling layer** is inverted; "
    "**PixelCNN** paints the canvas one pixel at a time in raster order (shown a row at a time), each pixel drawn "
    "from its distribution given the pixels before it; an **RBM** runs its Gibbs chain, alternating "
    "h ~ p(h|v) and v ~ p(v|h), and its free energy F(v) falls as the chain finds a digit."
)
CLEAN_UP_EXPLANATION = (
    "A digit (your upload, or a held-out one) with Gaussian noise added, and what each model with an encoder "
    "makes of it: decode(encode(noisy)). The **denoising autoencoder** was trained on exactly this corruption "
    "(noise 0.5) and rebuilds the clean digit; the plain autoencoder and the VAE only ever saw clean digits; the "
    "**flow** is invertible, so it gives the noisy image back unchanged. The error is against the clean digit."
)
FORWARD_EXPLANATION = (
    "The forward process adds Gaussian noise to a real digit: q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I). "
    "The plot shows how much signal (√ᾱ_t) and noise (√(1 − ᾱ_t)) x_t holds at each t."
)


def equation(step, sampler: str | None) -> str:
    """The update that made this step, with its coefficients for diffusion; the step's own figures otherwise."""
    info = step.info
    if sampler is None:
        figures = "".join(f"; {name} {value:,.1f}" for name, value in info.items())
        return f"**{step.label}** (step {step.index + 1} of {step.total}){figures}"
    if sampler == "ddim":
        return (f"**{step.label}**, step {step.index + 1} of {step.total}: x_prev = √ᾱ_prev · x̂_0 + √(1 − ᾱ_prev − σ²) · ε̂ + σ · z "
                f"= {info['sqrt(abar_prev)']:.4f} · x̂_0 + {info['sqrt(1-abar_prev-sigma^2)']:.4f} · ε̂ + {info['sigma']:.4f} · z")
    return (f"**{step.label}**, step {step.index + 1} of {step.total}: x_prev = (1/√α_t) · (x_t − β_t/√(1 − ᾱ_t) · ε̂) + σ_t · z "
            f"= {info['1/sqrt(alpha_t)']:.4f} · (x_t − {info['beta_t/sqrt(1-abar_t)']:.4f} · ε̂) + {info['sigma_t']:.4f} · z")


def checked_options(model, seed, sampler, steps, eta) -> dict:
    seed = check_int(seed, "seed", 0, MAX_SEED)
    if not model.has_sampler_options:
        return {}
    return {"sampler": check_choice(sampler, "sampler", ("ddpm", "ddim")),
            "steps": check_int(steps, "steps", 1, model.config.train_timesteps),
            "eta": check_float(eta, "eta", 0.0, 1.0), "seed": seed}


def run_steps(models: ModelCache, name, seed, sampler, steps, eta):
    """Stream (x_t, predicted x_0, equation, stored frames, scrub slider) after every step."""
    model = model_or_error(models, name)
    if not model.multi_step:
        raise gr.Error(f"{name} makes an image in one step; choose one of: {', '.join(models.names_where('multi_step'))}")
    options = checked_options(model, seed, sampler, steps, eta)
    z = model.sample_latent(1, seed=int(seed), temperature=model.default_temperature)
    frames = []
    for step in model.decode_steps(z, **options):
        # stored at the model's own size as uint8 (784 bytes an image), enlarged only when shown: a 1000-step run
        # keeps 1.6 MB in the user's state rather than 100 MB of enlarged frames
        frame = {"x_t": one_uint8(step.image), "x_0": one_uint8(step.extras.get("predicted x0", step.image)),
                 "text": equation(step, options.get("sampler"))}
        frames.append(frame)
        yield *shown(frame), gr.skip(), gr.skip()
    yield *shown(frame), frames, gr.update(minimum=0, maximum=len(frames) - 1, value=len(frames) - 1, interactive=True)


def enlarged(image: np.ndarray, scale: int = 8) -> np.ndarray:
    return image.repeat(scale, axis=0).repeat(scale, axis=1)


def shown(frame: dict) -> tuple[np.ndarray, np.ndarray, str]:
    return enlarged(frame["x_t"]), enlarged(frame["x_0"]), frame["text"]


def scrub(frames, index):
    if not frames:
        raise gr.Error("run the process first, then scrub through its steps")
    index = check_int(index, "step", 0, len(frames) - 1)
    return shown(frames[index])


def export_gif(frames):
    if not frames:
        raise gr.Error("run the process first, then export it")
    if len(frames) > 200:  # keep the file small: an even subsample, always with the last step
        keep = np.unique(np.linspace(0, len(frames) - 1, 200).round().astype(int))
        frames = [frames[i] for i in keep]
    pictures = [np.concatenate([x_t, np.full((x_t.shape[0], 8), 40, np.uint8), x_0], axis=1)
                for x_t, x_0, _ in map(shown, frames)]
    path = export_folder() / "denoising.gif"
    iio.imwrite(path, pictures + [pictures[-1]] * 10, duration=60, loop=0)
    return str(path)


def clean_up(models: ModelCache, upload, digit, noise, seed):
    """A digit (the upload, else held-out digit number `digit`) with pixel noise added, rebuilt by every model
    that encodes in one pass: -> (clean, noisy, a strip of the rebuilds labelled with their errors, table)."""
    noise = check_float(noise, "noise", 0.0, 1.0)
    seed = check_int(seed, "noise seed", 0, MAX_SEED)
    if upload is not None:
        clean = torch.from_numpy(digit_from_upload(upload).astype(np.float32) / 255).reshape(1, 1, 28, 28)
        source = "your upload"
    else:
        index = check_int(digit, "held-out digit", 0, 1999)
        clean, source = heldout_digits()[index : index + 1], f"held-out digit {index}"
    noisy = add_pixel_noise(clean, noise, torch.Generator().manual_seed(seed))
    rebuilds, errors = [], {}
    for name in models.names_where("encode_is_fast"):
        model = models.get(name)
        rebuilt = model.decode(model.encode(noisy.to(model.device))).cpu()
        errors[name] = float((rebuilt - clean).abs().mean()) * 255  # mean grey levels (of 255) from the clean digit
        rebuilds.append(rebuilt[0])
    strip = labelled_strip(torch.stack(rebuilds), [f"{n.removesuffix('-mnist')} {e:.0f}" for n, e in errors.items()], 4)
    noisy_error = float((noisy - clean).abs().mean()) * 255
    best = min(errors, key=errors.get) if errors else "-"
    rows = "\n".join(f"| {name} | {models.families[name]} | {error:.1f} |" for name, error in errors.items())
    table = (f"{source}, noise {noise:g}: the noisy input is {noisy_error:.1f} grey levels (of 255) from the clean "
             f"digit on average; closest rebuild: **{best}**.\n\n| model | family | mean error vs clean (of 255) |\n"
             f"|---|---|---|\n{rows}")
    return to_image(clean, 6), to_image(noisy, 6), strip, table


@lru_cache(maxsize=1)
def heldout_digits() -> torch.Tensor:
    return to_tensor(load_mnist("heldout").images)


def forward_process(models: ModelCache, name, digit, t, seed):
    """-> (x_0, x_t ~ q(x_t | x_0), caption, schedule plot data)."""
    model = model_or_error(models, name)
    if not model.has_forward_process:
        raise gr.Error(f"{name} has no forward noising process; choose one of: {', '.join(models.names_where('has_forward_process'))}")
    digit = check_int(digit, "held-out digit", 0, 1999)
    timesteps = model.config.train_timesteps
    t = check_int(t, "t", 0, timesteps - 1)
    seed = check_int(seed, "seed", 0, MAX_SEED)
    x0 = heldout_digits()[digit : digit + 1].to(model.device) * 2 - 1
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed)).to(model.device)
    with torch.inference_mode():
        x_t = model.q_sample(x0, torch.tensor([t], device=model.device), noise)
    abar = model.alphas_cumprod.cpu()
    caption = f"t = {t}: x_t = {abar[t].sqrt():.4f} · x_0 + {(1 - abar[t]).sqrt():.4f} · ε"
    ts = torch.arange(timesteps)
    plot = pd.DataFrame({"t": torch.cat([ts, ts]).numpy(),
                         "coefficient": torch.cat([abar.sqrt(), (1 - abar).sqrt()]).numpy(),
                         "series": ["signal √ᾱ_t"] * timesteps + ["noise √(1 − ᾱ_t)"] * timesteps})
    return to_image((x0 + 1) / 2, 6), to_image(((x_t + 1) / 2).clamp(0, 1), 6), caption, plot


def build(models: ModelCache):
    gr.Markdown(EXPLANATION)
    stepping = models.names_where("multi_step")
    sampling = models.names_where("has_sampler_options")
    with gr.Row():
        model = gr.Dropdown(stepping, value=(sampling or stepping or [None])[0], label="model")
        seed = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="seed")
        sampler = gr.Radio(["ddpm", "ddim"], value="ddim", label="sampler")
        steps = gr.Slider(1, 1000, value=50, step=1, label="steps")
        eta = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="eta (DDIM)")
        run = gr.Button("Run", variant="primary", elem_id="denoise-run")
    with gr.Row():
        x_t = image_view(label="x_t", type="numpy", height=240, width=240, elem_id="denoise-xt")
        x_0 = image_view(label="predicted x_0", type="numpy", height=240, width=240, elem_id="denoise-x0")
    text = gr.Markdown(elem_id="denoise-equation")
    frames = gr.State([])
    scrubber = gr.Slider(0, 1, value=0, step=1, label="scrub through the stored steps", interactive=False, elem_id="denoise-scrub")
    with gr.Row():
        export = gr.Button("Export the steps as a GIF", elem_id="denoise-export")
        gif = gr.File(label="GIF", elem_id="denoise-gif")
    run.click(lambda *a: (yield from run_steps(models, *a)), [model, seed, sampler, steps, eta],
              [x_t, x_0, text, frames, scrubber], api_name="denoise", **LONG_WORK)
    scrubber.input(scrub, [frames, scrubber], [x_t, x_0, text], trigger_mode="always_last", show_progress="hidden", api_visibility="private")
    export.click(export_gif, frames, gif, api_visibility="private")

    gr.Markdown("### The forward process\n" + FORWARD_EXPLANATION)
    with gr.Row():
        f_model = gr.Dropdown(sampling, value=sampling[0] if sampling else None, label="model")
        digit = gr.Slider(0, 1999, value=0, step=1, label="held-out digit")
        t = gr.Slider(0, 999, value=250, step=1, label="t")
        f_seed = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="noise seed")
    with gr.Row():
        clean = image_view(label="x_0", type="pil", height=170, width=170)
        noisy = image_view(label="x_t ~ q(x_t | x_0)", type="pil", height=170, width=170, elem_id="forward-xt")
        plot = gr.LinePlot(x="t", y="coefficient", color="series", label="noise schedule", height=220)
    f_caption = gr.Markdown()
    for control in (digit, t, f_seed, f_model):
        control.change(lambda *a: forward_process(models, *a), [f_model, digit, t, f_seed], [clean, noisy, f_caption, plot],
                       trigger_mode="always_last", show_progress="hidden", api_visibility="private")

    gr.Markdown("### Clean up a noisy digit\n" + CLEAN_UP_EXPLANATION)
    with gr.Row():
        c_upload = gr.File(label="upload a digit (optional)", file_types=["image"], type="filepath", elem_id="clean-upload")
        c_digit = gr.Slider(0, 1999, value=7, step=1, label="held-out digit (without an upload)")
        c_noise = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="noise (std)")
        c_seed = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="noise seed")
        c_run = gr.Button("Add noise and rebuild", variant="primary", elem_id="clean-run")
    with gr.Row():
        c_clean = image_view(label="clean", type="pil", height=170, width=170)
        c_noisy = image_view(label="noisy input", type="pil", height=170, width=170, elem_id="clean-noisy")
        c_strip = image_view(label="rebuilt by each model, with its mean error vs clean (of 255)", type="pil",
                           elem_id="clean-strip")
    c_table = gr.Markdown(elem_id="clean-table")
    c_run.click(lambda *a: clean_up(models, *a), [c_upload, c_digit, c_noise, c_seed],
                [c_clean, c_noisy, c_strip, c_table], api_visibility="private")
    return {"load": (lambda *a: forward_process(models, *a), [f_model, digit, t, f_seed], [clean, noisy, f_caption, plot])}
