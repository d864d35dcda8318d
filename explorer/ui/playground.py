"""The Playground tab: small GAN, flow and diffusion models trained live on 2-D points, with play, pause and
step. Each user's run lives in their own gr.State (a few thousand weights); Play streams a frame every
FRAME_SECONDS, training for whatever part of that the last frame's drawing and delivery did not take."""

from __future__ import annotations

import time

import gradio as gr
import numpy as np

from ..playground import DATASETS, FAMILIES, GAN_LOSSES, Playground, Settings, points_from_drawing, preload_diffusers
from .common import MAX_SEED, PLAYGROUND, check_choice, check_int, image_view

FRAME_SECONDS = 0.085  # one frame's training and drawing together: about 12 frames a second
MIN_TRAIN_SECONDS = 0.01  # at least one update between frames, however slow the drawing
STEP_UPDATES = 10
PLAY_LIMIT_S = 600  # a forgotten Play stops by itself after ten minutes

EXPLANATION = (
    "Small networks trained live on points in the plane, as GAN Lab does for GANs. White: the data; orange: "
    "the model's samples. For a **GAN** the background is the discriminator's verdict (green: \"real\"); "
    "with the **cross-entropy** loss on two separated modes the generator often settles on one of them "
    "(**mode collapse**: seed 2 does), while the **Wasserstein** loss with gradient penalty gives it a "
    "gradient toward both. A **flow** shows the density it has learned (its log, over 8 nats below the peak). "
    "**Diffusion** shows its samples and, in blue, ten denoising paths from noise x_T to x_0."
)


def checked_settings(family, dataset, loss, seed) -> Settings:
    return Settings(check_choice(family, "model", FAMILIES), check_choice(dataset, "data", DATASETS),
                    check_choice(loss, "GAN loss", GAN_LOSSES), check_int(seed, "seed", 0, MAX_SEED))


def drawn_points(drawing) -> np.ndarray | None:
    """A sketchpad value ({'composite': array, ...}) -> the ink's plane coordinates; None when nothing is drawn."""
    composite = drawing.get("composite") if isinstance(drawing, dict) else None
    if composite is None:
        return None
    try:
        return points_from_drawing(np.asarray(composite))
    except ValueError:
        return None


def current_run(run, family, dataset, loss, seed, drawing) -> Playground:
    """The user's run if it was made with these settings, else a new one (every argument checked)."""
    settings = checked_settings(family, dataset, loss, seed)
    drawn = drawn_points(drawing) if dataset == "your drawing" else None
    if isinstance(run, Playground) and run.settings == settings:
        same_points = (drawn is None) == (run.drawn is None) and (drawn is None or np.array_equal(drawn, run.drawn))
        if same_points:
            return run
    try:
        return Playground(settings, drawn)
    except ValueError as error:
        raise gr.Error(str(error)) from error


def reset(run, family, dataset, loss, seed, drawing):
    """A fresh run with the current settings, drawn before any training: -> (plane, losses, caption, run)."""
    run = current_run(None, family, dataset, loss, seed, drawing)
    return *run.frame(), run


def step(run, family, dataset, loss, seed, drawing):
    """STEP_UPDATES updates, then one frame."""
    run = current_run(run, family, dataset, loss, seed, drawing)
    run.train(STEP_UPDATES)
    return *run.frame(), run


def play(run, family, dataset, loss, seed, drawing, limit_s: float = PLAY_LIMIT_S, frames: int | None = None):
    """Train and stream a frame after every FRAME_SECONDS of updates until Pause, `limit_s` or `frames` frames.
    Pause both cancels this event and takes the run's play token, so no update starts after it, whenever the
    cancellation lands."""
    run = current_run(run, family, dataset, loss, seed, drawing)
    token = run.play_token = object()
    began, other, shown = time.perf_counter(), 0.0, 0
    while run.play_token is token and time.perf_counter() - began < limit_s and (frames is None or shown < frames):
        shown += 1
        run.train_for(max(MIN_TRAIN_SECONDS, FRAME_SECONDS - other))
        trained = time.perf_counter()
        yield *run.frame(), run
        # back here once Gradio has encoded and sent the frame: drawing (diffusion samples 25 steps, a GAN
        # one pass) and delivery (~20 ms) come out of the next frame's training time
        other = time.perf_counter() - trained


def pause(run):
    """Stop a Play and show where the run stopped (the last streamed frame can be an update or more behind)."""
    if not isinstance(run, Playground):
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    run.play_token = None
    plane, losses, caption = run.frame()  # frame() waits for an update in progress
    return plane, losses, f"**Paused** at {caption}", run


def build():
    preload_diffusers()
    gr.Markdown(EXPLANATION)
    run = gr.State(None)
    with gr.Row():
        family = gr.Radio(list(FAMILIES), value="GAN", label="model", elem_id="play-family")
        loss = gr.Radio(list(GAN_LOSSES), value=GAN_LOSSES[0], label="GAN loss", elem_id="play-loss")
        dataset = gr.Dropdown(list(DATASETS), value=DATASETS[0], label="data", elem_id="play-data")
        seed = gr.Number(value=2, precision=0, minimum=0, maximum=MAX_SEED, label="seed", elem_id="play-seed")
    with gr.Row():
        play_button = gr.Button("Play", variant="primary", elem_id="play-play")
        pause_button = gr.Button("Pause", elem_id="play-pause")
        step_button = gr.Button(f"Step ({STEP_UPDATES} updates)", elem_id="play-step")
        reset_button = gr.Button("Reset", elem_id="play-reset")
    caption = gr.Markdown(elem_id="play-caption")
    with gr.Row():
        plane = image_view(label="the plane", type="numpy", height=360, width=360, elem_id="play-plane")
        losses = image_view(label="losses", type="numpy", height=200, width=360, elem_id="play-losses")
    with gr.Accordion("Draw your own points (choose \"your drawing\" as the data)", open=False):
        drawing = gr.Sketchpad(label="draw where the points should be", type="numpy", canvas_size=(360, 360),
                               fixed_canvas=True, layers=False, transforms=(),
                               brush=gr.Brush(default_size=12, colors=["#000000"], color_mode="fixed"),
                               elem_id="play-sketch")

    inputs = [run, family, dataset, loss, seed, drawing]
    outputs = [plane, losses, caption, run]
    lane = dict(api_visibility="private", **PLAYGROUND)
    playing = play_button.click(play, inputs, outputs, show_progress="hidden", **lane)
    pause_button.click(pause, run, outputs, cancels=[playing], show_progress="hidden", **lane)
    step_button.click(step, inputs, outputs, show_progress="hidden", **lane)
    reset_button.click(reset, inputs, outputs, cancels=[playing], **lane)
    for control in (family, loss, dataset, seed):
        control.change(reset, inputs, outputs, cancels=[playing], show_progress="hidden", **lane)
    return {"load": (reset, inputs, outputs)}
