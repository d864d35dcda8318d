"""The Denoise tab: a model's generation process streamed step by step (x_t beside the predicted x_0 for
diffusion), watched with a status line, stoppable, scrubbable afterwards and exportable as a GIF; and the
forward process q(x_t | x_0) on a real digit.

The run's two pictures travel inside the stream's own messages (see `inline_image`), not as files the page
fetches afterwards: that is what keeps the panels in step with the caption on a busy server."""

from __future__ import annotations

import base64
import io
import time

import gradio as gr
import imageio.v3 as iio
import numpy as np
import pandas as pd
import torch
from gradio.data_classes import ImageData
from PIL import Image

from ..data import DataError, display_scale
from ..domains import domain_of
from ..models.autoencoder import add_pixel_noise
from .common import (LONG_WORK, MAX_SEED, check_choice, check_float, check_int, export_folder, image_view, labelled_strip,
                     model_or_error, one_uint8, time_left, to_image)
from .edit import digit_from_upload
from .models import ModelCache

EXPLANATION = (
    "Diffusion generates by starting from pure noise **x_T** and removing **predicted noise** ε̂ step by step. "
    "Left: the current **x_t**; right: the model's **predicted x_0**, its guess of the finished digit at that "
    "step. **DDPM** adds fresh noise at each step (Algorithm 2 of Ho et al. 2020); **DDIM** with eta = 0 is "
    "deterministic. For a flow, each step is the image after one more **coupling layer** is inverted; "
    "**PixelCNN** paints the canvas one pixel at a time in raster order (shown a row at a time), each pixel drawn "
    "from its distribution given the pixels before it; an **RBM** runs its Gibbs chain, alternating "
    "h ~ p(h|v) and v ~ p(v|h), and its free energy F(v) falls as the chain finds a digit. "
    "**Stop** ends a run where it is, keeping the steps that arrived."
)
PRESET_EXPLANATION = (
    "**DDPM vs DDIM** runs one seed twice: DDIM in 50 deterministic steps, then DDPM through every one of the "
    "model's training timesteps, each adding fresh noise, which takes about twenty times as long for a digit as "
    "clean (a different digit: DDPM's noise sends the same start elsewhere)."
)
CLEAN_UP_EXPLANATION = (
    "A digit (your upload, or a held-out one) with Gaussian noise added, and what each model with an encoder "
    "makes of it: decode(encode(noisy)). The **denoising autoencoder** was trained on exactly this corruption "
    "(noise 0.5) and rebuilds the clean digit; the plain autoencoder and the VAE only ever saw clean digits; the "
    "**flow** is invertible, so it gives the noisy image back unchanged. The error is against the clean digit."
)
FORWARD_EXPLANATION = (
    "The forward process adds Gaussian noise to a real digit: q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I). "
    "The plot shows how much signal (√ᾱ_t) and noise (√(1 − ᾱ_t)) x_t holds at each t, and where the t chosen is."
)
SIGNAL, NOISE, CURRENT_T = "signal √ᾱ_t", "noise √(1 − ᾱ_t)", "the t shown"
PRESET_DDIM_STEPS = 50  # DDIM's usual budget (Song et al. 2021 report 50-100 steps close to the full chain)
# A run sends the page a message (the newest step, the status, the frames stored) at most this often, and at
# its last step. Sent every step (and every message is a redraw of both panels, the caption, the status and the
# scrubber), a 1000-step DDPM run kept the page drawing 1,008 captions and stalled it: 150 ms between its frames
# at the 95th percentile against 33 ms paced (237 captions), and with two such pages open a Stop reached the
# server after the run had ended. Gradio cancels a generator between two of its yields, so this is also how
# soon a Stop takes effect: within SHOW_EVERY_S and one step.
SHOW_EVERY_S = 0.1
MAX_STEPS = 1000  # the steps slider's top, the API's documented range (a diffusion model allows its own train_timesteps)


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
    """The sampler's options for a model that takes them, else {}; every argument is checked either way (a model
    without options ignores them, but a client that sends nonsense is told, as the API documents the ranges)."""
    seed = check_int(seed, "seed", 0, MAX_SEED)
    sampler = check_choice(sampler, "sampler", ("ddpm", "ddim"))
    most_steps = model.train_timesteps if model.has_sampler_options else MAX_STEPS
    steps = check_int(steps, "steps", 1, most_steps)
    eta = check_float(eta, "eta", 0.0, 1.0)
    if not model.has_sampler_options:
        return {}
    return {"sampler": sampler, "steps": steps, "eta": eta, "seed": seed}


def run_name(name: str, seed: int, options: dict) -> str:
    """The run in a few words, as the export's file name: "ddim-50-steps-seed-0", "flow-mnist-seed-3"."""
    if not options:
        return f"{name}-seed-{seed}"
    eta = f"-eta-{options['eta']:g}" if options["sampler"] == "ddim" and options["eta"] else ""
    return f"{options['sampler']}-{options['steps']}-steps{eta}-seed-{seed}"


def frames_of(models: ModelCache, name, seed, sampler, steps, eta):
    """Check the arguments, then yield each step of the model's generation process as a compact frame: x_t and the
    predicted x_0 at the model's own size as uint8 (784 bytes each; a 1000-step run keeps 1.6 MB in the user's
    state rather than 100 MB of enlarged pictures), the step's caption, and what the run is."""
    model = model_or_error(models, name)
    if not model.multi_step:
        raise gr.Error(f"{name} makes an image in one step; choose one of: {', '.join(models.names_where('multi_step'))}")
    options = checked_options(model, seed, sampler, steps, eta)
    seed = int(seed)
    doing = options["sampler"].upper() if options else name  # what the status line says is running
    run = run_name(name, seed, options)
    z = model.sample_latent(1, seed=seed, temperature=model.default_temperature)
    for step in model.decode_steps(z, **options):
        yield {"x_t": one_uint8(step.image), "x_0": one_uint8(step.extras.get("predicted x0", step.image)),
               "text": equation(step, options.get("sampler")), "total": step.total, "doing": doing, "run": run}


def scrub_range(count: int, interactive: bool) -> dict:
    """The scrubber over the `count` frames stored so far, at the newest. It counts from 1, as the caption's
    "step N of M" does, so the number beside it is the step shown. (Gradio refuses a slider whose minimum is not
    below its maximum, so a single stored step shows as 0 to 1, with nothing to scrub.)"""
    return gr.update(minimum=1 if count > 1 else 0, maximum=count, value=count, interactive=interactive and count > 1)


def run_steps(models: ModelCache, name, seed, sampler, steps, eta):
    """Stream (x_t, predicted x_0, equation, stored frames, scrubber, status): the newest step at most every
    SHOW_EVERY_S and at the last step, then once more with the scrubber free to move.

    A generator whose yields are never more than SHOW_EVERY_S of work (and one step) apart: Gradio can cancel it
    only between two yields, so a Stop ends the run and frees its slot of the long-work lane that soon. Each yield
    holds every frame made so far, as a new tuple: the state Gradio keeps from the last yield before a Stop is
    what the page was last sent, and no step under way when the cancel came changes it."""
    frames, began, sent = (), time.perf_counter(), float("-inf")
    for frame in frames_of(models, name, seed, sampler, steps, eta):
        frames += (frame,)
        n, total, now = len(frames), frame["total"], time.perf_counter()
        if now - sent < SHOW_EVERY_S and n < total:
            continue  # stored: it goes with the next message
        sent, left = now, time_left(n, total, now - began)
        status = f"**{frame['doing']}** step {n} of {total}" + (f", {left}" if left else "")
        yield *displayed(frame), frames, scrub_range(n, interactive=False), status
    # no time taken here: the same call gives the same final message (tests/test_api.py compares two)
    status = f"**{frame['doing']}**: all {len(frames)} steps done. Scrub through them below, or export them as a GIF."
    yield *displayed(frame), frames, scrub_range(len(frames), interactive=True), status


def ended(frames):
    """After a run has ended, however (Gradio runs this once the run's event is over, a cancelled one included):
    where a Stop cut it short, say so, show the last frame that arrived and let the scrubber cover the frames
    stored; a finished run has said all this itself, so nothing changes. -> (x_t, x_0, equation, scrubber, status)."""
    frames = checked_frames(frames, "stop it")
    if not frames or len(frames) >= frames[-1]["total"]:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
    last, n = frames[-1], len(frames)
    status = (f"**Stopped** at step {n} of {last['total']} ({last['doing']}): the {n} steps that arrived are "
              "stored; scrub through them below, or export them as a GIF.")
    return *displayed(last), scrub_range(n, interactive=True), status


def checked_frames(frames, what: str) -> tuple:
    """The stored frames as this tab stores them (a sequence of frame dicts), else a message saying what to do."""
    if not isinstance(frames, (list, tuple)) or not all(isinstance(f, dict) and {"x_t", "x_0", "text"} <= f.keys()
                                                        for f in frames):
        raise gr.Error(f"the stored steps are malformed: run the process again, then {what}")
    return tuple(frames)


def held_result(frames) -> dict:
    """The preset's first half kept beside the second: the finished image of the run in `frames` (DDIM's), shown in
    its own panel while DDPM runs in the main two, so the pair ends side by side (teacher review: the preset left
    only DDPM's digit on the page). -> an update of that panel."""
    frames = checked_frames(frames, "hold it")
    if not frames or len(frames) < frames[-1]["total"]:  # a stopped run ends the pair: nothing to hold
        return gr.update(visible=False)
    last = frames[-1]
    return gr.update(value=inline_image(enlarged(last["x_t"]), "held-result"), visible=True,
                     label=f"{last['doing']}, {last['total']} steps: its result, held")


def enlarged(image: np.ndarray, scale: int = 8) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 shown as large as a digit enlarged `scale` times (data.display_scale)."""
    scale = display_scale(image.shape[0], image.shape[1], scale)
    return image.repeat(scale, axis=0).repeat(scale, axis=1)


def displayed(frame: dict) -> tuple[np.ndarray, np.ndarray, str]:
    """A stored frame as the panels show it: x_t and x_0 enlarged, pixels kept sharp, and its caption."""
    return enlarged(frame["x_t"]), enlarged(frame["x_0"]), frame["text"]


def scrub(frames, step):
    """The stored step `step` (1 to the number stored, as the caption counts) -> (x_t, x_0, equation)."""
    frames = checked_frames(frames, "scrub")
    if not frames:
        raise gr.Error("run the process first, then scrub through its steps")
    step = check_int(step, "step", 1, len(frames))
    return displayed(frames[step - 1])


def export_gif(frames) -> str:
    """The stored steps as an animated GIF (x_t beside x_0), named after the run: "ddim-50-steps-seed-0.gif"."""
    frames = checked_frames(frames, "export it")
    if not frames:
        raise gr.Error("run the process first, then export it")
    last = frames[-1]
    stem = last["run"] if len(frames) >= last["total"] else f"{last['run']}-stopped-at-{len(frames)}"
    if len(frames) > 200:  # keep the file small: an even subsample, always with the last step
        keep = np.unique(np.linspace(0, len(frames) - 1, 200).round().astype(int))
        frames = [frames[i] for i in keep]
    pictures = [np.concatenate([x_t, np.full((x_t.shape[0], 8, *x_t.shape[2:]), 40, np.uint8), x_0], axis=1)
                for x_t, x_0, _ in map(displayed, frames)]
    path = export_folder() / f"{stem}.gif"
    iio.imwrite(path, pictures + [pictures[-1]] * 10, duration=60, loop=0)
    return str(path)


def inline_image(picture: np.ndarray, name: str) -> ImageData:
    """A picture for a gr.Image carried inside the event's message itself, as a data: URL, not as a file in
    Gradio's cache that the page then fetches.

    Why: as files, each streamed picture was a request of its own to the server the run keeps busy (two a step,
    six at a time per page). In a page slowed 4x on the loaded 2-core machine the requests fell behind the stream:
    74 of a 1000-step run's 999 frames were ever drawn, 1 of a 30-step run's; and in a page slowed 10x, 1 run in 6
    ended with its caption at "step M of M" while both panels (which end on the same picture) still had no image,
    their last request not yet answered: the broken panels the teacher saw, fine again once scrubbed. Inline, a
    picture is drawn with the message that brings it, the panels cannot lag the caption, and nothing is written
    to the cache for the CacheSweeper to age. A digit's PNG is 0.3-2 KB. (Gradio passes an image with a URL and
    no path through untouched, as it does its own SVGs.)"""
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="png")
    return ImageData(url="data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"),
                     orig_name=f"{name}.png", mime_type="image/png", size=buffer.tell())


def inline(outputs: tuple, names: tuple[str, str] = ("x_t", "predicted-x_0")) -> tuple:
    """A handler's outputs with its two pictures (the numpy arrays) made inline images; the rest as they are."""
    pictures = iter(names)
    return tuple(inline_image(value, next(pictures)) if isinstance(value, np.ndarray) else value for value in outputs)


def sampler_controls(models: ModelCache, name):
    """Sampler, steps and eta shown only for a model whose decode_steps takes them (has_sampler_options)."""
    name = check_choice(name, "model", models.names_where("multi_step"))
    shown = name in models.names_where("has_sampler_options")  # a class flag: no weights are loaded to ask
    return gr.update(visible=shown), gr.update(visible=shown), gr.update(visible=shown)


def preset(models: ModelCache, name, sampler: str):
    """The controls for one half of "DDPM vs DDIM": the model shown if it has sampler options (else the first
    that has), `sampler` with its steps (DDIM 50, DDPM every training timestep), eta 0. -> (model, sampler,
    steps, eta) values."""
    name = check_choice(name, "model", models.names_where("multi_step"))
    sampler = check_choice(sampler, "sampler", ("ddpm", "ddim"))
    offered = models.names_where("has_sampler_options")
    if not offered:
        raise gr.Error("no model here has sampler options (DDPM and DDIM are diffusion samplers)")
    name = name if name in offered else offered[0]
    timesteps = model_or_error(models, name).train_timesteps
    return name, sampler, timesteps if sampler == "ddpm" else min(PRESET_DDIM_STEPS, timesteps), 0.0


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
        clean, source = domain_of("digits").heldout()[index : index + 1], f"held-out digit {index}"
    noisy = add_pixel_noise(clean, noise, torch.Generator().manual_seed(seed))
    rebuilds, errors = [], {}
    for name in models.names_where("encode_is_fast"):
        if models.image_shape(name) != tuple(clean.shape[1:]):  # a model of other images has nothing to rebuild
            continue
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


def clean_image(models: ModelCache, name: str, index: int) -> torch.Tensor:
    """Image `index` of the model's held-out data (1, C, H, W); for a model whose domain has none (one opened
    from elsewhere), its own deterministic sample from seed `index`."""
    model = models.get(name)
    domain = domain_of(model)
    if domain.has_heldout:
        return domain.heldout()[index : index + 1]
    return models.decode(name, model.sample_latent(1, seed=index, temperature=model.default_temperature)).cpu()


def forward_process(models: ModelCache, name, digit, t, seed, upload=None):
    """-> (x_0, x_t ~ q(x_t | x_0), caption, schedule plot data: the two coefficients over t, and a vertical
    line at the t shown). x_0 is the upload, prepared as the model's domain prepares one, if there is one; else
    held-out image `digit` of the model's data (or its own sample, for data the explorer does not hold)."""
    model = model_or_error(models, name)
    if not model.has_forward_process:
        raise gr.Error(f"{name} has no forward noising process; choose one of: {', '.join(models.names_where('has_forward_process'))}")
    digit = check_int(digit, "held-out digit", 0, 1999)
    timesteps = model.train_timesteps
    t = check_int(t, "t", 0, timesteps - 1)
    seed = check_int(seed, "seed", 0, MAX_SEED)
    if upload is not None:
        try:
            picture = domain_of(model).prepare_upload(upload, model.image_shape)
        except DataError as error:
            raise gr.Error(f"cannot use this upload: {error}") from error
        x0 = picture.unsqueeze(0).to(model.device) * 2 - 1
    else:
        x0 = clean_image(models, name, digit).to(model.device) * 2 - 1
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed)).to(model.device)
    with torch.inference_mode():
        x_t = model.q_sample(x0, torch.tensor([t], device=model.device), noise)
    abar = model.alphas_cumprod.cpu()
    source = (" (x_0: your upload)" if upload is not None else "" if domain_of(model).has_heldout
              else f" (x_0: the model's own sample, seed {digit})")
    caption = f"t = {t}: x_t = {abar[t].sqrt():.4f} · x_0 + {(1 - abar[t]).sqrt():.4f} · ε{source}"
    ts = torch.arange(timesteps)
    plot = pd.DataFrame({"t": torch.cat([ts, ts, torch.tensor([t, t])]).numpy(),
                         "coefficient": torch.cat([abar.sqrt(), (1 - abar).sqrt(), torch.tensor([0.0, 1.0])]).numpy(),
                         "series": [SIGNAL] * timesteps + [NOISE] * timesteps + [CURRENT_T] * 2})
    return to_image((x0 + 1) / 2, 6), to_image(((x_t + 1) / 2).clamp(0, 1), 6), caption, plot


def forward_for_model(models: ModelCache, name, digit, t, seed, upload=None):
    """Another model chosen for the forward process: its t slider spans that model's own timesteps (an opened
    pipeline may have other than 1000), t kept where it fits -> (forward_process's outputs, the slider)."""
    model = model_or_error(models, name)
    if not model.has_forward_process:
        return forward_process(models, name, digit, t, seed, upload)  # which says why not
    last = model.train_timesteps - 1
    t = min(check_int(t, "t", 0, MAX_STEPS), last)
    return (*forward_process(models, name, digit, t, seed, upload), gr.update(maximum=last, value=t))


def build(models: ModelCache):
    gr.Markdown(EXPLANATION)
    stepping = models.names_where("multi_step")
    sampling = models.names_where("has_sampler_options")
    first = (sampling or stepping or [None])[0]
    with_options = first in sampling
    with gr.Row():
        model = gr.Dropdown(stepping, value=first, label="model", elem_id="denoise-model")
        seed = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="seed")
        sampler = gr.Radio(["ddpm", "ddim"], value="ddim", label="sampler", visible=with_options, elem_id="denoise-sampler")
        steps = gr.Slider(1, MAX_STEPS, value=50, step=1, label="steps", visible=with_options, elem_id="denoise-steps")
        eta = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="eta (DDIM)", visible=with_options, elem_id="denoise-eta")
        with gr.Column(min_width=160):
            run = gr.Button("Run", variant="primary", elem_id="denoise-run")
            stop = gr.Button("Stop", variant="stop", elem_id="denoise-stop")
    with gr.Row():
        compare_samplers = gr.Button("DDPM vs DDIM", size="sm", scale=0, min_width=160, elem_id="denoise-preset", elem_classes=["preset"],
                                     visible=bool(sampling))
        gr.Markdown(PRESET_EXPLANATION, visible=bool(sampling))
    status = gr.Markdown(elem_id="denoise-status")
    with gr.Row():
        x_t = image_view(label="x_t", type="numpy", height=240, width=240, elem_id="denoise-xt")
        x_0 = image_view(label="predicted x_0", type="numpy", height=240, width=240, elem_id="denoise-x0")
        held = image_view(label="the first run's result, held", type="numpy", height=240, width=240, visible=False,
                          elem_id="denoise-held")
    text = gr.Markdown(elem_id="denoise-equation")
    frames = gr.State(())
    scrubber = gr.Slider(0, 1, value=0, step=1, label="scrub through the stored steps", interactive=False, elem_id="denoise-scrub")
    # each at least 320 px wide, so a narrow page stacks them rather than squeezing the file list, which cuts a
    # name it has no room for down to its ending (the teacher saw "d..png")
    with gr.Row():
        with gr.Column(min_width=320):
            export = gr.Button("Export the steps as a GIF", elem_id="denoise-export")
            gif = gr.File(label="GIF", elem_id="denoise-gif")
        gif_shown = image_view(label="the GIF, playing", type="filepath", height=260, min_width=320,
                               elem_id="denoise-gif-shown")

    def streamed(*args):  # the handler's pictures travel inside its messages: see inline_image
        for outputs in run_steps(models, *args):
            yield inline(outputs)

    def ended_shown(stored):
        return inline(ended(stored))

    controls = [model, seed, sampler, steps, eta]
    shown = [x_t, x_0, text, frames, scrubber, status]
    # postprocess=False: the pictures arrive as inline images already (the other outputs need no postprocessing)
    def run_of_its_own(*args):  # its first message also hides the preset's held result (a separate event to
        for i, outputs in enumerate(streamed(*args)):  # hide it was answered only once the run had ended)
            yield *outputs, gr.update(visible=False) if i == 0 else gr.skip()

    running = run.click(run_of_its_own, controls, [*shown, held], api_name="denoise", postprocess=False,
                        show_progress="minimal", **LONG_WORK)
    # the preset: DDIM's controls set and run, then (only if it finished: a Stop ends the pair) DDPM's
    ddim_set = compare_samplers.click(lambda m: (*preset(models, m, "ddim"), gr.update(visible=False)), model,
                                      [model, sampler, steps, eta, held], api_visibility="private")
    ddim_run = ddim_set.success(streamed, controls, shown, postprocess=False, show_progress="minimal",
                                api_visibility="private", **LONG_WORK)
    ddim_held = ddim_run.success(held_result, frames, held, postprocess=False, show_progress="hidden",
                                 api_visibility="private")
    ddpm_set = ddim_held.success(lambda m: preset(models, m, "ddpm"), model, [model, sampler, steps, eta],
                                 api_visibility="private")
    ddpm_run = ddpm_set.success(streamed, controls, shown, postprocess=False, show_progress="minimal",
                                api_visibility="private", **LONG_WORK)
    # Stop cancels whichever run is going; each run's `then` (which Gradio's front end fires once the server has
    # ended a cancelled event too) writes where it stopped. Written by Stop's own click instead, it would race the
    # run: a step under way when the cancel came could land after it.
    stop.click(None, cancels=[running, ddim_run, ddpm_run], api_visibility="private")
    # a Run replaces the preset's pair if it is going. (The preset cannot end a run the same way: its own click's
    # cancel also caught the DDIM run it had just started.)
    run.click(None, cancels=[ddim_run, ddpm_run], api_visibility="private")
    for event in (running, ddim_run, ddpm_run):
        event.then(ended_shown, frames, [x_t, x_0, text, scrubber, status], postprocess=False, show_progress="hidden",
                   api_visibility="private")
    for button in (run, compare_samplers):  # a new run's page holds no export of the last one
        button.click(lambda: (None, None), None, [gif, gif_shown], show_progress="hidden", api_visibility="private")
    scrubber.input(lambda *a: inline(scrub(*a)), [frames, scrubber], [x_t, x_0, text], postprocess=False,
                   trigger_mode="always_last", show_progress="hidden", api_visibility="private")
    model.change(lambda m: sampler_controls(models, m), model, [sampler, steps, eta], api_visibility="private")

    def exported(stored):
        path = export_gif(stored)
        return path, path  # one file, shown twice: the link downloads it, the image plays it

    export.click(exported, frames, [gif, gif_shown], api_visibility="private")

    gr.Markdown("### The forward process\n" + FORWARD_EXPLANATION)
    with gr.Row():
        f_model = gr.Dropdown(sampling, value=sampling[0] if sampling else None, label="model")
        digit = gr.Slider(0, 1999, value=0, step=1, label="held-out digit")
        t = gr.Slider(0, 999, value=250, step=1, label="t", elem_id="forward-t")
        f_seed = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="noise seed")
        f_upload = gr.File(label="or noise your own image", file_types=["image"], type="filepath", elem_id="forward-upload")
    with gr.Row():
        clean = image_view(label="x_0", type="pil", height=170, width=170)
        noisy = image_view(label="x_t ~ q(x_t | x_0)", type="pil", height=170, width=170, elem_id="forward-xt")
        # the legend names the series; the third is a vertical line at the t shown (colours fixed, so it stays grey).
        # No `height`: with one, Gradio's plot clips its own legend (it sits below the axis, outside that height)
        plot = gr.LinePlot(x="t", y="coefficient", color="series", label="noise schedule", color_title="",
                           color_map={SIGNAL: "#1f77b4", NOISE: "#ff7f0e", CURRENT_T: "#7f7f7f"},
                           x_title="t", y_title="coefficient", elem_id="forward-schedule", min_width=320)
    f_caption = gr.Markdown()
    for control in (digit, t, f_seed, f_upload):
        control.change(lambda *a: forward_process(models, *a), [f_model, digit, t, f_seed, f_upload],
                       [clean, noisy, f_caption, plot], trigger_mode="always_last", show_progress="hidden",
                       api_visibility="private")
    f_model.change(lambda *a: forward_for_model(models, *a), [f_model, digit, t, f_seed, f_upload],
                   [clean, noisy, f_caption, plot, t], trigger_mode="always_last", show_progress="hidden",
                   api_visibility="private")

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
