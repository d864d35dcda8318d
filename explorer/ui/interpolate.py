"""The Interpolate tab: a path between two latents, the digit the classifier reads on each frame, and
exports as an animated GIF and a PNG strip."""

from __future__ import annotations

import functools

import gradio as gr

from ..latent import path
from .common import (MAX_SEED, check_choice, check_int, export_frames, image_rows, image_view, make_pick,
                     picked_latent, smooth_or_error)
from .models import ModelCache
from .sample import pick_thumbnail

MAX_FRAMES = 64
WHERE_ENDS_COME_FROM = ("pick a sample on the Sample tab and send it here, or set seed A and seed B above and press "
                        "**Use these seeds as A and B**")
NOT_INTERPOLATED = "**Not interpolated:**"  # how a refusal's caption begins; a change of the ends clears it

EXPLANATION = (
    "Frames decoded from latents on a path from A to B. **Linear** paths cut through the middle of the "
    "Gaussian **prior**, where latents are atypically short; **spherical** (slerp) paths keep the norm of a "
    "typical latent. Under each frame is the digit the evaluation classifier reads, with its confidence (for a "
    "model of your own, whose images are not digits, the frame's number)."
)


def endpoints_from_seeds(models: ModelCache, name, seed_a, seed_b):
    model = smooth_or_error(models, name)
    seed_a, seed_b = check_int(seed_a, "seed A", 0, MAX_SEED), check_int(seed_b, "seed B", 0, MAX_SEED)
    t = model.default_temperature
    return (make_pick(name, model.sample_latent(1, seed=seed_a, temperature=t)[0], f"{name} seed {seed_a}"),
            make_pick(name, model.sample_latent(1, seed=seed_b, temperature=t)[0], f"{name} seed {seed_b}"))


def interpolate(models: ModelCache, a, b, mode, frames):
    """-> (labelled strip, GIF path, PNG path, caption)."""
    model, z_a = picked_latent(models, a, "endpoint A", smooth=True, where_from=WHERE_ENDS_COME_FROM)
    _, z_b = picked_latent(models, b, "endpoint B", smooth=True, where_from=WHERE_ENDS_COME_FROM)
    if a["model"] != b["model"]:
        raise gr.Error(f"A comes from {a['model']} and B from {b['model']}: pick both ends from one model")
    mode = check_choice(mode, "path", ("slerp", "lerp"))
    frames = check_int(frames, "frames", 2, MAX_FRAMES)
    # the files are named for what they hold, e.g. "vae-mnist-slerp-10-frames.gif"
    strip, gif, png = export_frames(models, a["model"], model.decode(path(z_a[0], z_b[0], frames, mode)),
                                    f"{a['model']}-{mode}-{frames}-frames")
    caption = f"{frames} frames, {mode}, from **{a.get('label', 'A')}** to **{b.get('label', 'B')}**"
    return strip, gif, png, caption


def interpolated(models: ModelCache, a, b, mode, frames):
    """The Interpolate button: -> (strip, GIF shown, GIF file, PNG file, caption); the GIF both plays (an image) and
    downloads (a file). A refusal is said once, in the caption, and the outputs of the last path stay: a raised
    error marked all five outputs as failed, and a notice besides repeated the caption (teacher review)."""
    try:
        strip_image, gif_path, png_path, text = interpolate(models, a, b, mode, frames)
    except gr.Error as refusal:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), f"{NOT_INTERPOLATED} {refusal.message}"
    return strip_image, gif_path, gif_path, png_path, text


def api_interpolate(models: ModelCache, model: str, seed_a: int, seed_b: int, frames: int = 10,
                    mode: str = "slerp") -> list[list[list[int]]]:
    """The path between the latents two seeds draw (as the Interpolate tab's "Use these seeds" draws them).

    Parameters:
        model: the name of a model whose latent can be interpolated, e.g. "vae-mnist" (not pixelcnn-mnist or rbm-mnist)
        seed_a: the seed of the first end, a whole number from 0 to 2^63 - 1
        seed_b: the seed of the last end, a whole number from 0 to 2^63 - 1
        frames: how many frames, both ends included, a whole number from 2 to 64
        mode: "slerp" (spherical: every frame keeps a typical latent's length) or "lerp" (a straight line)
    Returns:
        frames: the frames, each an image as rows of pixels: for a grey model (the shipped digits, 28x28) each pixel a grey level from 0 (black) to 255 (white), for a colour model each an [r, g, b] triple
    """
    model = check_choice(model, "model", models.names)
    smooth_or_error(models, model)
    seed_a, seed_b = check_int(seed_a, "seed_a", 0, MAX_SEED), check_int(seed_b, "seed_b", 0, MAX_SEED)
    frames = check_int(frames, "frames", 2, MAX_FRAMES)
    mode = check_choice(mode, "mode", ("slerp", "lerp"))
    a, b = endpoints_from_seeds(models, model, seed_a, seed_b)
    model_obj, z_a = picked_latent(models, a, "endpoint A", smooth=True)
    _, z_b = picked_latent(models, b, "endpoint B", smooth=True)
    return [image_rows(image) for image in model_obj.decode(path(z_a[0], z_b[0], frames, mode))]


def describe(pick, what: str) -> str:
    return f"{what}: **{pick['label']}**" if isinstance(pick, dict) and "label" in pick else f"{what}: not set"


def ends_shown(models: ModelCache, a, b, caption=None) -> tuple:
    """What the tab shows of its two ends, once they change: -> (A's name, B's name, A's thumbnail, B's thumbnail,
    the caption), a thumbnail being the end decoded as the Sample grid shows it (None for an end not set). A
    refusal in the caption (say, "no endpoint A yet") is out of date once the ends change: it is cleared; a
    finished path's caption stays, as it describes the strip still shown."""
    def thumbnail(pick):
        return pick_thumbnail(models, pick) if isinstance(pick, dict) and "latent" in pick else None
    stale = isinstance(caption, str) and caption.startswith(NOT_INTERPOLATED)
    return describe(a, "A"), describe(b, "B"), thumbnail(a), thumbnail(b), "" if stale else gr.skip()


def build(models: ModelCache, a: gr.State, b: gr.State):
    gr.Markdown(EXPLANATION)
    with gr.Row(equal_height=True):  # each end's thumbnail beside its name, as the Sample and Edit tabs show a pick
        thumb_a = image_view(label="A", type="pil", height=96, width=96, min_width=96, scale=0, show_label=False,
                             buttons=[], interactive=False, elem_id="interp-a-thumbnail")
        shown_a = gr.Markdown(describe(None, "A"), elem_id="interp-a")
        thumb_b = image_view(label="B", type="pil", height=96, width=96, min_width=96, scale=0, show_label=False,
                             buttons=[], interactive=False, elem_id="interp-b-thumbnail")
        shown_b = gr.Markdown(describe(None, "B"), elem_id="interp-b")
    with gr.Row():
        smooth = models.names_where("smooth_latent")
        model = gr.Dropdown(smooth, value=smooth[0] if smooth else None, label="model (for seeds)")
        seed_a = gr.Number(value=1, precision=0, minimum=0, maximum=MAX_SEED, label="seed A")
        seed_b = gr.Number(value=2, precision=0, minimum=0, maximum=MAX_SEED, label="seed B")
        use_seeds = gr.Button("Use these seeds as A and B", elem_id="interp-use-seeds")
    with gr.Row():
        mode = gr.Radio(["slerp", "lerp"], value="slerp", label="path")
        frames = gr.Slider(2, 24, value=10, step=1, label="frames")
        run = gr.Button("Interpolate", variant="primary", elem_id="interp-run")
    caption = gr.Markdown(elem_id="interp-caption")
    # no label chip: over a strip of many frames it hid the first captions (the explanation says what they are)
    strip = image_view(label="frames (classifier's reading under each)", show_label=False, type="pil", elem_id="interp-strip")
    # each at least 320 px wide, so a narrow page stacks them rather than squeezing the file list, which cuts a
    # name it has no room for down to its ending (the teacher saw ".g" and ".p")
    with gr.Row():
        gif_shown = image_view(label="the GIF, playing", type="filepath", height=200, min_width=320, elem_id="interp-gif-shown")
        with gr.Column(min_width=320):
            gif = gr.File(label="animated GIF", elem_id="interp-gif")
            png = gr.File(label="PNG strip", elem_id="interp-png")

    refresh = functools.partial(ends_shown, models)
    use_seeds.click(lambda *x: endpoints_from_seeds(models, *x), [model, seed_a, seed_b], [a, b],
                    api_visibility="private").then(refresh, [a, b, caption],
                                                  [shown_a, shown_b, thumb_a, thumb_b, caption], api_visibility="private")
    run.click(lambda *x: interpolated(models, *x), [a, b, mode, frames], [strip, gif_shown, gif, png, caption], api_visibility="private")
    return {"refresh": (refresh, [a, b, caption], [shown_a, shown_b, thumb_a, thumb_b, caption])}
