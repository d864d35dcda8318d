"""The Edit tab: the picked latent, decoded large, moved along principal directions with sliders."""

from __future__ import annotations

import gradio as gr

from .common import check_float, image_rows, picked_latent, to_image
from .models import ModelCache
from .sample import pick_sample

N_SLIDERS = 6
SLIDER_RANGE = 3.0  # in standard deviations of each direction's score over prior samples

EXPLANATION = (
    "The picked **latent** z, decoded. Each slider moves z along one **principal direction**: the principal "
    "components of many decoded prior samples, regressed back onto the latents (as GANSpace does), in units "
    "of that direction's standard deviation. The percentage is the share of image variance the component "
    "explains. Directions are found without labels, so one slider may move several traits at once."
)


def direction_labels(models: ModelCache, pick) -> list[dict]:
    picked_latent(models, pick)  # refuse a malformed pick before touching its model's directions
    directions = models.directions(pick["model"])
    shares = directions.explained_variance.tolist()
    return [gr.update(label=f"PC{i + 1} ({shares[i]:.1%} of image variance)", value=0, interactive=True)
            if i < len(shares) else gr.update(label="(no direction)", value=0, interactive=False)
            for i in range(N_SLIDERS)]


def edited_latent(models: ModelCache, pick, amounts) -> tuple:
    model, z = picked_latent(models, pick)
    if len(amounts) > N_SLIDERS:
        raise gr.Error(f"at most {N_SLIDERS} slider amounts, got {len(amounts)}")
    amounts = [check_float(a, f"slider {i + 1}", -SLIDER_RANGE, SLIDER_RANGE) for i, a in enumerate(amounts)]
    directions = models.directions(pick["model"])
    for amount, vector, scale in zip(amounts, directions.vectors, directions.scale):
        z = z + amount * scale * vector
    return model, z


def edit_image(models: ModelCache, pick, *amounts):
    model, z = edited_latent(models, pick, amounts)
    return to_image(model.decode(z), 10)


def api_edit(models: ModelCache, model: str, seed: int, index: int, amounts: list[float], temperature: float = 1.0,
             count: int = 32) -> list[list[int]]:
    """Sample `index` of the grid of `count` drawn with (model, seed, temperature), as the Sample tab draws it,
    moved along its principal directions by `amounts` (up to 6 numbers in [-3, 3], in standard deviations).
    Returns the 28x28 image as rows of 0-255 values."""
    if not isinstance(amounts, (list, tuple)):
        raise gr.Error(f"amounts must be a list of numbers, got {type(amounts).__name__}")
    pick, _ = pick_sample(models, {"model": model, "seed": seed, "temperature": temperature, "count": count}, index)
    model_obj, z = edited_latent(models, pick, list(amounts))
    return image_rows(model_obj.decode(z))


def open_pick(models: ModelCache, pick):
    """Show the picked sample unedited, with its model's slider labels."""
    model, z = picked_latent(models, pick)
    return [to_image(model.decode(z), 10), f"Editing **{pick.get('label', pick['model'])}**.", *direction_labels(models, pick)]


def build(models: ModelCache, picked: gr.State):
    gr.Markdown(EXPLANATION)
    source = gr.Markdown("Pick a sample on the Sample tab first.", elem_id="edit-source")
    with gr.Row():
        image = gr.Image(label="edited", type="pil", height=300, width=300, elem_id="edit-image")
        with gr.Column():
            sliders = [gr.Slider(-SLIDER_RANGE, SLIDER_RANGE, value=0, step=0.1, label=f"PC{i + 1}",
                                 elem_id=f"edit-slider-{i}") for i in range(N_SLIDERS)]
            reset = gr.Button("Reset to the picked sample", elem_id="edit-reset")
    for slider in sliders:
        slider.input(lambda p, *a: edit_image(models, p, *a), [picked, *sliders], image,
                      trigger_mode="always_last", show_progress="hidden", api_visibility="private")
    reset.click(lambda p: open_pick(models, p), picked, [image, source, *sliders], api_visibility="private")
    return {"open": lambda: (lambda p: open_pick(models, p), picked, [image, source, *sliders])}
