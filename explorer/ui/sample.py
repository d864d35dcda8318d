"""The Sample tab: a grid of samples from a chosen model, seed and temperature; clicking one picks it, and the
pick's thumbnail stays beside its name.

Two lanes, as the Edit tab has: a grid of a model that draws in one pass (a VAE: milliseconds) runs in the Sample
button's own lane, and so does the grid drawn when the page loads; a grid of a model that draws slowly (the
PixelCNN pixel by pixel, the RBM's Gibbs chain, diffusion's 50 steps: minutes for 64 on a busy CPU) is long work
(common.LONG_WORK), streamed as the model's own generation process goes, with its progress in the caption, and a
Stop that frees its slot at once. Each click sends both events; the other lane's skips. The public /sample
endpoint returns the finished grid in one message, whatever the model."""

from __future__ import annotations

import contextlib
import functools
import random
import time

import gradio as gr
import torch
from PIL import Image

from ..data import display_scale
from .common import (LONG_WORK, MAX_SEED, check_choice, check_float, check_int, image_rows, image_view, make_pick,
                     model_or_error, picked_latent, to_image, watched)
from .models import ModelCache

MAX_GRID = 64  # images in one grid: the server refuses more, whatever a client sends
SCALE = 3  # a grid image shows as a 28x28 digit enlarged 3 times (84 px; data.display_scale); so does a pick's thumbnail
# A grid is long work when its model's decode runs the network many times (decode_is_slow) or its checkpoint's own
# evaluation measured sampling at this many ms an image or more: PixelCNN 427, RBM 285, diffusion 583, against at
# most 0.7 for the one-pass decoders and 4.5 for the flow (a 64-grid of those takes well under a second)
SLOW_MS_PER_IMAGE = 20.0
# Gradio cancels a generator only between two of its yields (it waits for the one in hand), and one step of a
# model's generation can take seconds (a PixelCNN row of 64 images: about 5 s where the whole grid takes 150 s), so
# a long grid's handler yields at least this often whatever the model is doing: Stop frees the slot within POLL_S
POLL_S = 0.2
# an unfinished grid is sent at most this often: every send encodes and caches each of its images
PARTIAL_EVERY_S = 2.0
ANY_DIGIT = "any"
DIGIT_CHOICES = (ANY_DIGIT, *map(str, range(10)))

EXPLANATION = (
    "Each image is the model's **decoder** applied to a **latent** vector drawn from the **prior** N(0, I) "
    "with the seed shown; the same seed always gives the same grid. **Temperature** scales the prior's "
    "standard deviation: below 1 trades variety for cleaner digits (the truncation trick, for GANs). "
    "Click a sample to pick it, then edit it or make it an end of an interpolation. A **conditional** model "
    "(the CVAE) is told which digit to draw: choose it, and the seed sets only the style."
)


def grid_latents(models: ModelCache, name, seed, temperature, count, digit=ANY_DIGIT):
    seed = check_int(seed, "seed", 0, MAX_SEED)
    temperature = check_float(temperature, "temperature", 0.0, 2.0)
    count = check_int(count, "samples", 1, MAX_GRID)  # named as the API names it, and the slider's label
    if isinstance(digit, int) and not isinstance(digit, bool):  # 3 from a client means "3"; true means nothing
        digit = str(digit)
    digit = check_choice(digit, "digit", DIGIT_CHOICES)
    model = model_or_error(models, name)
    z = model.sample_latent(count, seed=seed, temperature=temperature)
    if model.conditional and digit != ANY_DIGIT:  # the style stays the seed's; only the digit is chosen
        z = model.with_digit(z, int(digit))
    return model, z, seed, temperature


def gallery_items(images) -> list:
    return [(to_image(image, SCALE), f"#{i}") for i, image in enumerate(images)]


def grid_recipe(name, seed, temperature, count, digit) -> dict:
    """What pick_sample regenerates a grid's latents from: a few plain values, never images."""
    return {"model": name, "seed": seed, "temperature": temperature, "count": count, "digit": str(digit)}


def finished(model, name, images, seed, temperature, digit) -> tuple:
    """-> (gallery items, the seed used, a caption, the grid's recipe for picking)."""
    which = ("" if str(digit) == ANY_DIGIT else f", every one a {digit}" if model.conditional
             else " (the digit choice applies to conditional models only)")
    caption = (f"**{name}** ({model.family}): {len(images)} samples, seed {seed}, temperature {temperature:g}"
               f"{which}. Click one to pick it.")
    return gallery_items(images), seed, caption, grid_recipe(name, seed, temperature, len(images), digit)


def sample_grid(models: ModelCache, name, seed, temperature, count, digit=ANY_DIGIT):
    """-> (gallery items, the seed used, a caption, the grid's recipe for picking), in one go. `digit` applies to
    conditional models (it sets the digit they draw); others draw whatever their prior gives."""
    model, z, seed, temperature = grid_latents(models, name, seed, temperature, count, digit)
    return finished(model, name, model.decode(z), seed, temperature, digit)


def pick_sample(models: ModelCache, grid, index):
    """The latent behind sample `index` of the grid, regenerated from the grid's seed."""
    if not isinstance(grid, dict) or not {"model", "seed", "temperature", "count"} <= grid.keys():
        raise gr.Error("draw samples first, then click one")
    model, z, seed, temperature = grid_latents(models, grid["model"], grid["seed"], grid["temperature"], grid["count"],
                                               grid.get("digit", ANY_DIGIT))
    index = check_int(index, "sample index", 0, len(z) - 1)
    label = f"{grid['model']} seed {seed} #{index}"
    return make_pick(grid["model"], z[index], label), f"Picked **{label}**."


def api_decode(models: ModelCache, model: str, latent: list[float]) -> list[list[int]]:
    """Decode one latent: the image the model makes of it.

    Parameters:
        model: the model's name, e.g. "vae-mnist" (/gradio_api/info lists them all)
        latent: a flat list of the model's latent size of finite numbers within +-10000 (16 for vae-mnist, 64 for the GANs, 784 for flow-mnist and ddpm-mnist; a wrong length is refused with the size)
    Returns:
        image: an image as rows of pixels: for a grey model (the shipped digits, 28x28) each pixel a grey level from 0 (black) to 255 (white), for a colour model each an [r, g, b] triple
    """
    model = check_choice(model, "model", models.names)
    model_obj, z = picked_latent(models, {"model": model, "latent": latent}, "latent")
    return image_rows(model_obj.decode(z))


def new_seed() -> int:
    return random.randrange(0, 2**31)


def pick_thumbnail(models: ModelCache, pick) -> Image.Image:
    """The picked latent decoded and enlarged as the Sample grid shows it: for any tab to show beside a pick's name
    what is picked. One decode (models.decode remembers the last few); for a model that draws slowly that is
    seconds, so the Sample tab shows the clicked grid image itself instead (`pick_from_grid`)."""
    model, z = picked_latent(models, pick)
    return to_image(models.decode(pick["model"], z), SCALE)


def pick_from_grid(models: ModelCache, grid, shown, index):
    """A click on the grid: -> (the pick, "Picked NAME seed S #i", its thumbnail). The thumbnail is the clicked
    image as the gallery holds it (`shown`: Gradio's list of (file, caption), its files checked to be in Gradio's
    own cache), so nothing is decoded again; a gallery that does not hold this grid is decoded from the pick. A
    grid still being drawn can be picked from (its latents are known from the start): the thumbnail is then the
    image as far as it was drawn."""
    pick, status = pick_sample(models, grid, index)  # checks index against the grid
    item = shown[int(index)] if isinstance(shown, list) and len(shown) == grid["count"] else None
    if isinstance(item, (list, tuple)) and item and isinstance(item[0], str):
        try:
            channels, height, width = models.image_shape(pick["model"])
            scale = display_scale(height, width, SCALE)
            with Image.open(item[0]) as image:
                if image.size == (width * scale, height * scale):  # a grid image, not some other file of the cache
                    return pick, status, image.convert("L" if channels == 1 else "RGB")
        except (OSError, ValueError, Image.DecompressionBombError):
            pass  # not a readable image: decoded instead
    return pick, status, pick_thumbnail(models, pick)


def draws_slowly(models: ModelCache, name: str) -> bool:
    """Whether a grid of `name` is long work: its decode runs the network many times (decode_is_slow), or its
    checkpoint's own evaluation measured its sampling at SLOW_MS_PER_IMAGE or more. Read from the record, so no
    weights are loaded to ask; a model without a figure is judged by the flag alone."""
    if models.model_class(name).decode_is_slow:
        return True
    measured = models.record(name).get("metrics", {}).get("sampling_ms_per_image")
    return isinstance(measured, (int, float)) and measured >= SLOW_MS_PER_IMAGE


def in_long_lane(models: ModelCache, name) -> bool:
    """An unknown name goes to the quick lane, whose checks say what is wrong."""
    return isinstance(name, str) and name in models.names and draws_slowly(models, name)


def quick_grid(models: ModelCache, name, *args):
    """The quick lane's event (and the grid drawn on page load): sample_grid, for a model that draws in a pass."""
    if in_long_lane(models, name):
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    return sample_grid(models, name, *args)


def long_grid(models: ModelCache, name, *args):
    """The long-work lane's event: draw_grid, for a model that draws slowly."""
    if not in_long_lane(models, name):
        yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return
    yield from draw_grid(models, name, *args)


def watched_steps(steps):
    """The steps of a generation process, computed in a worker thread (common.watched), each handed on as it
    comes, and None whenever POLL_S passes without one, for the handler to yield (see POLL_S). Closing this
    generator (Gradio's cancel closes the handler) stops the worker after the step in hand."""
    def work(report):
        with torch.inference_mode():
            for step in steps:
                report(step, None)

    for kind, *payload in watched(work, every_s=0.0, poll_s=POLL_S):
        if kind == "progress":
            yield payload[0]
        elif kind == "waiting":
            yield None


def draw_grid(models: ModelCache, name, seed, temperature, count, digit=ANY_DIGIT):
    """sample_grid, streamed: yields (gallery, seed, caption, grid) as the model's generation process goes (its
    decode_steps: PixelCNN's rows, diffusion's steps, the RBM's chain), the caption after every step, the
    unfinished grid at most every PARTIAL_EVERY_S, and at least every POLL_S a yield; last, the finished grid,
    which is the last step's images, the very ones model.decode gives. The grid state is the recipe from the
    start (the latents are known, so a sample can be picked while it is drawn), with, until it is finished,
    "unfinished": {"what", "at": the step reached, "shown": the step the gallery shows}, which Stop reports."""
    model, z, seed, temperature = grid_latents(models, name, seed, temperature, count, digit)
    what = f"{len(z)} samples of **{name}** ({model.family}), seed {seed}"
    began = time.perf_counter()
    recipe = grid_recipe(name, seed, temperature, len(z), digit)
    progress = {"what": what, "at": "the start", "shown": None}
    yield [], seed, f"Drawing {what}: starting. **Stop** ends it.", recipe | {"unfinished": progress}
    last, sent = None, began
    with contextlib.closing(watched_steps(model.decode_steps(z))) as steps:
        for step in steps:
            if step is None:
                yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
                continue
            last, now = step, time.perf_counter()
            if step.index + 1 >= step.total:  # the finished grid follows
                continue
            where = f"step {step.index + 1} of {step.total} ({step.label})"
            caption = f"Drawing {what}: {where}, {now - began:.0f} s so far. **Stop** ends it."
            progress = {**progress, "at": where}
            if sent == began or now - sent >= PARTIAL_EVERY_S:  # the first step at once
                sent, progress = now, {**progress, "shown": where}
                yield gallery_items(step.image), gr.skip(), caption, recipe | {"unfinished": progress}
            else:  # a state is not sent to the page: only the caption travels
                yield gr.skip(), gr.skip(), caption, recipe | {"unfinished": progress}
    yield finished(model, name, last.image.clamp(0, 1), seed, temperature, digit)


def stopped_caption(grid):
    """The caption after a long grid's event was cancelled (Stop) or failed: that it was stopped and what the grid
    shows; nothing changes if it had not started drawing."""
    progress = grid.get("unfinished") if isinstance(grid, dict) else None
    if not (isinstance(progress, dict) and {"what", "at", "shown"} <= progress.keys()):
        return gr.skip()
    shown = (f"The grid shows them as they were at {progress['shown']}, unfinished" if progress["shown"]
             else "Nothing had been drawn yet")
    return f"**Stopped** at {progress['at']}: {progress['what']}. {shown}; press **Sample** to draw them whole."


def build(models: ModelCache, picked: gr.State):
    gr.Markdown(EXPLANATION)
    with gr.Row():
        model = gr.Dropdown(models.names, value=models.names[0] if models.names else None, label="model")
        seed = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="seed", elem_id="sample-seed")
        temperature = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="temperature")
        count = gr.Slider(1, MAX_GRID, value=32, step=1, label="samples", elem_id="sample-count")
        digit = gr.Dropdown(list(DIGIT_CHOICES), value=ANY_DIGIT, label="digit (conditional models)", elem_id="sample-digit")
    with gr.Row():
        run = gr.Button("Sample", variant="primary", elem_id="sample-run")
        reseed = gr.Button("New seed", elem_id="sample-new-seed")
        stop = gr.Button("Stop", variant="stop", elem_id="sample-stop")
    caption = gr.Markdown("Press **Sample** to draw a grid.", elem_id="sample-caption")
    # the pick above the grid, so a 64-image grid never pushes it out of sight
    with gr.Row():
        thumbnail = image_view(label="picked", type="pil", height=96, width=96, min_width=96, scale=0, show_label=False,
                               buttons=[], interactive=False, elem_id="sample-picked-image")
        with gr.Column(scale=1):
            status = gr.Markdown("Nothing picked yet: click a sample (until then the Edit tab holds #0 of the first grid).",
                                 elem_id="sample-picked")
            with gr.Row():
                to_edit = gr.Button("Edit the picked sample", elem_id="sample-to-edit")
                to_a = gr.Button("Use as interpolation A", elem_id="sample-to-a")
                to_b = gr.Button("Use as interpolation B", elem_id="sample-to-b")
    gallery = gr.Gallery(label="samples (click to pick)", format="png", columns=8, height="auto", allow_preview=False, elem_id="sample-gallery")
    grid = gr.State(None)

    inputs = [model, seed, temperature, count, digit]
    outputs = [gallery, seed, caption, grid]
    quick = functools.partial(quick_grid, models)
    private = dict(api_visibility="private")
    run.click(quick, inputs, outputs, **private)
    drawing = [run.click(lambda *a: (yield from long_grid(models, *a)), inputs, outputs, **private, **LONG_WORK)]
    reseeded = reseed.click(new_seed, None, seed, **private)
    reseeded.then(quick, inputs, outputs, **private)
    drawing.append(reseeded.then(lambda *a: (yield from long_grid(models, *a)), inputs, outputs, **private, **LONG_WORK))
    # Stop only cancels; the caption is written by the long event's own .failure step, which the page runs once the
    # cancel has gone through. Written by Stop's event, a step the generator yielded before the cancel landed could
    # arrive after it and undo it.
    stop.click(None, None, None, cancels=drawing, **private)
    for event in drawing:
        event.failure(stopped_caption, grid, caption, show_progress="hidden", **private)
    # The public endpoint, with no trigger on the page: the finished grid in one message for every model (a stream
    # would hand gradio_client the unfinished grids too). Gradio picks a lane per event, not per call, so it keeps
    # the lane /sample always had, its own.
    gr.on([], functools.partial(sample_grid, models), inputs, outputs, api_name="sample")

    def on_select(grid_state, shown, event: gr.SelectData):
        return pick_from_grid(models, grid_state, shown, event.index)

    gallery.select(on_select, [grid, gallery], [picked, status, thumbnail], **private)
    return {"to_edit": to_edit, "to_a": to_a, "to_b": to_b, "status": status, "load": (quick, inputs, outputs)}
