"""The Sample tab: a grid of samples from a chosen model, seed and temperature; clicking one picks it."""

from __future__ import annotations

import random

import gradio as gr

from .common import MAX_SEED, check_choice, check_float, check_int, image_rows, make_pick, model_or_error, picked_latent, to_image
from .models import ModelCache

MAX_GRID = 64  # images in one grid: the server refuses more, whatever a client sends
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
    count = check_int(count, "number of samples", 1, MAX_GRID)
    digit = check_choice(str(digit), "digit", DIGIT_CHOICES)
    model = model_or_error(models, name)
    z = model.sample_latent(count, seed=seed, temperature=temperature)
    if model.conditional and digit != ANY_DIGIT:  # the style stays the seed's; only the digit is chosen
        z = model.with_digit(z, int(digit))
    return model, z, seed, temperature


def sample_grid(models: ModelCache, name, seed, temperature, count, digit=ANY_DIGIT):
    """-> (gallery items, the seed used, a caption, the grid's recipe for picking). `digit` applies to
    conditional models (it sets the digit they draw); others draw whatever their prior gives."""
    model, z, seed, temperature = grid_latents(models, name, seed, temperature, count, digit)
    images = model.decode(z)
    gallery = [(to_image(image, 3), f"#{i}") for i, image in enumerate(images)]
    which = ("" if str(digit) == ANY_DIGIT else f", every one a {digit}" if model.conditional
             else " (the digit choice applies to conditional models only)")
    caption = (f"**{name}** ({model.family}): {len(images)} samples, seed {seed}, temperature {temperature:g}"
               f"{which}. Click one to pick it.")
    return gallery, seed, caption, {"model": name, "seed": seed, "temperature": temperature, "count": len(images),
                                    "digit": str(digit)}


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
    """Decode one latent, given as a flat list of numbers (its length is the model's latent size); returns the
    28x28 image as rows of 0-255 values."""
    model_obj, z = picked_latent(models, {"model": model, "latent": latent, "label": "latent"}, "the latent")
    return image_rows(model_obj.decode(z))


def new_seed() -> int:
    return random.randrange(0, 2**31)


def build(models: ModelCache, picked: gr.State):
    gr.Markdown(EXPLANATION)
    with gr.Row():
        model = gr.Dropdown(models.names, value=models.names[0] if models.names else None, label="model")
        seed = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="seed")
        temperature = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="temperature")
        count = gr.Slider(1, MAX_GRID, value=32, step=1, label="samples")
        digit = gr.Dropdown(list(DIGIT_CHOICES), value=ANY_DIGIT, label="digit (conditional models)", elem_id="sample-digit")
    with gr.Row():
        run = gr.Button("Sample", variant="primary", elem_id="sample-run")
        reseed = gr.Button("New seed", elem_id="sample-new-seed")
    caption = gr.Markdown(elem_id="sample-caption")
    gallery = gr.Gallery(label="samples (click to pick)", format="png", columns=8, height="auto", allow_preview=False, elem_id="sample-gallery")
    grid = gr.State(None)
    status = gr.Markdown(elem_id="sample-picked")
    with gr.Row():
        to_edit = gr.Button("Edit the picked sample", elem_id="sample-to-edit")
        to_a = gr.Button("Use as interpolation A", elem_id="sample-to-a")
        to_b = gr.Button("Use as interpolation B", elem_id="sample-to-b")

    inputs = [model, seed, temperature, count, digit]
    outputs = [gallery, seed, caption, grid]
    run.click(lambda *a: sample_grid(models, *a), inputs, outputs, api_name="sample")
    reseed.click(new_seed, None, seed, api_visibility="private").then(lambda *a: sample_grid(models, *a), inputs, outputs, api_visibility="private")

    def on_select(grid_state, event: gr.SelectData):
        return pick_sample(models, grid_state, event.index)

    gallery.select(on_select, grid, [picked, status], api_visibility="private")
    return {"to_edit": to_edit, "to_a": to_a, "to_b": to_b, "status": status}
