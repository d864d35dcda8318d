from __future__ import annotations

import gradio as gr
import numpy as np
import pytest

from explorer.ui import build_app
from explorer.ui.models import ModelCache
from explorer.ui.sample import MAX_GRID, sample_grid


@pytest.fixture(scope="module")
def models():
    return ModelCache("cpu", names=["vae-mnist", "dcgan-mnist"])


def test_same_seed_same_grid(models):
    a, seed, caption = sample_grid(models, "vae-mnist", 5, 1.0, 8)
    b, _, _ = sample_grid(models, "vae-mnist", 5.0, 1.0, 8)  # Gradio sends numbers as floats
    c, _, _ = sample_grid(models, "vae-mnist", 6, 1.0, 8)
    assert seed == 5 and "seed 5" in caption
    assert np.array_equal(np.asarray(a), np.asarray(b)) and not np.array_equal(np.asarray(a), np.asarray(c))


@pytest.mark.parametrize("name, seed, temperature, count, message", [
    ("vae-mnist", -1, 1.0, 8, "seed"),
    ("vae-mnist", 2**64, 1.0, 8, "seed"),
    ("vae-mnist", 1.5, 1.0, 8, "whole number"),
    ("vae-mnist", "7", 1.0, 8, "whole number"),
    ("vae-mnist", 0, float("nan"), 8, "temperature"),
    ("vae-mnist", 0, 50.0, 8, "temperature"),
    ("vae-mnist", 0, 1.0, 1_000_000, "number of samples"),
    ("vae-mnist", 0, 1.0, 0, "number of samples"),
    ("no-such-model", 0, 1.0, 8, "unknown model"),
    (None, 0, 1.0, 8, "unknown model"),
])
def test_bad_arguments_get_a_clear_error(models, name, seed, temperature, count, message):
    with pytest.raises(gr.Error, match=message):
        sample_grid(models, name, seed, temperature, count)


def test_models_are_loaded_once_and_shared(models):
    assert models.get("vae-mnist") is models.get("vae-mnist")


def test_app_builds(models):
    assert isinstance(build_app(models), gr.Blocks) and MAX_GRID == 64
