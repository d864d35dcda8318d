"""The Sample tab: a grid of samples from a chosen model, seed and temperature.

Handlers are plain functions, tested without a browser; `build` lays out the components and wires them."""

from __future__ import annotations

import random

import gradio as gr

from ..base import MAX_SEED
from ..data import image_grid
from .models import ModelCache

MAX_GRID = 64  # images in one grid: the server refuses more, whatever a client sends

EXPLANATION = (
    "Each image is the model's **decoder** applied to a latent vector drawn from the **prior** N(0, I) with the "
    "seed shown. The same seed always gives the same grid. **Temperature** scales the prior's standard "
    "deviation: below 1 trades variety for cleaner digits (for GANs this is the truncation trick)."
)


def check_int(value, name: str, low: int, high: int) -> int:
    """Accept ints and integral floats (Gradio sends numbers as floats); refuse anything else clearly."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or int(value) != value:
        raise gr.Error(f"{name} must be a whole number, got {value!r}")
    if not low <= int(value) <= high:
        raise gr.Error(f"{name} must be between {low} and {high}, got {int(value)}")
    return int(value)


def check_float(value, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise gr.Error(f"{name} must be a number between {low} and {high}, got {value!r}")
    return float(value)


def sample_grid(models: ModelCache, name: str, seed, temperature, count):
    """-> (grid image, the seed used, a caption)."""
    seed = check_int(seed, "seed", 0, MAX_SEED)
    temperature = check_float(temperature, "temperature", 0.0, 2.0)
    count = check_int(count, "number of samples", 1, MAX_GRID)
    try:
        model = models.get(name)
    except ValueError as error:
        raise gr.Error(str(error)) from error
    images = model.decode(model.sample_latent(count, seed=seed, temperature=temperature))
    caption = f"{name} ({model.family}): {count} samples, seed {seed}, temperature {temperature:g}"
    return image_grid(images, ncols=8, scale=3), seed, caption


def new_seed() -> int:
    return random.randrange(0, 2**31)


def build(models: ModelCache) -> None:
    gr.Markdown(EXPLANATION)
    with gr.Row():
        model = gr.Dropdown(models.names, value=models.names[0] if models.names else None, label="model")
        seed = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="seed")
        temperature = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="temperature")
        count = gr.Slider(1, MAX_GRID, value=32, step=1, label="samples")
    with gr.Row():
        run = gr.Button("Sample", variant="primary")
        reseed = gr.Button("New seed")
    grid = gr.Image(label="samples", type="pil", elem_id="sample-grid")
    caption = gr.Markdown()
    inputs = [model, seed, temperature, count]
    run.click(lambda *a: sample_grid(models, *a), inputs, [grid, seed, caption], api_name="sample")
    reseed.click(new_seed, None, seed, api_name=False).then(lambda *a: sample_grid(models, *a), inputs, [grid, seed, caption], api_name=False)
