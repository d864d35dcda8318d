"""The Edit tab: the picked latent (a sample, or the user's own digit encoded) moved along named attribute
directions with locks, and along unlabelled principal directions, with readouts of what each edit did.

Wiring: each control sends only its own value plus the two states (picked latent, edit settings) and gets
back the image, the settings and the readout in one event. Every move goes through the queue, under its
concurrency limit, in one of two lanes: models that decode in one pass share the "edit" lane; a model whose
decode runs its network many times (diffusion, `decode_is_slow`), where a move that keeps the digit costs
several decodes, has the "edit-slow" lane to itself, one move at a time, so it never holds up anyone else's."""

from __future__ import annotations

import functools

import gradio as gr
import numpy as np
import torch

from ..attributes import ATTRIBUTES, SLIDERS, UNITS, edit, morphometrics
from ..data import DataError, open_image, prepare_digit
from .common import (LONG_WORK, check_choice, check_float, check_int, image_rows, image_view, make_pick, model_or_error,
                     picked_latent, smooth_or_error, to_image)
from .models import ModelCache
from .sample import pick_sample

N_PRINCIPAL = 6
SLIDER_RANGE = 3.0   # attribute sliders: standard deviations of the attribute over the model's samples
SIDE_EFFECT_SD = 0.3  # a measure that moves more than this, unasked, is flagged in the readout
LOCKABLE = (*SLIDERS, "digit")
# the Edit tab opens every pick with the digit kept: unkept, one SD of width or slant turns 20-55% of digits into
# another (benchmarks/attribute_edits.py, "same digit"); the user can untick it, and the API locks only what
# its `lock` argument names
OPENING_LOCKS = ("digit",)
CONTROLS = (*SLIDERS, "digit", "target", *(f"pc{i}" for i in range(N_PRINCIPAL)), *(f"lock:{n}" for n in LOCKABLE))

EXPLANATION = (
    "The picked **latent** z, decoded, and moved along **attribute directions**: for each measured trait "
    "(Morpho-MNIST thickness, slant, width, height) the latent direction that predicts it best within each "
    "digit, found by regression on thousands of decoded samples (as InterFaceGAN does); \"toward digit k\" "
    "follows a linear classifier's normal. One step of a slider moves the trait by about one **standard "
    "deviation** over the model's samples. A **lock** holds a trait where it is by projecting every other "
    "edit off its direction; the readout shows what actually moved, side effects included. **Keep the digit** "
    "(on when a pick opens) holds which digit the classifier reads while the sliders move; untick it to let an "
    "edit turn one digit into another."
)
OWN_DIGIT = (
    "**Your own digit.** Upload a picture or draw one; it is made MNIST-style (gray, white ink on black, "
    "centred by mass in a 20x20 box) and **encoded** by the chosen model: the posterior mean for a VAE, the "
    "exact inverse for a flow, DDIM inversion for diffusion, and optimisation for a GAN, which has no encoder. "
    "It then becomes the picked latent, to edit here or use as an interpolation end."
)


def fresh_settings(digit_read: int = 0, original: dict | None = None, locks=()) -> dict:
    """Per-user edit settings: slider amounts, locks, the digit read at the pick and its measures."""
    return {"amounts": {name: 0.0 for name in SLIDERS}, "digit": 0.0, "target": (digit_read + 1) % 10,
            "pca": [0.0] * N_PRINCIPAL, "locks": [n for n in LOCKABLE if n in locks], "digit_read": digit_read,
            "original": original or {}}


def check_settings(settings) -> dict:
    if not isinstance(settings, dict) or not {"amounts", "digit", "target", "pca", "locks", "digit_read"} <= settings.keys():
        raise gr.Error("no picked sample yet: pick one on the Sample tab, or encode your own digit")
    return settings


def apply_control(settings, control, value) -> dict:
    """New settings with one control changed; every value checked here, whatever the UI allows."""
    settings = check_settings(settings)
    control = check_choice(control, "control", CONTROLS)
    new = {**settings, "amounts": dict(settings["amounts"]), "pca": list(settings["pca"]), "locks": list(settings["locks"])}
    if control in SLIDERS:
        new["amounts"][control] = check_float(value, control, -SLIDER_RANGE, SLIDER_RANGE)
    elif control == "digit":
        new["digit"] = check_float(value, "toward digit", -SLIDER_RANGE, SLIDER_RANGE)
    elif control == "target":
        new["target"] = check_int(value, "target digit", 0, 9)
    elif control.startswith("pc"):
        new["pca"][int(control[2:])] = check_float(value, f"PC{int(control[2:]) + 1}", -SLIDER_RANGE, SLIDER_RANGE)
    else:
        if not isinstance(value, bool):
            raise gr.Error(f"a lock is on or off, got {value!r}")
        name = control.split(":", 1)[1]
        locks = {n for n in new["locks"] if n != name} | ({name} if value else set())
        new["locks"] = [n for n in LOCKABLE if n in locks]
    return new


def edited_latent(models: ModelCache, pick, settings) -> tuple:
    """(model, edited z, picked z). A locked trait keeps the amount its slider had; every other edit,
    principal directions included, is projected off the locked directions."""
    model, z = picked_latent(models, pick, smooth=True)
    settings = check_settings(settings)
    directions = models.attributes(pick["model"])
    target = f"digit {check_int(settings['target'], 'target digit', 0, 9)}"
    held_digit = f"digit {check_int(settings['digit_read'], 'digit read', 0, 9)}"
    amounts = {n: check_float(settings["amounts"].get(n, 0.0), n, -SLIDER_RANGE, SLIDER_RANGE) for n in SLIDERS}
    digit_amount = check_float(settings["digit"], "toward digit", -SLIDER_RANGE, SLIDER_RANGE)
    # "toward digit k" asks for another digit, so while it is moved "keep the digit" stands aside (the readout says so)
    lock = [n if n != "digit" else held_digit for n in settings["locks"]
            if n in LOCKABLE and not (n == "digit" and digit_amount)]
    if digit_amount:
        amounts[target] = amounts.get(target, 0.0) + digit_amount
    pca = [check_float(a, f"PC{i + 1}", -SLIDER_RANGE, SLIDER_RANGE) for i, a in enumerate(settings["pca"][:N_PRINCIPAL])]
    principal = models.directions(pick["model"])
    extra = sum((a * s * v for a, v, s in zip(pca, principal.vectors, principal.scale) if a), torch.zeros_like(z[0]))
    try:
        held = edit(model, z, {n: a for n, a in amounts.items() if n in lock and a}, directions=directions)
        # "keep the digit" keeps which digit is read, not how confidently (see explorer.edit's hold_log_odds)
        moved = edit(model, held, {n: a for n, a in amounts.items() if n not in lock}, lock=lock,
                     directions=directions, extra=extra, hold_log_odds=False)
    except ValueError as error:
        raise gr.Error(str(error)) from error
    return model, moved, z


def move(models: ModelCache, pick, settings, control, value):
    """One control changed: -> (edited image, new settings, readout HTML)."""
    settings = apply_control(settings, control, value)
    model, z, _ = edited_latent(models, pick, settings)
    image = models.decode(pick["model"], z)
    return to_image(image, 10), settings, readouts(models, pick, settings, image)[1]


def lane_move(models: ModelCache, pick, settings, control, value, slow_lane: bool):
    """`move`, in the lane this pick's model belongs to; the other lane's event for the same input skips. A
    pick that names no model goes to the fast lane, whose `move` says what is wrong."""
    name = pick.get("model") if isinstance(pick, dict) else None
    slow = name in models.names and models.model_class(name).decode_is_slow
    if slow != slow_lane:
        return gr.skip(), gr.skip(), gr.skip()
    return move(models, pick, settings, control, value)


def measured(models: ModelCache, image):
    """One decoded image -> (the classifier's 10 probabilities, its morphometrics as plain floats)."""
    return models.classifier().predict(image.cpu())[0][0], {k: float(v[0]) for k, v in morphometrics(image).items()}


def readouts(models: ModelCache, pick, settings, image=None) -> tuple[dict, str]:
    """-> (the classifier's probability for each digit, the readout as HTML). `image` is the edited image when the
    caller has it already."""
    if image is None:
        image = models.decode(pick["model"], edited_latent(models, pick, settings)[1])
    return readout_html(models, pick, settings, *measured(models, image))


def readout_html(models: ModelCache, pick, settings, probs, now: dict) -> tuple[dict, str]:
    """The readouts from an image's measures already taken: (probabilities by digit, one HTML block with the
    three digits the classifier reads most, with bars, and a table of every measure before and after, side
    effects flagged). One block rendered here rather than a gr.Label and a Markdown table: a Chrome trace of
    slider moves puts the browser's style, layout, paint and raster for it at a third of theirs, and it is
    redrawn on every move."""
    before = settings.get("original") or {}
    spread = models.attributes(pick["model"]).record["attributes"]
    shares = {str(k): float(p) for k, p in enumerate(probs)}
    top = sorted(shares, key=shares.get, reverse=True)[:3]  # stable: ties keep digit order, as argmax does
    bars = "".join(f'<div class="digit-row"><span class="digit">{k}</span><span class="track"><span class="bar" '
                   f'style="width:{shares[k]:.0%}"></span></span><span class="share">{shares[k]:.0%}</span></div>'
                   for k in top)
    rows = []
    for name in ATTRIBUTES:
        sd = spread[name]["sd"]
        change = (now[name] - before.get(name, now[name])) / sd
        note = ("locked" if name in settings["locks"] else "edited" if settings["amounts"].get(name) else
                "<b>moved unasked</b>" if abs(change) > SIDE_EFFECT_SD else "")
        rows.append(f"<tr><td>{name} ({UNITS[name]})</td><td>{before.get(name, float('nan')):.1f}</td><td>{now[name]:.1f}</td>"
                    f"<td>{change:+.2f}</td><td>{note}</td></tr>")
    return shares, (
        f'<div class="readout"><div class="digits"><div class="caption">digit the classifier reads</div>{bars}</div>'
        '<table><thead><tr><th>measure</th><th>picked</th><th>edited</th><th>change (sd)</th><th></th></tr></thead>'
        f'<tbody>{"".join(rows)}</tbody></table>'
        f"<p>Reads as <b>{top[0]}</b> ({shares[top[0]]:.0%}); the picked sample read as {settings['digit_read']}.</p>"
        + ("<p>“keep the digit” stands aside while “toward digit” is moved.</p>"
           if "digit" in settings["locks"] and settings["digit"] else "") + "</div>")


def open_pick(models: ModelCache, pick):
    """Show the picked latent unedited; reset every control; label the principal sliders by what they move."""
    model, z = picked_latent(models, pick, smooth=True)
    image = models.decode(pick["model"], z)
    probs, figures = measured(models, image)
    settings = fresh_settings(int(probs.argmax()), figures, OPENING_LOCKS)
    record = models.attributes(pick["model"]).record
    labels = record.get("principal_labels", [])
    shares = models.directions(pick["model"]).explained_variance.tolist()
    principal = []
    for i in range(N_PRINCIPAL):
        if i >= len(shares):
            principal.append(gr.update(label="(no direction)", value=0, interactive=False))
            continue
        name = f" ~ {labels[i]['attribute']} (r = {labels[i]['r']:+.2f})" if i < len(labels) else ""
        principal.append(gr.update(label=f"PC{i + 1}{name}, {shares[i]:.0%} of image variance", value=0, interactive=True))
    fits = record["attributes"]
    named = [gr.update(value=0, label=f"{n} (1 = {fits[n]['sd']:.1f} {UNITS[n]})") for n in SLIDERS]
    _, readout = readout_html(models, pick, settings, probs, figures)  # unedited: the measures above
    return [to_image(image, 10), f"Editing **{pick.get('label', pick['model'])}**.", settings, readout,
            *named, gr.update(value=0), gr.update(value=settings["target"]), *principal,
            *[gr.update(value=n in OPENING_LOCKS) for n in LOCKABLE]]


def edited_pick(models: ModelCache, pick, settings):
    """The edited latent as a new pick (for an interpolation end)."""
    model, z, _ = edited_latent(models, pick, settings)
    return make_pick(pick["model"], z[0], f"{pick.get('label', pick['model'])}, edited")


# --- the user's own digit -----------------------------------------------------------------------------------

def digit_from_upload(upload) -> np.ndarray:
    """An uploaded file (its path) -> an MNIST-style uint8 digit; anything else gets a clear message."""
    if upload is None:
        raise gr.Error("upload an image of a digit first")
    try:
        return prepare_digit(upload)
    except DataError as error:
        raise gr.Error(f"cannot use this upload: {error}") from error


def digit_from_drawing(drawing) -> np.ndarray:
    """A sketchpad value ({'composite': RGBA array, ...}) -> an MNIST-style uint8 digit."""
    composite = drawing.get("composite") if isinstance(drawing, dict) else None
    if composite is None:
        raise gr.Error("draw a digit on the sketchpad first")
    try:
        return prepare_digit(open_image(np.asarray(composite)))
    except DataError as error:
        raise gr.Error(f"cannot use this drawing: {error}") from error


def encode_digit(models: ModelCache, name, digit: np.ndarray, progress=None):
    """-> (the digit as the model sees it, its reconstruction, a caption with the error, the new pick)."""
    model = model_or_error(models, name)
    if not model.can_encode:
        raise gr.Error(f"{name} has no way to encode an image")
    x = torch.from_numpy(np.asarray(digit, dtype=np.float32) / 255).reshape(1, 1, 28, 28)
    report = (lambda done, total: progress((done, total), desc="encoding")) if progress is not None else None
    z = model.encode(x, progress=report)
    reconstruction = model.decode(z)
    error = float((reconstruction.cpu() - x).abs().mean())
    caption = (f"Encoded by **{name}** ({model.encode_method}): mean absolute pixel error {error:.3f} "
               f"({error * 255:.0f} of 255 grey levels). It is now the picked latent.")
    return to_image(x, 8), to_image(reconstruction, 8), caption, make_pick(name, z[0], f"your digit, {name}")


# --- the JSON API ---------------------------------------------------------------------------------------------

def api_edit(models: ModelCache, model: str, seed: int, index: int, amounts: list[float], temperature: float = 1.0,
             count: int = 32) -> list[list[int]]:
    """Sample `index` of the grid of `count` drawn with (model, seed, temperature), as the Sample tab draws it,
    moved along its principal directions by `amounts` (up to 6 numbers in [-3, 3], in standard deviations).
    Returns the 28x28 image as rows of 0-255 values."""
    if not isinstance(amounts, (list, tuple)) or len(amounts) > N_PRINCIPAL:
        raise gr.Error(f"amounts must be a list of at most {N_PRINCIPAL} numbers, got {amounts!r:.80}")
    pick, _ = pick_sample(models, {"model": model, "seed": seed, "temperature": temperature, "count": count}, index)
    settings = fresh_settings()
    for i, amount in enumerate(amounts):
        settings = apply_control(settings, f"pc{i}", amount)
    model_obj, z, _ = edited_latent(models, pick, settings)
    return image_rows(model_obj.decode(z))


def api_edit_attributes(models: ModelCache, model: str, seed: int, index: int, amounts: dict, lock: list,
                        temperature: float = 1.0, count: int = 32) -> list[list[int]]:
    """Sample `index` of the grid (as for /edit) moved along named attributes: `amounts` maps thickness,
    slant, width, height (or "digit 0".."digit 9") to numbers in [-3, 3], in standard deviations of that
    attribute; `lock` lists attributes to hold still. Returns the 28x28 image as rows of 0-255 values."""
    model_obj = smooth_or_error(models, model)
    if not isinstance(amounts, dict) or len(amounts) > 14:
        raise gr.Error(f"amounts must map attribute names to numbers, got {amounts!r:.80}")
    if not isinstance(lock, (list, tuple)) or len(lock) > 14 or not all(isinstance(n, str) for n in lock):
        raise gr.Error(f"lock must be a list of attribute names, got {lock!r:.80}")
    checked = {check_choice(n, "attribute", models.attributes(model).names): check_float(a, n, -SLIDER_RANGE, SLIDER_RANGE)
               for n, a in amounts.items()}
    pick, _ = pick_sample(models, {"model": model, "seed": seed, "temperature": temperature, "count": count}, index)
    _, z = picked_latent(models, pick)
    try:
        z = edit(model_obj, z, checked, lock=tuple(lock), directions=models.attributes(model))
    except ValueError as error:
        raise gr.Error(str(error)) from error
    return image_rows(model_obj.decode(z))


# --- the tab --------------------------------------------------------------------------------------------------

def build(models: ModelCache, picked: gr.State):
    gr.Markdown(EXPLANATION)
    source = gr.Markdown("Pick a sample on the Sample tab first, or encode your own digit below.", elem_id="edit-source")
    settings = gr.State(None)
    with gr.Row():
        with gr.Column(scale=1):
            image = image_view(label="edited", type="pil", height=300, width=300, elem_id="edit-image")
            readout = gr.HTML(elem_id="edit-readout")
        with gr.Column(scale=2):
            named, locks = [], []
            for i, name in enumerate(SLIDERS):
                with gr.Row():
                    named.append(gr.Slider(-SLIDER_RANGE, SLIDER_RANGE, value=0, step=0.1, label=name, scale=4,
                                           elem_id=f"edit-{name}"))
                    locks.append(gr.Checkbox(label="lock", value=False, scale=1, min_width=60, elem_id=f"edit-lock-{name}"))
            with gr.Row():
                digit = gr.Slider(-SLIDER_RANGE, SLIDER_RANGE, value=0, step=0.1, label="toward digit", scale=3, elem_id="edit-digit")
                target = gr.Dropdown(list(range(10)), value=1, label="digit", scale=1, min_width=60, elem_id="edit-target")
                locks.append(gr.Checkbox(label="keep the digit", value="digit" in OPENING_LOCKS, scale=1, min_width=60,
                                         elem_id="edit-lock-digit"))
    with gr.Accordion("Principal directions (found without labels, named by what they move most)", open=False):
        principal = [gr.Slider(-SLIDER_RANGE, SLIDER_RANGE, value=0, step=0.1, label=f"PC{i + 1}", elem_id=f"edit-slider-{i}")
                     for i in range(N_PRINCIPAL)]
    with gr.Row():
        reset = gr.Button("Reset to the picked latent", elem_id="edit-reset")
        to_a = gr.Button("Use the edited digit as interpolation A", elem_id="edit-to-a")
        to_b = gr.Button("Use the edited digit as interpolation B", elem_id="edit-to-b")
    gr.Markdown(OWN_DIGIT)
    with gr.Row():
        with gr.Column():
            encoder = gr.Dropdown(models.names_where("can_encode"), value=(models.names_where("can_encode") or [None])[0],
                                  label="encode with", elem_id="edit-encoder")
            upload = gr.File(label="upload an image (PNG, JPEG, ...)", file_types=["image"], type="filepath", elem_id="edit-upload")
            encode_upload = gr.Button("Encode the upload", variant="primary", elem_id="edit-encode-upload")
        with gr.Column():
            sketch = gr.Sketchpad(label="or draw a digit", type="numpy", canvas_size=(280, 280), fixed_canvas=True,
                                  layers=False, transforms=(), brush=gr.Brush(default_size=18, colors=["#000000"], color_mode="fixed"),
                                  elem_id="edit-sketch")
            encode_sketch = gr.Button("Encode the drawing", variant="primary", elem_id="edit-encode-sketch")
        with gr.Column():
            seen = image_view(label="as the model sees it", type="pil", height=150, width=150, elem_id="edit-seen")
            rebuilt = image_view(label="reconstruction", type="pil", height=150, width=150, elem_id="edit-rebuilt")
            encoded_caption = gr.Markdown(elem_id="edit-encoded")

    controls = [(c, n) for c, n in zip(named, SLIDERS)] + [(digit, "digit"), (target, "target")] + \
        [(c, f"pc{i}") for i, c in enumerate(principal)] + [(c, f"lock:{n}") for c, n in zip(locks, LOCKABLE)]
    for component, control in controls:
        for lane, slow_lane in (("edit", False), ("edit-slow", True)):
            handler = functools.partial(lambda p, s, v, control, slow_lane: lane_move(models, p, s, control, v, slow_lane),
                                        control=control, slow_lane=slow_lane)
            component.input(handler, [picked, settings, component], [image, settings, readout], trigger_mode="always_last",
                            show_progress="hidden", concurrency_id=lane, concurrency_limit=1 if slow_lane else "default",
                            api_visibility="private")

    opened = [image, source, settings, readout, *named, digit, target, *principal, *locks]
    reset.click(lambda p: open_pick(models, p), picked, opened, api_visibility="private")

    def encoder_of(read):
        def encode_with_progress(value, name, progress=gr.Progress()):  # Gradio fills `progress` in
            return encode_digit(models, name, read(value), progress)
        return encode_with_progress

    for button, read, value, api in ((encode_upload, digit_from_upload, upload, dict(api_name="encode")),
                                     (encode_sketch, digit_from_drawing, sketch, dict(api_visibility="private"))):
        # encoding by optimisation or DDIM inversion takes seconds to tens of seconds: the long-work lane
        button.click(encoder_of(read), [value, encoder], [seen, rebuilt, encoded_caption, picked], **api,
                     **LONG_WORK).success(
            lambda p: open_pick(models, p), picked, opened, api_visibility="private")
    make_end = functools.partial(edited_pick, models)
    return {"open": (lambda p: open_pick(models, p), picked, opened), "to_a": to_a, "to_b": to_b,
            "edited_pick": (make_end, [picked, settings])}
