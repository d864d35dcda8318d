"""The Compare tab: one seed through every model side by side, with sampling time measured now, parameter
counts, and the evaluation figures recorded in each checkpoint."""

from __future__ import annotations

import time

import gradio as gr

from ..data import image_grid
from .common import LONG_WORK, MAX_SEED, check_int, image_view
from .models import ModelCache

N_SAMPLES = 8

EXPLANATION = (
    "The same seed drawn through every model. Models whose **latents** have the same shape (the flow's z and "
    "diffusion's x_T are both 1x28x28) receive the very same latent. FID is measured on the evaluation "
    "classifier's features against the held-out digits (lower is better; the real-data floor is training "
    "digits against held-out ones); bits/dim is an exact likelihood for the flow and PixelCNN and an **ELBO** bound "
    "for the VAE; an RBM's likelihood needs its partition function, so it has none."
)


def figure(metrics: dict, key: str, fmt: str) -> str:
    return format(metrics[key], fmt) if isinstance(metrics.get(key), (int, float)) else "-"


def compare(models: ModelCache, seed):
    """Stream (one image per model, the table) as each model finishes."""
    seed = check_int(seed, "seed", 0, MAX_SEED)
    images = [gr.skip() for _ in models.names]
    rows = []
    for i, name in enumerate(models.names):
        model = models.get(name)
        z = model.sample_latent(N_SAMPLES, seed=seed, temperature=model.default_temperature)
        began = time.perf_counter()
        x = model.decode(z)
        ms = (time.perf_counter() - began) * 1000 / N_SAMPLES
        images[i] = image_grid(x, ncols=N_SAMPLES, scale=2)
        m = getattr(model, "checkpoint_record", {}).get("metrics", {})
        floor = m.get("real_data_floor_fid")
        ratio = f" ({m['fid'] / floor:.1f}x floor)" if floor and "fid" in m else ""
        rows.append(f"| {name} | {model.family} | {'x'.join(map(str, model.latent_shape))} | "
                    f"{sum(p.numel() for p in model.parameters()):,} | {ms:.1f} | {figure(m, 'fid', '.1f')}{ratio} | "
                    f"{figure(m, 'confidence', '.3f')} | {figure(m, 'heldout_bits_per_dim', '.3f')} |")
        table = ("| model | family | latent | parameters | ms/image now | FID | confidence | bits/dim |\n"
                 "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows))
        yield *images, table
        images[i] = gr.skip()


def build(models: ModelCache):
    gr.Markdown(EXPLANATION)
    with gr.Row():
        seed = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="seed")
        run = gr.Button("Compare", variant="primary", elem_id="compare-run")
    outputs = [image_view(label=name, type="pil", elem_id=f"compare-{name}") for name in models.names]
    table = gr.Markdown(elem_id="compare-table")
    run.click(lambda s: (yield from compare(models, s)), seed, [*outputs, table], api_name="compare", **LONG_WORK)
