"""The Gradio app: one module per tab, each with plain handler functions and a build() that wires them."""

from __future__ import annotations

import gradio as gr

from . import sample
from .models import ModelCache

TITLE = "Latent Explorer"


def build_app(models: ModelCache) -> gr.Blocks:
    with gr.Blocks(title=TITLE) as app:
        gr.Markdown(f"# {TITLE}\nSample trained VAE, GAN, normalizing-flow and diffusion models of handwritten digits.")
        with gr.Tab("Sample"):
            sample.build(models)
    return app
