"""Every tab's handlers, called as the app calls them, on good and bad input (no browser)."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from explorer.ui import build_app, compare, denoise, edit, interpolate, sample
from explorer.ui.common import make_pick
from explorer.ui.models import ModelCache

import torch


@pytest.fixture(scope="module")
def models():
    return ModelCache("cpu", names=["vae-mnist", "dcgan-mnist", "flow-mnist", "ddpm-mnist"])


def pixels(image) -> np.ndarray:
    return np.asarray(image[0] if isinstance(image, tuple) else image)


# --- Sample -------------------------------------------------------------------------------------------------

def test_same_seed_same_grid_and_picking(models):
    a, seed, caption, grid = sample.sample_grid(models, "vae-mnist", 5, 1.0, 8)
    b, *_ = sample.sample_grid(models, "vae-mnist", 5.0, 1.0, 8)  # Gradio sends numbers as floats
    c, *_ = sample.sample_grid(models, "vae-mnist", 6, 1.0, 8)
    assert seed == 5 and "seed 5" in caption and len(a) == 8
    assert all(np.array_equal(pixels(x), pixels(y)) for x, y in zip(a, b))
    assert not all(np.array_equal(pixels(x), pixels(y)) for x, y in zip(a, c))
    pick, status = sample.pick_sample(models, grid, 3)
    model = models.get("vae-mnist")
    assert torch.equal(torch.tensor(pick["latent"]), model.sample_latent(8, seed=5)[3])
    assert "#3" in status


@pytest.mark.parametrize("name, seed, temperature, count, message", [
    ("vae-mnist", -1, 1.0, 8, "seed"), ("vae-mnist", 2**64, 1.0, 8, "seed"), ("vae-mnist", 1.5, 1.0, 8, "whole number"),
    ("vae-mnist", "7", 1.0, 8, "whole number"), ("vae-mnist", 0, float("nan"), 8, "temperature"),
    ("vae-mnist", 0, 50.0, 8, "temperature"), ("vae-mnist", 0, 1.0, 1_000_000, "number of samples"),
    ("vae-mnist", 0, 1.0, 0, "number of samples"), ("no-such-model", 0, 1.0, 8, "unknown model"), (None, 0, 1.0, 8, "unknown model"),
])
def test_sample_refuses_bad_arguments(models, name, seed, temperature, count, message):
    with pytest.raises(gr.Error, match=message):
        sample.sample_grid(models, name, seed, temperature, count)


@pytest.mark.parametrize("grid, index", [(None, 0), ({"model": "vae-mnist", "seed": 0, "temperature": 1.0, "count": 4}, 4),
                                         ({"model": "vae-mnist", "seed": 0, "temperature": 1.0, "count": 4}, -1)])
def test_picking_refuses_bad_indices(models, grid, index):
    with pytest.raises(gr.Error):
        sample.pick_sample(models, grid, index)


def test_models_are_loaded_once_and_shared(models):
    assert models.get("vae-mnist") is models.get("vae-mnist")


# --- Edit ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vae_pick(models):
    return make_pick("vae-mnist", models.get("vae-mnist").sample_latent(1, seed=4)[0], "vae seed 4")


def test_edit_moves_the_image_and_zero_is_the_pick(models, vae_pick):
    opened = edit.open_pick(models, vae_pick)
    zero = edit.edit_image(models, vae_pick, *[0.0] * edit.N_SLIDERS)
    moved = edit.edit_image(models, vae_pick, 2.0, *[0.0] * (edit.N_SLIDERS - 1))
    assert np.array_equal(pixels(opened[0]), pixels(zero))
    assert np.abs(pixels(moved).astype(int) - pixels(zero).astype(int)).mean() > 2
    assert "PC1" in opened[2]["label"] and "% of image variance" in opened[2]["label"]


@pytest.mark.parametrize("pick, amounts, message", [
    (None, [0.0], "Sample tab"),
    ({"model": "vae-mnist", "latent": [0.0] * 3}, [0.0], "16 finite numbers"),
    ({"model": "vae-mnist", "latent": [float("nan")] * 16}, [0.0], "finite"),
    ({"model": "vae-mnist", "latent": "abc"}, [0.0], "malformed"),
    ({"model": "gpt", "latent": [0.0] * 16}, [0.0], "unknown model"),
    ("VAE", [0.0], "Sample tab"),
])
def test_edit_refuses_bad_state(models, pick, amounts, message):
    with pytest.raises(gr.Error, match=message):
        edit.edit_image(models, pick, *amounts)


@pytest.mark.parametrize("amounts", [[99.0], [float("nan")], ["1"], [0.0] * 7])
def test_edit_refuses_bad_amounts(models, vae_pick, amounts):
    with pytest.raises(gr.Error):
        edit.edit_image(models, vae_pick, *amounts)


# --- Interpolate ----------------------------------------------------------------------------------------------

def test_interpolation_strip_gif_and_png(models):
    a, b = interpolate.endpoints_from_seeds(models, "dcgan-mnist", 1, 2)
    strip, gif, png, caption = interpolate.interpolate(models, a, b, "slerp", 6)
    frames = Image.open(gif)
    assert frames.n_frames == 2 * 6 - 2 and Image.open(png).size == strip.size  # there and back
    first = models.get("dcgan-mnist").decode(models.get("dcgan-mnist").sample_latent(1, seed=1))
    frames.seek(0)
    assert np.array_equal(np.asarray(frames.convert("L"))[::6, ::6], (first[0, 0].numpy() * 255).round().astype(np.uint8))
    assert "6 frames, slerp" in caption


def test_interpolation_refuses_mixed_or_bad_input(models):
    a, _ = interpolate.endpoints_from_seeds(models, "dcgan-mnist", 1, 2)
    b, _ = interpolate.endpoints_from_seeds(models, "vae-mnist", 1, 2)
    with pytest.raises(gr.Error, match="one model"):
        interpolate.interpolate(models, a, b, "slerp", 4)
    with pytest.raises(gr.Error, match="frames"):
        interpolate.interpolate(models, a, a, "slerp", 10_000)
    with pytest.raises(gr.Error, match="path"):
        interpolate.interpolate(models, a, a, "zigzag", 4)
    with pytest.raises(gr.Error, match="endpoint B"):
        interpolate.interpolate(models, a, None, "slerp", 4)
    with pytest.raises(gr.Error, match="seed A"):
        interpolate.endpoints_from_seeds(models, "vae-mnist", -5, 2)


# --- Denoise --------------------------------------------------------------------------------------------------

def test_denoise_streams_every_step_then_offers_scrubbing(models):
    outputs = list(denoise.run_steps(models, "ddpm-mnist", 0, "ddpm", 6, 0.0))
    assert len(outputs) == 6 + 1  # one per step, then the stored frames
    frames, slider = outputs[-1][3], outputs[-1][4]
    assert len(frames) == 6 and slider["maximum"] == 5
    assert "x_prev = (1/√α_t)" in outputs[0][2]
    x_t, x_0, text = denoise.scrub(frames, 2)
    assert np.array_equal(x_t, frames[2]["x_t"]) and "step 3 of 6" in text
    assert Image.open(denoise.export_gif(frames)).n_frames >= 6


def test_ddim_equation_and_flow_steps(models):
    ddim = list(denoise.run_steps(models, "ddpm-mnist", 0, "ddim", 3, 0.0))
    assert "x̂_0" in ddim[0][2] and len(ddim[-1][3]) == 3
    flow = list(denoise.run_steps(models, "flow-mnist", 0, "ddim", 3, 0.0))  # sampler options do not apply
    assert len(flow[-1][3]) == len(list(models.get("flow-mnist").decode_steps(models.get("flow-mnist").sample_latent(1))))


@pytest.mark.parametrize("name, seed, sampler, steps, eta, message", [
    ("ddpm-mnist", 0, "ddim", 10**9, 0.0, "steps"), ("ddpm-mnist", 0, "ddim", 0, 0.0, "steps"),
    ("ddpm-mnist", -3, "ddim", 10, 0.0, "seed"), ("ddpm-mnist", 0, "euler", 10, 0.0, "sampler"),
    ("ddpm-mnist", 0, "ddim", 10, 5.0, "eta"), ("vae-mnist", 0, "ddim", 10, 0.0, "one step"),
])
def test_denoise_refuses_bad_arguments(models, name, seed, sampler, steps, eta, message):
    with pytest.raises(gr.Error, match=message):
        next(denoise.run_steps(models, name, seed, sampler, steps, eta))


def test_scrub_and_export_need_a_run():
    for call in (lambda: denoise.scrub([], 0), lambda: denoise.export_gif([])):
        with pytest.raises(gr.Error, match="run the process first"):
            call()


def test_forward_process_matches_the_closed_form(models):
    clean, noisy, caption, plot = denoise.forward_process(models, "ddpm-mnist", 3, 999, 0)
    assert "t = 999" in caption and len(plot) == 2 * 1000
    assert np.asarray(noisy).std() > np.asarray(clean).std() * 0.5  # almost pure noise at t = T - 1
    with pytest.raises(gr.Error, match="no forward"):
        denoise.forward_process(models, "vae-mnist", 0, 10, 0)
    with pytest.raises(gr.Error, match="t must be"):
        denoise.forward_process(models, "ddpm-mnist", 0, 1000, 0)


# --- Compare --------------------------------------------------------------------------------------------------

def test_compare_streams_every_model(models):
    updates = list(compare.compare(models, 3))
    assert len(updates) == len(models.names)
    table = updates[-1][-1]
    assert all(f"| {name} |" in table for name in models.names)
    with pytest.raises(gr.Error, match="seed"):
        next(compare.compare(models, -1))


def test_app_builds(models):
    assert isinstance(build_app(models), gr.Blocks)
