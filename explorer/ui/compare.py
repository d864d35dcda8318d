"""The Compare tab: one seed through every model side by side, with sampling time measured now, parameter
counts, and the evaluation figures recorded in each checkpoint.

A run takes seconds on an idle laptop and minutes on a busy server (diffusion and PixelCNN run their networks
tens of times per image), so it streams: each model's samples appear as soon as they are decoded, a status line
says what is being done and about how long is left, and Stop cancels the run. Gradio cancels a generator only
between two of its yields, so the handler yields after every step of every model's decode_steps (one DDIM step,
one PixelCNN row), not only after each model: a Stop frees its slot of the long-work lane within one step."""

from __future__ import annotations

import time

import gradio as gr
import numpy as np
import torch

from .. import anomaly
from ..data import DataError, image_grid, open_image
from ..domains import domain_of
from .common import LONG_WORK, MAX_SEED, check_int, image_view, to_image
from .models import ModelCache

N_SAMPLES = 8

EXPLANATION = (
    "The same seed drawn through every model. Models whose **latents** have the same shape (the flow's z and "
    "diffusion's x_T are both 1x28x28) receive the very same latent. FID is measured on the evaluation "
    "classifier's features against the held-out digits (lower is better; the real-data floor is training "
    "digits against held-out ones); bits/dim is an exact likelihood for the flow and PixelCNN and an **ELBO** bound "
    "for the VAE; an RBM's likelihood needs its partition function, so it has none. Models of the **shapes** world "
    "(a colour world of known factors) are measured on the shapes measurer's features against held-out shapes, and "
    "those that encode also by how well their latent coordinates separate the true factors: **MIG** (Chen et al. "
    "2018) and **DCI** disentanglement (Eastwood & Williams 2018), 1 for a code whose every coordinate follows one "
    "factor, near 0 for an entangled one."
)
EXPLANATION += (
    " The table is the families' trade-offs as the course's comparative review tabulates them (Bond-Taylor et al. "
    "2021, Table 1), measured here: **training** time (wall clock, recorded with the checkpoint), sampling time now, "
    "parameters, **FID** (the Fréchet distance between Gaussians fitted to the features of 1,000 samples and of the "
    "held-out images: it sees both quality and diversity; the **floor** is what 1,000 real training images score, "
    "so a ratio to it is what compares, and 1,000 samples give it a spread: the floor alone moved from 14.6 to 20.2 "
    "over five seeds, so models within about 15% of each other are not told apart), the **rarest class** among the "
    "samples and the **NN ratio** (a sample's distance to its nearest training image over a held-out image's: about "
    "1 for new images, far below 1 for copies), both about diversity; the **IS**, exp E KL(p(y|x) || p(y)) over the "
    "whole 1,000 samples (the classifier's classes: up to 10 for confident samples spread evenly; the README also "
    "gives Salimans et al.'s mean over 10 splits), and **bits/dim** where a likelihood exists.")
HEADER = ("| model | family | latent | parameters | training | ms/image now | FID | rarest class | NN ratio | IS | "
          "confidence | bits/dim | MIG / DCI |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")


def training_time(record: dict) -> str:
    """The recorded training wall time, in minutes or hours, and its steps."""
    training = record.get("training", {})
    seconds, steps = training.get("train_time_s"), training.get("steps")
    if not isinstance(seconds, (int, float)):
        return "-"
    took = f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{max(seconds / 60, 1):.0f} min"
    return f"{took}, {steps:,} steps" if isinstance(steps, int) else took

# How long each model's samples took on this server the last time, for the next run's estimate of the time left
# (it reflects this machine and its load, which the figures recorded at evaluation do not). One number per model,
# shared by every user; a model never measured here is estimated from its checkpoint's record.
_last_seconds: dict[str, float] = {}


def figure(metrics: dict, key: str, fmt: str) -> str:
    return format(metrics[key], fmt) if isinstance(metrics.get(key), (int, float)) else "-"


def expected_seconds(models: ModelCache, name: str) -> float | None:
    """About how long N_SAMPLES samples of `name` take: as measured here last time, else as recorded at evaluation
    (None for a model without a record of ours, opened from elsewhere: no figure to go by)."""
    if name in _last_seconds:
        return _last_seconds[name]
    ms = models.record(name).get("metrics", {}).get("sampling_ms_per_image")
    return ms * N_SAMPLES / 1000 if isinstance(ms, (int, float)) else None


def status_line(name: str, step, done: int, total: int, seconds_left: float) -> str:
    where = f" (step {step.index + 1} of {step.total})" if step is not None and step.total > 1 else ""
    return f"**{name}**{where}: {done} of {total} models done, about {seconds_left:.0f} s left"


def table_row(name: str, model, seconds: float) -> str:
    record = getattr(model, "checkpoint_record", {})
    m = record.get("metrics", {})
    floor = m.get("real_data_floor_fid")
    ratio = f" ({m['fid'] / floor:.1f}x floor)" if floor and "fid" in m else ""
    rarest = "rarest_shape_share" if "rarest_shape_share" in m else "min_class_share"  # evaluate_shapes' name
    return (f"| {name} | {model.family} | {'x'.join(map(str, model.latent_shape))} | "
            f"{sum(p.numel() for p in model.parameters()):,} | {training_time(record)} | "
            f"{seconds * 1000 / N_SAMPLES:.1f} | {figure(m, 'fid', '.1f')}{ratio} | "
            f"{figure(m, rarest, '.1%')} | {figure(m, 'nn_distance_ratio', '.2f')} | "
            f"{figure(m, 'inception_score', '.2f')} | {figure(m, 'confidence', '.3f')} | "
            f"{figure(m, 'heldout_bits_per_dim', '.3f')} | {figure(m, 'mig', '.2f')} / {figure(m, 'dci_disentanglement', '.2f')} |")


def compare(models: ModelCache, seed):
    """Stream (one image per model, the status line, the run's progress, the table) as the run goes: once to
    clear the last run's results, after every decode step (the status only), and after each model (its samples
    and the table so far). The progress, {"seed", "done", "total", "running"}, is what `stopped` reports on once
    the run has ended."""
    seed = check_int(seed, "seed", 0, MAX_SEED)
    names = models.names
    if not names:
        raise gr.Error("this server serves no models to compare")
    expected = {name: expected_seconds(models, name) for name in names}
    known = [s for s in expected.values() if s is not None]
    expected = {name: s if s is not None else sum(known) / max(len(known), 1) for name, s in expected.items()}
    skip = [gr.skip() for _ in names]
    progress = {"seed": seed, "done": 0, "total": len(names), "running": names[0]}
    yield (*[None for _ in names], status_line(names[0], None, 0, len(names), sum(expected.values())), progress, "")
    rows, began = [], time.perf_counter()
    for i, name in enumerate(names):
        model = models.get(name)
        z = model.sample_latent(N_SAMPLES, seed=seed, temperature=model.default_temperature)
        progress = {**progress, "running": name}
        steps, busy, final = model.decode_steps(z), 0.0, None
        while True:
            start = time.perf_counter()
            with torch.inference_mode():
                step = next(steps, None)
            busy += time.perf_counter() - start  # the decode's own time: not the pauses at each yield below
            if step is None:
                break
            final = step
            # this model's remaining steps at its pace so far, then the models after it at their expected pace
            left = busy / (step.index + 1) * (step.total - step.index - 1) + sum(expected[n] for n in names[i + 1:])
            yield (*skip, status_line(name, step, i, len(names), left), progress, gr.skip())
        _last_seconds[name] = busy
        rows.append(table_row(name, model, busy))
        images = list(skip)
        images[i] = image_grid(final.image, ncols=N_SAMPLES, scale=2)  # the last step is decode(z): test_interface
        progress = {**progress, "done": i + 1, "running": names[i + 1] if i + 1 < len(names) else None}
        status = (status_line(names[i + 1], None, i + 1, len(names), sum(expected[n] for n in names[i + 1:]))
                  if i + 1 < len(names) else
                  f"**Done**: {len(names)} models in {time.perf_counter() - began:.0f} s, seed {seed}.")
        yield (*images, status, progress, HEADER + "\n".join(rows))


def stopped(progress):
    """The status line once a run has ended: unchanged where it finished (or never began), else what was stopped
    and what the page shows now."""
    if progress is None:
        return gr.skip()
    if not (isinstance(progress, dict) and all(isinstance(progress.get(k), int) for k in ("seed", "done", "total"))):
        raise gr.Error("the Compare progress is malformed: press Compare to start a new run")
    seed, done, total = progress["seed"], progress["done"], progress["total"]
    if done >= total:
        return gr.skip()
    shown = f"the first {done} are shown" if done else "none is shown"
    return (f"**Stopped** at {progress.get('running')}, seed {seed}: {done} of {total} models had finished and "
            f"{shown}; the other {total - done} were not finished. Press Compare to run them all again.")


ANOMALY_NOTE = (
    "**Is it like the training data?** Upload a picture or draw one, and each chosen model says how typical it "
    "finds it: the **autoencoder** by how badly it rebuilds it (it learned to rebuild digits), the **flow** and "
    "the **PixelCNN** by its bits per dimension (how improbable it is), the VAE by its bound, the RBM by its free "
    "energy. Each score is placed among the same model's scores of the 2,000 held-out images: above the "
    f"{anomaly.OUTLIER_PERCENTILE:g}th percentile it reads as **not like the training data**. The picture is "
    "first prepared as the Edit tab prepares an upload (a digit model sees it MNIST-style: grey, centred).")
ANOMALY_DEFAULTS = ("ae-mnist", "flow-mnist", "pixelcnn-mnist")


def scorers(models: ModelCache) -> list[str]:
    """The served models that can score an image (explorer.anomaly) against held-out images of their domain."""
    return [name for name in models.names
            if anomaly.score_kind(models.model_class(name)) is not None
            and domain_of(models.domain(name)).has_heldout]


def anomaly_report(models: ModelCache, names, upload, drawing):
    """The picture (an uploaded file, else the sketchpad's drawing) scored by each chosen model and placed
    among its held-out scores: -> (the picture as the first model sees it, a table)."""
    offered = scorers(models)
    if not isinstance(names, (list, tuple)) or not names:
        raise gr.Error("choose at least one model to score with")
    for name in names:
        if name not in offered:
            raise gr.Error(f"{str(name)[:60]!r} cannot score images; choose from {', '.join(offered)}")
    composite = drawing.get("composite") if isinstance(drawing, dict) else None
    if upload is not None:
        source = upload
    elif composite is not None:
        try:
            source = open_image(np.asarray(composite))
        except DataError as error:
            raise gr.Error(f"cannot use this drawing: {error}") from error
    else:
        raise gr.Error("upload a picture or draw one first")
    rows, seen = [], None
    for name in dict.fromkeys(names):
        model = models.get(name)
        try:
            image = domain_of(model).prepare_upload(source, model.image_shape)
        except DataError as error:
            raise gr.Error(f"cannot use this picture: {error}") from error
        seen = image if seen is None else seen
        score = float(anomaly.scores(model, image[None])[0])
        reference = models.heldout_scores(name)
        rows.append(f"| {name} | {anomaly.score_kind(model)} | {score:.4g} | {np.median(reference):.4g} | "
                    f"{anomaly.verdict(score, reference)} |")
    table = ("| model | score | this picture | held-out median | reads as |\n|---|---|---|---|---|\n"
             + "\n".join(rows))
    return to_image(seen, 8), table


def build(models: ModelCache):
    gr.Markdown(EXPLANATION)
    with gr.Row():
        seed = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="seed")
        run = gr.Button("Compare", variant="primary", elem_id="compare-run")
        stop = gr.Button("Stop", variant="stop", elem_id="compare-stop")
    status = gr.Markdown(elem_id="compare-status")
    outputs = [image_view(label=name, type="pil", elem_id=f"compare-{name}") for name in models.names]
    table = gr.Markdown(elem_id="compare-table")
    progress = gr.State(None)  # this user's run so far, a few numbers: what the status says after a Stop
    running = run.click(lambda s: (yield from compare(models, s)), seed, [*outputs, status, progress, table],
                        api_name="compare", **LONG_WORK)
    # Stop cancels the run; the status is written once the run has ended, by the run's own `then`. (Written by
    # Stop's click instead, it raced the run: a step already under way when the cancel came landed after it.)
    # Gradio's front end fires `then` after a cancelled run too, once the server has ended it.
    stop.click(None, cancels=[running], api_visibility="private")
    # the no-op updates of the grids end the cancelled run's "Error" badges on them (Gradio's own marking of a
    # cancel), so the grids that had finished show again
    running.then(lambda p: (stopped(p), *[gr.update()] * len(outputs)), progress, [status, *outputs],
                 api_visibility="private")

    offered = scorers(models)
    if offered:
        with gr.Accordion("Is it like the training data? Anomaly scores for any picture", open=False):
            gr.Markdown(ANOMALY_NOTE)
            chosen = gr.CheckboxGroup(offered, value=[n for n in ANOMALY_DEFAULTS if n in offered] or offered[:1],
                                      label="score with", elem_id="anomaly-models")
            with gr.Row():
                upload = gr.File(label="upload a picture (PNG, JPEG, ...)", file_types=["image"], type="filepath",
                                 elem_id="anomaly-upload")
                sketch = gr.Sketchpad(label="or draw one (dark ink)", type="numpy", canvas_size=(280, 280),
                                      layers=False, transforms=(), elem_id="anomaly-sketch",
                                      brush=gr.Brush(default_size=18, colors=["#000000"], color_mode="fixed"))
                seen = image_view(label="as the first model sees it", type="pil", height=224, width=224,
                                  elem_id="anomaly-seen")
            score = gr.Button("Score it", elem_id="anomaly-run")
            verdicts = gr.Markdown(elem_id="anomaly-table")
        score.click(lambda n, u, d: anomaly_report(models, n, u, d), [chosen, upload, sketch], [seen, verdicts],
                    api_visibility="private", **LONG_WORK)
