"""The Sample tab: a grid of samples from a chosen model, seed and temperature; clicking one picks it."""

from __future__ import annotations

import random

import gradio as gr

from .common import MAX_SEED, check_float, check_int, image_rows, make_pick, model_or_error, picked_latent, to_image
from .models import ModelCache

MAX_GRID = 64  # images in one grid: the server refuses more, whatever a client sends

EXPLANATION = (
    "Each image is the model's **decoder** applied to a **latent** vector drawn from the **prior** N(0, I) "
    "with the seed shown; the same seed always gives the same grid. **Temperature** scales the prior's "
    "standard deviation: below 1 trades variety for cleaner digits (the truncation trick, for GANs). "
    "Click a sample to pick it, then edit it or make it an end of an interpolation."
)


def grid_latents(models: ModelCache, name, seed, temperature, count):
    seed = check_int(seed, "seed", 0, MAX_SEED)
    temperature = check_float(temperature, "temperature", 0.0, 2.0)
    count = check_int(count, "number of samples", 1, MAX_GRID)
    model = model_or_error(models, name)
    return model, model.sample_latent(count, seed=seed, temperature=temperature), seed, temperature


def sample_grid(models: ModelCache, name, seed, temperature, count):
    """-> (gallery items, the seed used, a caption, the grid's recipe for picking)."""
    model, z, seed, temperature = grid_latents(models, name, seed, temperature, count)
    images = model.decode(z)
    gallery = [(to_image(image, 3), f"#{i}") for i, image in enumerate(images)]
    caption = f"**{name}** ({model.family}): {len(images)} samples, seed {seed}, temperature {temperature:g}. Click one to pick it."
    return gallery, seed, caption, {"model": name, "seed": seed, "temperature": temperature, "count": len(images)}


def pick_sample(models: ModelCache, grid, index):
    """The latent behind sample `index` of the grid, regenerated from the grid's seed."""
    if not isinstance(grid, dict) or not {"model", "seed", "temperature", "count"} <= grid.keys():
        raise gr.Error("draw samples first, then click one")
    model, z, seed, temperature = grid_latents(models, grid["model"], grid["seed"], grid["temperature"], grid["count"])
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
    with gr.Row():
        run = gr.Button("Sample", variant="primary", elem_id="sample-run")
        reseed = gr.Button("New seed", elem_id="sample-new-seed")
    caption = gr.Markdown(elem_id="sample-caption")
    gallery = gr.Gallery(label="samples (click to pick)", columns=8, height="auto", allow_preview=False, elem_id="sample-gallery")
    grid = gr.State(None)
    status = gr.Markdown(elem_id="sample-picked")
    with gr.Row():
        to_edit = gr.Button("Edit the picked sample", elem_id="sample-to-edit")
        to_a = gr.Button("Use as interpolation A", elem_id="sample-to-a")
        to_b = gr.Button("Use as interpolation B", elem_id="sample-to-b")

    inputs = [model, seed, temperature, count]
    outputs = [gallery, seed, caption, grid]
    run.click(lambda *a: sample_grid(models, *a), inputs, outputs, api_name="sample")
    reseed.click(new_seed, None, seed, api_visibility="private").then(lambda *a: sample_grid(models, *a), inputs, outputs, api_visibility="private")

    def on_select(grid_state, event: gr.SelectData):
        return pick_sample(models, grid_state, event.index)

    gallery.select(on_select, grid, [picked, status], api_visibility="private")
    return {"to_edit": to_edit, "to_a": to_a, "to_b": to_b, "status": status}
