"""The conditional VAE: its latent is (style, digit weights); choosing the digit sets the weights; the
shipped model draws the digit it is told to, and the Sample tab's digit choice reaches it."""

from __future__ import annotations

import gradio as gr
import pytest
import torch

from conftest import shipped, tiny_model
from explorer.metrics import load_classifier
from explorer.ui import sample
from explorer.ui.models import ModelCache


def test_latent_is_style_then_a_seeded_one_hot_digit():
    model = tiny_model("cvae")
    z = model.sample_latent(200, seed=3)
    assert z.shape == (200, 3 + 10)
    weights = z[:, 3:]
    assert torch.equal(weights.sum(1), torch.ones(200)) and set(weights.unique().tolist()) == {0.0, 1.0}
    assert len(weights.argmax(1).unique()) == 10  # every digit drawn
    three = model.with_digit(z, 3)
    assert torch.equal(three[:, :3], z[:, :3]) and (three[:, 3:].argmax(1) == 3).all()
    with pytest.raises(ValueError, match="digit must be"):
        model.with_digit(z, 10)


def test_the_shipped_cvae_draws_the_digit_it_is_told_and_encodes_its_own_samples():
    model, classifier = shipped("cvae-mnist"), load_classifier()
    z = model.sample_latent(200, seed=0)
    told = [float((classifier.predict(model.decode(model.with_digit(z, d)))[0].argmax(1) == d).float().mean())
            for d in range(10)]
    assert sum(told) / 10 >= 0.8 and min(told) >= 0.5  # measured 0.84, weakest digit 0.64; chance is 0.1
    x = model.decode(model.with_digit(z[:40], 6))
    again = model.encode(x)  # q(z | x, y) with y the digit the classifier reads
    assert (again[:, -10:].argmax(1) == 6).float().mean() >= 0.8
    assert float((model.decode(again) - x).abs().mean()) < 0.05  # measured 0.018


def test_the_sample_tab_digit_choice():
    models = ModelCache("cpu", names=["cvae-mnist", "vae-mnist"])
    _, _, caption, grid = sample.sample_grid(models, "cvae-mnist", 2, 1.0, 8, "5")
    assert "every one a 5" in caption and grid["digit"] == "5"
    pick, _ = sample.pick_sample(models, grid, 3)
    assert torch.tensor(pick["latent"])[-10:].argmax() == 5
    _, _, caption, _ = sample.sample_grid(models, "vae-mnist", 2, 1.0, 8, "5")
    assert "conditional models only" in caption
    with pytest.raises(gr.Error, match="digit"):
        sample.sample_grid(models, "cvae-mnist", 2, 1.0, 8, "12")
