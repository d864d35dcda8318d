"""The Playground tab: small GAN, flow and diffusion models trained live on 2-D points, with play, pause and
step. Each user's run lives in their own gr.State (a few thousand weights). Every Play's training is done by
one shared thread in turns (playground.SharedTrainer, which says why); the Play itself only hands the frames
it draws to Gradio, for at most PLAY_LIMIT_S, and a closed tab or Pause ends it within a frame."""

from __future__ import annotations

import time

import gradio as gr
import numpy as np

from .. import bilinear_game, rbm_lesson
from ..playground import (DATASETS, FAMILIES, GAN_LOSSES, WEIGHT_CLIP, Playground, Settings, SharedTrainer, ToyFlow,
                          draw_losses, points_from_drawing, preload_diffusers)
from .common import MAX_SEED, PLAYGROUND, check_choice, check_float, check_int, image_view

FRAME_SECONDS = 0.085  # a round of turns, training and drawing together: about 12 frames a second for one player
# at least this much training per turn, however many play: with 12 players, 10 ms gave each 3.2 frames and 12
# updates a second, 20 ms 2.6 frames and 22 updates (a GAN collapses in ~150 updates: 7 s rather than 13)
MIN_TRAIN_SECONDS = 0.02
STEP_UPDATES = 10
PLAY_LIMIT_S = 600  # a forgotten Play stops by itself after ten minutes, and says so
# Plays streaming at once; more wait in Gradio's queue and see their place in it. Why not common.PLAYGROUND's 4:
# with 10-minute Plays, a fifth player would wait minutes for a place. A Play here costs the server a thread
# waiting for its frames and its share of the one training thread (SharedTrainer), not a core of its own, so
# a class fits at once: `benchmarks/playground.py --class` measured 12 players, all pressing Play together on
# this 2-core machine (with the 12 browsers on it too, and little else), seeing their first frame after 1.1 s
# (median; worst 1.5 s), then 2.6 frames and 22 updates a second each. The lane's width bounds the waiting
# threads (Gradio runs every handler in a pool of 40) and how thinly the trainer's time is shared out. The
# short handlers (Reset, Step, Pause, the tab's first frame) keep common.PLAYGROUND's lane of 4, since each
# of those trains or draws in its own request thread.
PLAYERS = 16
TRAINER = SharedTrainer(FRAME_SECONDS, MIN_TRAIN_SECONDS)
# The preset a teacher clicks: (family, loss, data, seed). Measured here (test_playground checks it to update
# 3,000): from about update 150 the right-hand mode holds 95% or more of the points at 76 of 78 checks 50
# updates apart up to 4,000, and the left mode gets none until about update 5,800.
MODE_COLLAPSE = ("GAN", "cross-entropy", "two separated modes", 2)
MODE_COLLAPSE_NOTE = ("**seed 2: mode collapse** sets a cross-entropy GAN on two modes, seed 2, and plays: by about "
                      "update 150 the orange points all sit on the right-hand mode, and not one reaches the left "
                      "mode for thousands of updates (here until about update 5,800). The Wasserstein loss with "
                      "the same seed covers both.")

EXPLANATION = (
    "Small networks trained live on points in the plane, as GAN Lab does for GANs. White: the data; orange: "
    "the model's samples. For a **GAN** the background is the discriminator's verdict (green: \"real\"); "
    "with the **cross-entropy** loss on two separated modes the generator often settles on one of them "
    "(**mode collapse**: seed 2 does), while the **Wasserstein** loss gives it a gradient toward both, "
    "its critic held to slopes of at most about 1 by a gradient penalty or, in the original WGAN, by clipping "
    f"every critic weight to [-{WEIGHT_CLIP:g}, {WEIGHT_CLIP:g}] (cruder, and slower to get there). A **flow** "
    "shows the density it has learned (its log, over 8 nats below the peak): RealNVP's couplings, or a "
    f"**planar flow**, {ToyFlow.PLANAR_LAYERS} maps x + u·tanh(w·x + b) (Rezende & Mohamed 2015), each "
    "invertible only while w·u ≥ −1, which its parametrisation enforces; it fits two modes but not the ring of "
    "eight. "
    "**Diffusion** shows its samples and, in blue, ten denoising paths from noise x_T to x_0."
)


def explanation() -> str:
    """EXPLANATION and how Play is shared, with the limits this server runs under."""
    return (f"{EXPLANATION} Everyone's Plays are trained in turns: up to {PLAYERS} at once (past that, the plane "
            f"shows your place in the queue), each for up to {duration(PLAY_LIMIT_S)}.")


# Pressing the page's own Play button runs the very event Pause cancels, in the same lane and queue
PRESS_PLAY = "() => document.querySelector('#play-play').click()"


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


def stop(run) -> None:
    """End any Play of `run` (a new run replaces it, or it pauses)."""
    if isinstance(run, Playground):
        TRAINER.stop(run)


def reset(run, family, dataset, loss, seed, drawing):
    """A fresh run with the current settings, drawn before any training: -> (plane, losses, caption, run)."""
    fresh = current_run(None, family, dataset, loss, seed, drawing)
    stop(run)
    return *fresh.frame(), fresh


def step(run, family, dataset, loss, seed, drawing):
    """STEP_UPDATES updates, then one frame."""
    run = current_run(run, family, dataset, loss, seed, drawing)
    run.train(STEP_UPDATES)
    return *run.frame(), run


def duration(seconds: float) -> str:
    minutes = seconds / 60
    if minutes >= 1 and minutes == int(minutes):
        return f"{int(minutes)} minute{'s' if minutes != 1 else ''}"
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"


def capped_caption(caption: str, limit_s: float) -> str:
    return f"**Stopped after {duration(limit_s)}** (the limit per Play); press Play to go on · {caption}"


def play(run, family, dataset, loss, seed, drawing, limit_s: float | None = None, frames: int | None = None):
    """Stream the frames TRAINER draws for this run until Pause (or Reset, or a new setting), `limit_s`
    (PLAY_LIMIT_S) or `frames` frames; at the limit, one last frame says that it stopped and why. Closing the
    tab ends it too: Gradio stops asking for frames and closes this generator, whose `finally` takes the run
    off the trainer (and, should a generator be dropped without being closed, the trainer drops a player
    whose frame stays untaken)."""
    limit_s = PLAY_LIMIT_S if limit_s is None else limit_s
    if isinstance(limit_s, bool) or not isinstance(limit_s, (int, float)) or not limit_s >= 0:
        raise gr.Error(f"the time limit must be a number of seconds, at least 0; got {limit_s!r}")
    if frames is not None and (isinstance(frames, bool) or not isinstance(frames, int) or frames < 1):
        raise gr.Error(f"frames must be a whole number, at least 1; got {frames!r}")
    run = current_run(run, family, dataset, loss, seed, drawing)
    token = run.play_token = object()
    player = TRAINER.join(run, token)
    began, shown = time.perf_counter(), 0
    try:
        while frames is None or shown < frames:
            left = limit_s - (time.perf_counter() - began)
            if left <= 0:
                TRAINER.stop(run)
                plane, losses, caption = run.frame()  # waits for the update in hand; none starts after it
                yield plane, losses, capped_caption(caption, limit_s), run
                return
            try:
                frame = TRAINER.next_frame(player, timeout=left)
            except Exception as error:
                raise gr.Error(f"training stopped: {error}; press Reset to start again") from error
            if frame is None:
                if player.done:  # paused, reset or another setting: whoever did so has drawn the last frame
                    return
                continue  # the limit is reached: the top of the loop says so
            shown += 1
            plane, losses, caption = frame
            others = TRAINER.playing() - 1
            if others > 0:
                caption += f" · trained in turns with {others} other Play{'s' if others > 1 else ''}"
            yield plane, gr.skip() if losses is None else losses, caption, run  # None: the curves have not moved
    finally:
        TRAINER.leave(player)


def pause(run):
    """Stop a Play and show where the run stopped (the last streamed frame can be an update or more behind)."""
    if not isinstance(run, Playground):
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    stop(run)
    plane, losses, caption = run.frame()  # frame() waits for an update in progress
    return plane, losses, f"**Paused** at {caption}", run


def mode_collapse(run):
    """The preset: set the controls to MODE_COLLAPSE and draw its fresh run (the page then presses Play):
    -> (family, loss, data, seed, plane, losses, caption, run)."""
    family, loss, dataset, seed = MODE_COLLAPSE
    plane, losses, caption, fresh = reset(run, family, dataset, loss, seed, None)
    return family, loss, dataset, seed, plane, losses, caption, fresh


GAME_NOTE = (
    "**The two-player game min_x max_y x·y**, the smallest model of a GAN's training: x descends the value y "
    "ascends, and the only equilibrium is (0, 0) (the cross). Taken **simultaneously**, the gradient steps "
    "spiral out; **alternating** ones (y answers the new x) cycle for ever; **extragradient** (step with the "
    "gradient at a look-ahead point) and **optimistic** steps (twice this gradient less the last) spiral in. "
    "Each line below says what theory gives per step (the update's spectral radius) and what the path did. "
    "Raise the learning rate past 1 and the fixes fail too.")
GAME_STEPS = 1000
GAME_LR = (0.01, 1.5)


def bilinear(methods, lr, steps):
    """The game's paths under the chosen methods: -> (the plane, one line per method)."""
    if not isinstance(methods, (list, tuple)) or not methods:
        raise gr.Error(f"choose at least one way of stepping: {', '.join(bilinear_game.METHODS)}")
    methods = [check_choice(m, "method", bilinear_game.METHODS) for m in methods]
    lr = check_float(lr, "learning rate", *GAME_LR)
    steps = check_int(steps, "steps", 1, GAME_STEPS)
    paths = {m: bilinear_game.play(m, lr, steps) for m in dict.fromkeys(methods)}
    lines = [f"- **{m}**: {bilinear_game.verdict(m, lr, path)}" for m, path in paths.items()]
    return bilinear_game.draw(paths), "\n".join(lines)


RBM_NOTE = (
    "**The notes' RBM, small enough to enumerate**: visible spins s = ±1 (4x4 binarised digits: 16 spins, "
    "2^16 = 65,536 states) and Gaussian hidden units. The likelihood's gradient needs an average over every "
    "state; **contrastive divergence** takes it from k Gibbs steps started at each digit instead. Three copies "
    "start from the same weights and train on the same 500 digits, and after every update each one's **exact** "
    "log-likelihood is computed by enumeration. On these easy digits CD-1 and CD-k end within about a tenth "
    "of a nat of the exact gradient at a fraction of its cost, and the exact sum doubles with every spin (a "
    "28x28 digit has 2^784 states). The free energy is quadratic in the weights: at a learning rate of 0.3 the "
    "exact gradient and CD-10 diverged here, so the slider stops at 0.1.")
RBM_HIDDEN, RBM_K, RBM_STEPS, RBM_LR = (1, 16), (2, 20), (1, 300), (0.001, 0.1)


def rbm_exact_vs_cd(hidden, k, steps, lr):
    """The three trainings of rbm_lesson: -> (their exact log-likelihood curves, one line each)."""
    hidden = check_int(hidden, "hidden units", *RBM_HIDDEN)
    k = check_int(k, "k (Gibbs steps of CD-k)", *RBM_K)
    steps = check_int(steps, "updates", *RBM_STEPS)
    lr = check_float(lr, "learning rate", *RBM_LR)
    results = rbm_lesson.train_three(hidden=hidden, k=k, steps=steps, lr=lr)
    curves = {(f"CD-{k}" if m == "CD-k" else m): r["log_likelihood"] for m, r in results.items()}
    lines = "\n".join(f"- {line}" for line in rbm_lesson.summary(results, k))
    return draw_losses(curves, width=520, height=240, quantity="log-likelihood"), lines


def build():
    preload_diffusers()
    gr.Markdown(explanation())
    run = gr.State(None)
    with gr.Row():
        family = gr.Radio(list(FAMILIES), value="GAN", label="model", elem_id="play-family")
        loss = gr.Radio(list(GAN_LOSSES), value=GAN_LOSSES[0], label="GAN loss", elem_id="play-loss")
        dataset = gr.Dropdown(list(DATASETS), value=DATASETS[0], label="data", elem_id="play-data")
        seed = gr.Number(value=2, precision=0, minimum=0, maximum=MAX_SEED, label="seed", elem_id="play-seed")
    with gr.Row():
        play_button = gr.Button("Play", variant="primary", elem_id="play-play")
        pause_button = gr.Button("Pause", variant="stop", elem_id="play-pause")  # styled as the app's Stop buttons
        step_button = gr.Button(f"Step ({STEP_UPDATES} updates)", elem_id="play-step")
        reset_button = gr.Button("Reset", elem_id="play-reset")
    with gr.Row():
        preset_button = gr.Button("seed 2: mode collapse", size="sm", scale=0, min_width=200,
                                  elem_id="play-preset-collapse", elem_classes=["preset"])
        gr.Markdown(MODE_COLLAPSE_NOTE, elem_id="play-preset-note")
    caption = gr.Markdown(elem_id="play-caption")
    with gr.Row():
        plane = image_view(label="the plane", type="numpy", height=360, width=360, elem_id="play-plane")
        losses = image_view(label="losses", type="numpy", height=200, width=360, elem_id="play-losses")
    with gr.Accordion("Draw your own points (choose \"your drawing\" as the data)", open=False):
        drawing = gr.Sketchpad(label="draw where the points should be", type="numpy", canvas_size=(360, 360),
                               fixed_canvas=True, layers=False, transforms=(),
                               brush=gr.Brush(default_size=12, colors=["#000000"], color_mode="fixed"),
                               elem_id="play-sketch")

    with gr.Accordion("The two-player game min_x max_y x·y: why gradient steps circle", open=False):
        gr.Markdown(GAME_NOTE)
        with gr.Row():
            game_methods = gr.CheckboxGroup(list(bilinear_game.METHODS), value=list(bilinear_game.METHODS),
                                            label="ways of stepping", elem_id="game-methods")
            game_lr = gr.Slider(*GAME_LR, value=0.2, step=0.01, label="learning rate", elem_id="game-lr")
            game_steps = gr.Slider(1, GAME_STEPS, value=150, step=1, label="steps", elem_id="game-steps")
        first_plane, first_lines = bilinear(list(bilinear_game.METHODS), 0.2, 150)
        with gr.Row():
            game_plane = image_view(value=first_plane, label="the players' (x, y)", type="numpy", height=420,
                                    width=420, elem_id="game-plane")
            game_lines = gr.Markdown(first_lines, elem_id="game-lines")
    with gr.Accordion("Boltzmann machines: the exact gradient beside contrastive divergence", open=False):
        gr.Markdown(RBM_NOTE)
        with gr.Row():
            rbm_hidden = gr.Slider(*RBM_HIDDEN, value=8, step=1, label="hidden units", elem_id="rbm-hidden")
            rbm_k = gr.Slider(*RBM_K, value=10, step=1, label="k of CD-k", elem_id="rbm-k")
            rbm_steps = gr.Slider(*RBM_STEPS, value=150, step=1, label="updates", elem_id="rbm-steps")
            rbm_lr = gr.Slider(*RBM_LR, value=0.05, step=0.001, label="learning rate", elem_id="rbm-lr")
        rbm_run = gr.Button("Train the three", elem_id="rbm-run")
        with gr.Row():
            # no label badge: it would sit over the curves' legend (their scale names the quantity)
            rbm_curves = image_view(label="exact log-likelihood per digit, nats", show_label=False, type="numpy",
                                    height=240, width=520, elem_id="rbm-curves")
            rbm_lines = gr.Markdown(elem_id="rbm-lines")
    rbm_run.click(rbm_exact_vs_cd, [rbm_hidden, rbm_k, rbm_steps, rbm_lr], [rbm_curves, rbm_lines],
                  api_visibility="private", **PLAYGROUND)
    game_inputs = [game_methods, game_lr, game_steps]
    for control in game_inputs:
        control.change(bilinear, game_inputs, [game_plane, game_lines], show_progress="hidden",
                       api_visibility="private", **PLAYGROUND)

    inputs = [run, family, dataset, loss, seed, drawing]
    outputs = [plane, losses, caption, run]
    lane = dict(api_visibility="private", **PLAYGROUND)
    # Play has a lane of its own, PLAYERS wide (see PLAYERS). Its progress is "minimal": a Play waiting for a
    # place keeps its last frame, with Gradio's "queue: 3/5 | 2.1s" in the plane's corner and its caption
    # dimmed, and a running one shows its frames with no overlay ("full" put a spinner over the plane while
    # queued, and a pulsing border round it while playing, which kept every player's browser repainting: the
    # 12-browser benchmark's chromium used 1.27 cores with it and 0.80 without, one run each).
    play_lane = dict(api_visibility="private", concurrency_id="playground-play", concurrency_limit=PLAYERS)
    playing = play_button.click(play, inputs, outputs, show_progress="minimal", show_progress_on=[caption, plane],
                                **play_lane)
    pause_button.click(pause, run, outputs, cancels=[playing], show_progress="hidden", **lane)
    step_button.click(step, inputs, outputs, show_progress="hidden", **lane)
    reset_button.click(reset, inputs, outputs, cancels=[playing], **lane)
    # .input, not .change: only a person's own change starts a new run; the preset sets the controls itself
    # and must not set off four resets that would cancel the Play it starts
    for control in (family, loss, dataset, seed):
        control.input(reset, inputs, outputs, cancels=[playing], show_progress="hidden", **lane)
    preset_button.click(mode_collapse, run, [family, loss, dataset, seed, *outputs], cancels=[playing],
                        show_progress="hidden", **lane).success(None, None, None, js=PRESS_PLAY,
                                                                api_visibility="private")
    return {"load": (reset, inputs, outputs)}
