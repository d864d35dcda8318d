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

from ..attributes import edit, measures_of
from ..data import DataError, open_image, prepare_digit
from ..domains import domain_of
from ..latent import traversal
from .common import (LONG_WORK, MAX_SEED, check_choice, check_float, check_int, export_folder, image_rows, image_view,
                     labelled_grid, make_pick, model_or_error, picked_latent, shown, smooth_or_error, time_left, to_image,
                     watched)
from .models import ModelCache
from .sample import MAX_GRID, pick_sample

N_PRINCIPAL = 6
N_NAMED = 8  # named slider slots: as many as the most sliders a domain offers (a colour model's generic measures)
SLIDER_RANGE = 3.0   # attribute sliders: standard deviations of the attribute over the model's samples
SIDE_EFFECT_SD = 0.3  # a locked or unedited measure that moves more than this is flagged in the readout
# an edited measure further than this from its slider's amount is flagged: the attribute benchmark's tolerance
# for combined edits (benchmarks/attribute_edits.py, "combined" columns), which shows how often it is met
EDIT_TOLERANCE_SD = 0.5
# the Edit tab opens every pick of a domain with classes with the class kept: unkept, one SD of width or slant
# turns 20-55% of digits into another (benchmarks/attribute_edits.py, "same digit"); the user can untick it, and
# the API locks only what its `lock` argument names
OPENING_LOCKS = ("digit",)
ENCODED = "Encoded by"  # how a finished encoding's caption begins (encoding_failed tells it from a progress line)
# the tab's controls: a named slider and its lock per slot (which measure each slot moves is the pick's domain's:
# settings["sliders"]), the digit controls, the principal sliders
SLOTS = tuple(f"slot{i}" for i in range(N_NAMED))
CONTROLS = (*SLOTS, "digit", "target", *(f"pc{i}" for i in range(N_PRINCIPAL)), *(f"lock:{s}" for s in SLOTS),
            "lock:digit")

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
SHAPES_NOTE = (
    " For a model of the **shapes world** (a colour world drawn from known factors), the traits are the factors "
    "themselves as its measurer reads them back: hue, background grey, scale, rotation and the x and y position; "
    "hue and rotation are angles, moved the short way round. The shape (circle, square, triangle) is read under each "
    "image but has no slider."
)
OWN_MODELS_NOTE = (
    " For a **model of your own** (opened with `--model`), whose data the explorer does not know, the traits are "
    "measures any image has: brightness, contrast, colourfulness and hue (colour models), sharpness, the centre of "
    "mass and the foreground's size (pixels unlike the border's grey); there is no digit to keep. On simple images "
    "these measures move together (a brighter shape is also higher in contrast and more colourful), so expect "
    "\"moved unasked\" flags, and lock what should stay."
)
OWN_DIGIT = (
    "**Your own digit.** Upload a picture or draw one (dark ink on a light page is fine: it is turned into "
    "white ink on black); it is made MNIST-style (gray, white ink on black, "
    "centred by mass in a 20x20 box) and **encoded** by the chosen model: the posterior mean for a VAE, the "
    "exact inverse for a flow, DDIM inversion for diffusion, and optimisation for a GAN, which has no encoder. "
    "It then becomes the picked latent, to edit here or use as an interpolation end."
)
OWN_IMAGE = (
    " For a **model of your own** the picture is only resized and centre-cropped to the model's size (in colour for "
    "a colour model), not made MNIST-style: the explorer does not know what its training images looked like."
)
# a reconstruction further than this from the picture (mean absolute error, of 1) is flagged in the caption
POOR_RECONSTRUCTION = 0.25


def fresh_settings(sliders=(), classes: bool = False, digit_read: int = 0, original: dict | None = None, locks=(),
                   waiting: bool = False) -> dict:
    """Per-user edit settings: the pick's named sliders (its domain's, see explorer.attributes.Measures) and
    whether its domain has classes (the digit controls), slider amounts, locks, the digit read at the pick and
    its measures; `waiting` while the model's directions are still being fitted in the background."""
    lockable = (*sliders, *(("digit",) if classes else ()))
    return {"sliders": list(sliders), "classes": classes, "amounts": {name: 0.0 for name in sliders}, "digit": 0.0,
            "target": (digit_read + 1) % 10, "pca": [0.0] * N_PRINCIPAL, "locks": [n for n in lockable if n in locks],
            "digit_read": digit_read, "original": original or {}, "waiting": waiting}


def check_settings(settings) -> dict:
    if not isinstance(settings, dict) or not {"sliders", "classes", "amounts", "digit", "target", "pca", "locks",
                                              "digit_read"} <= settings.keys():
        raise gr.Error("no picked sample yet: pick one on the Sample tab, or encode your own digit")
    return settings


def lockable(settings) -> tuple[str, ...]:
    return (*settings["sliders"], *(("digit",) if settings["classes"] else ()))


def slot_control(settings, control: str) -> str:
    """A control of the tab (CONTROLS) as the handlers name it: slot i's slider is the pick's i-th named measure
    ("thickness", "brightness", ...), its lock "lock:" and that name; a slot this pick has no slider for is refused."""
    settings = check_settings(settings)
    slot = control.removeprefix("lock:") if isinstance(control, str) else None
    if slot not in SLOTS:  # a control named as the handlers name it already (apply_control checks it)
        return control
    index = SLOTS.index(slot)
    if index >= len(settings["sliders"]):
        raise gr.Error(f"this model has {len(settings['sliders'])} named sliders; slot {index + 1} moves nothing")
    return control.replace(slot, settings["sliders"][index])


def apply_control(settings, control, value) -> dict:
    """New settings with one control changed (a named measure, "lock:" and a name, "digit", "target" or "pcK");
    every value checked here, whatever the UI allows."""
    settings = check_settings(settings)
    classes = ("digit", "target", "lock:digit") if settings["classes"] else ()
    control = check_choice(control, "control", (*settings["sliders"], *classes, *(f"pc{i}" for i in range(N_PRINCIPAL)),
                                                *(f"lock:{n}" for n in settings["sliders"])))
    new = {**settings, "amounts": dict(settings["amounts"]), "pca": list(settings["pca"]), "locks": list(settings["locks"])}
    if control in settings["sliders"]:
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
        new["locks"] = [n for n in lockable(new) if n in locks]
    return new


class ReportingModel:
    """A shared model seen through one request: each decode is reported first (`report(decodes so far, None)`),
    so a slow model's edit, which decodes many times, can be watched and stopped between decodes (see
    common.watched). Everything else is the model's own; the model itself is not touched."""

    def __init__(self, model, report):
        self._model, self._report, self.decodes = model, report, 0

    def __getattr__(self, name):
        return getattr(self._model, name)

    def _reported(self):
        self.decodes += 1
        self._report(self.decodes, None)

    def decode(self, z, *args, **options):
        self._reported()
        return self._model.decode(z, *args, **options)

    def gradient_decode(self, z, *args, **options):
        self._reported()
        return self._model.gradient_decode(z, *args, **options)


def edited_latent(models: ModelCache, pick, settings, report=None) -> tuple:
    """(model, edited z, picked z). Every moved slider is an edit, solved together with the locks (see
    explorer.edit), so each keeps its amount when another moves; a lock on a moved slider changes nothing (it is
    held at its amount already); a lock on an unmoved one holds it where it is; principal directions are an
    unnamed move the named sliders and locks are solved around."""
    model, z = picked_latent(models, pick, smooth=True)
    model = ReportingModel(model, report) if report is not None else model
    settings = check_settings(settings)
    if settings.get("waiting") and not models.fitted(pick["model"]):
        raise gr.Error(f"the edit directions of {pick['model']} are still being fitted: the sliders open when the "
                       "fit finishes (its progress is shown above them)")
    amounts = {n: check_float(settings["amounts"].get(n, 0.0), n, -SLIDER_RANGE, SLIDER_RANGE) for n in settings["sliders"]}
    digit_amount = check_float(settings["digit"], "toward digit", -SLIDER_RANGE, SLIDER_RANGE) if settings["classes"] else 0
    # "toward digit k" asks for another digit, so while it is moved "keep the digit" stands aside (the readout says so)
    lock = [n for n in settings["locks"] if n in lockable(settings) and not amounts.get(n)
            and not (n == "digit" and digit_amount)]
    extra = principal_move(models, pick["model"], settings, z)
    if not any(amounts.values()) and not digit_amount and not lock:  # principal directions alone: no fit to solve
        return model, z + extra, z
    directions = models.attributes(pick["model"])
    if digit_amount:
        amounts[f"digit {check_int(settings['target'], 'target digit', 0, 9)}"] = digit_amount
    try:
        # "keep the digit" keeps which digit is read, not how confidently (see explorer.edit's hold_log_odds)
        moved = edit(model, z, {n: a for n, a in amounts.items() if a}, lock=lock, directions=directions,
                     extra=extra if any(settings["pca"][:N_PRINCIPAL]) else None, hold_log_odds=False)
    except ValueError as error:
        raise gr.Error(str(error)) from error
    return model, moved, z


def principal_move(models: ModelCache, name: str, settings, z: torch.Tensor) -> torch.Tensor:
    """The principal sliders' move: each amount times its direction's latent standard deviation."""
    pca = [check_float(a, f"PC{i + 1}", -SLIDER_RANGE, SLIDER_RANGE) for i, a in enumerate(settings["pca"][:N_PRINCIPAL])]
    principal = models.directions(name)
    return sum((a * s * v for a, v, s in zip(pca, principal.vectors, principal.scale) if a), torch.zeros_like(z[0]))


def move(models: ModelCache, pick, settings, control, value, report=None):
    """One control changed: -> (edited image, new settings, readout HTML). `report(decodes, None)` is told of
    each decode (see ReportingModel)."""
    settings = apply_control(settings, control, value)
    model, z, _ = edited_latent(models, pick, settings, report)
    if report is not None:
        report(None, None)
    image = models.decode(pick["model"], z)
    return to_image(image, 10), settings, readouts(models, pick, settings, image)[1]


def in_slow_lane(models: ModelCache, pick) -> bool:
    name = pick.get("model") if isinstance(pick, dict) else None
    return name in models.names and models.model_class(name).decode_is_slow


def lane_move(models: ModelCache, pick, settings, control, value, slow_lane: bool):
    """`move` of one of the tab's CONTROLS (see slot_control), in the lane this pick's model belongs to; the other
    lane's event for the same input skips. A pick that names no model goes to the fast lane, whose `move` says
    what is wrong."""
    if in_slow_lane(models, pick) != slow_lane:
        return gr.skip(), gr.skip(), gr.skip()
    return move(models, pick, settings, slot_control(settings, control), value)


def watched_slow_move(models: ModelCache, pick, settings, control, value):
    """The slow lane's event: a move of a model whose decode is slow (a diffusion edit that keeps the digit
    decodes its 50-step chain several times: 9-50 s under load), watched. Yields (image, settings, readout,
    status): the status says how far it has got while it runs, and the Stop button (which cancels this
    generator) ends the work at its next decode, keeping the last finished edit. Fast models' picks skip."""
    if not in_slow_lane(models, pick):
        yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return
    control = slot_control(settings, control)
    apply_control(settings, control, value)  # a bad value is refused before any work starts
    for kind, *result in watched(lambda report: move(models, pick, settings, control, value, report)):
        if kind == "progress":
            decodes, _, elapsed = result
            doing = "showing the result" if decodes is None else f"{decodes} decodes so far"
            yield (gr.skip(), gr.skip(), gr.skip(),
                   f"Editing **{pick['model']}**: each decode runs the whole denoising chain; {doing}, {elapsed:.0f} s. "
                   "**Stop** keeps the last finished edit.")
        else:
            yield (*result[0], "")


def measured(models: ModelCache, name: str, image):
    """One decoded image -> (the classifier's probability of each class, or None for a domain without classes;
    the domain's edit measures as plain floats)."""
    measures = measures_of(models.get(name))
    probs = measures.probabilities(image.cpu(), models.classifier(measures))[0] if measures.classes else None
    return probs, {k: float(v[0]) for k, v in measures.continuous(image).items() if k in measures.names}


def readouts(models: ModelCache, pick, settings, image=None) -> tuple[dict, str]:
    """-> (the classifier's probability for each digit, the readout as HTML). `image` is the edited image when the
    caller has it already."""
    if image is None:
        image = models.decode(pick["model"], edited_latent(models, pick, settings)[1])
    return readout_html(models, pick, settings, *measured(models, pick["model"], image))


def readout_html(models: ModelCache, pick, settings, probs, now: dict) -> tuple[dict, str]:
    """The readouts from an image's measures already taken: (probabilities by class, one HTML block with the
    three digits the classifier reads most, with bars, where the domain has classes, and a table of every
    measure before and after, side effects flagged). One block rendered here rather than a gr.Label and a
    Markdown table: a Chrome trace of slider moves puts the browser's style, layout, paint and raster for it at a
    third of theirs, and it is redrawn on every move."""
    before = settings.get("original") or {}
    if settings.get("waiting") and not models.fitted(pick["model"]):
        return {}, measures_html(before, now)
    measures = measures_of(models.get(pick["model"]))
    spread = models.attributes(pick["model"]).record["attributes"]
    amounts = settings["amounts"]
    rows = []
    for column, name in enumerate(measures.names):
        sd = spread[name]["sd"]
        was = before.get(name, now[name])
        moved = float(measures.difference([[now[name]]], [[was]], [column])[0, 0])
        change = moved / sd if varies(spread[name]) else 0.0
        asked = amounts.get(name, 0.0)
        if asked:
            note = ("edited" if abs(change - asked) <= EDIT_TOLERANCE_SD else
                    f"<b>edited, {change - asked:+.2f} sd off</b>")
        elif name in settings["locks"]:
            note = "locked" if abs(change) <= SIDE_EFFECT_SD else "<b>locked, but moved</b>"
        else:
            note = "<b>moved unasked</b>" if abs(change) > SIDE_EFFECT_SD else ""
        unit = measures.units[name] if name in measures.sliders else f"{measures.units[name]}, measured only: no slider"
        rows.append(f"<tr><td>{name} ({unit})</td><td>{before.get(name, float('nan')):.3g}</td><td>{now[name]:.3g}</td>"
                    f"<td>{change:+.2f}</td><td>{f'{asked:+.1f}' if asked else ('0 (locked)' if name in settings['locks'] else '')}</td>"
                    f"<td>{note}</td></tr>")
    table = ('<table><thead><tr><th>measure</th><th>picked</th><th>edited</th><th>change (sd)</th><th>asked (sd)</th>'
             f'<th>status</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')
    if probs is None:
        return {}, f'<div class="readout">{table}</div>'
    shares = {str(k): float(p) for k, p in enumerate(probs)}
    top = sorted(shares, key=shares.get, reverse=True)[:3]  # stable: ties keep digit order, as argmax does
    bars = "".join(f'<div class="digit-row"><span class="digit">{k}</span><span class="track"><span class="bar" '
                   f'style="width:{shares[k]:.0%}"></span></span><span class="share">{shares[k]:.0%}</span></div>'
                   for k in top)
    kept = "digit" in settings["locks"] and not settings["digit"]
    lost = kept and int(top[0]) != settings["digit_read"]
    return shares, (
        f'<div class="readout"><div class="digits"><div class="caption">digit the classifier reads</div>{bars}</div>'
        f"{table}<p>Reads as <b>{top[0]}</b> ({shares[top[0]]:.0%}); the picked sample read as {settings['digit_read']}."
        + (" <b>The digit changed although it is kept</b>: the edit asks for more than this digit can take." if lost else "")
        + "</p>"
        + ("<p>“keep the digit” stands aside while “toward digit” is moved.</p>"
           if "digit" in settings["locks"] and settings["digit"] else "") + "</div>")


def measures_html(before: dict, now: dict) -> str:
    """The readout while a model's edit directions are still being fitted: its measures, picked and edited."""
    rows = "".join(f"<tr><td>{name}</td><td>{before.get(name, float('nan')):.3g}</td><td>{value:.3g}</td>"
                   f"<td>{value - before.get(name, value):+.3g}</td></tr>" for name, value in now.items())
    return ('<div class="readout"><table><thead><tr><th>measure</th><th>picked</th><th>edited</th><th>change</th>'
            f"</tr></thead><tbody>{rows}</tbody></table><p>{WAITING}</p></div>")


WAITING = ("The named sliders, their locks and the principal directions open when the fit of this model's edit "
           "directions finishes (its progress is shown above).")


def open_pick(models: ModelCache, pick):
    """Show the picked latent unedited; reset every control; name the sliders by the model's domain's measures
    and label the principal sliders by what they move. While the model's directions are being fitted in the
    background, the image and measures show at once and the sliders wait (the tab's timer reopens the pick)."""
    model, z = picked_latent(models, pick, smooth=True)
    image = models.decode(pick["model"], z)
    probs, figures = measured(models, pick["model"], image)
    measures = measures_of(model)
    classes = bool(measures.classes)
    hidden = gr.update(visible=False, value=0)
    if models.fitting_in_background(pick["model"]):
        settings = fresh_settings((), classes, int(probs.argmax()) if classes else 0, figures, waiting=True)
        waiting = gr.update(value=0, interactive=False)
        return [to_image(image, 10), f"Editing **{pick.get('label', pick['model'])}**. {WAITING}", settings,
                measures_html(figures, figures),
                *[gr.update(value=0, label="(fitting)", interactive=False, visible=i < len(measures.sliders))
                  for i in range(N_NAMED)],
                gr.update(value=0, interactive=False, visible=classes), gr.update(interactive=False, visible=classes),
                *[waiting] * N_PRINCIPAL, *[gr.update(value=False, interactive=False, visible=i < len(measures.sliders))
                                           for i in range(N_NAMED)],
                gr.update(value=False, interactive=False, visible=classes), to_image(image, 3),
                gr.update(visible=model.decode_is_slow)]
    settings = fresh_settings(measures.sliders, classes, int(probs.argmax()) if classes else 0, figures,
                              OPENING_LOCKS if classes else ())
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
    named, locks = [], []
    for i in range(N_NAMED):
        if i >= len(measures.sliders):
            named.append(hidden)
            locks.append(gr.update(visible=False, value=False))
            continue
        n = measures.sliders[i]
        label = (f"{n} (1 = {fits[n]['sd']:.3g} {measures.units[n]})" if varies(fits[n])
                 else f"{n} (does not vary over this model's samples)")
        named.append(gr.update(value=0, label=label, interactive=varies(fits[n]), visible=True))
        locks.append(gr.update(value=n in settings["locks"], interactive=True, visible=True))
    _, readout = readout_html(models, pick, settings, probs, figures)  # unedited: the measures above
    return [to_image(image, 10), f"Editing **{pick.get('label', pick['model'])}**.", settings, readout, *named,
            gr.update(value=0, interactive=classes, visible=classes),
            gr.update(value=settings["target"], interactive=classes, visible=classes), *principal, *locks,
            gr.update(value="digit" in settings["locks"], interactive=classes, visible=classes),
            to_image(image, 3), gr.update(visible=model.decode_is_slow)]  # Stop applies where a move takes seconds


def varies(fit: dict) -> bool:
    """Whether an attribute was given a direction (it varied over the model's samples); fits from before that
    was recorded gave every attribute with a spread one."""
    return fit.get("fitted", fit["sd"] > 0)


def fit_tick(models: ModelCache, pick, settings) -> list:
    """The Edit tab's timer, while an opened model's directions are fitted in the background: -> (the progress
    line, open_pick's outputs, the timer). A pick opened while its fit ran is reopened once the fit is done;
    the timer stops when no fit is under way and no pick waits."""
    line = models.fit_progress()
    waiting = isinstance(settings, dict) and settings.get("waiting") and isinstance(pick, dict)
    if waiting and pick.get("model") in models.names and models.fitted(pick["model"]):
        return [line, *open_pick(models, pick), gr.Timer(active=bool(line))]
    return [line, *[gr.skip()] * len(open_pick_outputs()), gr.Timer(active=bool(line) or bool(waiting))]


def default_pick(models: ModelCache) -> dict | None:
    """What the Edit tab holds before anything is picked: sample #0 of the grid the Sample tab opens with (its
    first model that can be edited, seed 0), so a first slider move shows an edit rather than an error."""
    editable = models.names_where("smooth_latent")
    if not editable:
        return None
    return pick_sample(models, {"model": editable[0], "seed": 0, "temperature": 1.0, "count": 32}, 0)[0]


def open_default_pick(models: ModelCache):
    """-> (the default pick, then open_pick's outputs for it); nothing changes where no model can be edited."""
    pick = default_pick(models)
    return [gr.skip()] * (1 + len(open_pick_outputs())) if pick is None else [pick, *open_pick(models, pick)]


def open_pick_outputs() -> list[str]:
    """The names of open_pick's outputs, in order (build() wires the components in the same order)."""
    return ["image", "source", "settings", "readout", *SLOTS, "digit", "target", *(f"pc{i}" for i in range(N_PRINCIPAL)),
            *(f"lock:{n}" for n in SLOTS), "lock:digit", "thumbnail", "stop"]


def edited_pick(models: ModelCache, pick, settings):
    """The edited latent as a new pick (for an interpolation end)."""
    model, z, _ = edited_latent(models, pick, settings)
    return make_pick(pick["model"], z[0], f"{pick.get('label', pick['model'])}, edited")


# --- latent traversals ----------------------------------------------------------------------------------------

TRAVERSAL_STEPS = 7
MOVES_NOTHING_SD = 0.3  # a row whose every measure spans less than this many SDs is labelled as moving nothing


def traversal_grid(models: ModelCache, pick, span=2.0):
    """The picked latent's traversal grid (explorer.latent.traversal): -> (the grid, its PNG file, a caption).
    Each row is labelled with the measure of the model's domain it moves most, in SDs over the model's samples
    (the spread of the row's values about its middle frame, signed by its first-to-last change)."""
    model, z = picked_latent(models, pick, smooth=True)
    span = check_float(span, "span", 0.5, 3.0)
    name = pick["model"]
    if models.fitting_in_background(name):
        raise gr.Error(f"the directions of {name} are still being fitted: the traversal opens when the fit finishes")
    rows, row_names = traversal(z[0], models.directions(name), span, TRAVERSAL_STEPS)
    images = model.decode_in_batches(rows.flatten(0, 1)).reshape(*rows.shape[:2], *model.image_shape)
    measures = measures_of(model)
    fits = models.attributes(name).record["attributes"]
    figures = measures.continuous(images.flatten(0, 1))
    middle = TRAVERSAL_STEPS // 2
    reads = (measures.read_class(images.flatten(0, 1).cpu(), models.classifier(measures)).reshape(len(row_names), -1)
             if measures.classes else None)
    labels = []
    for r, row in enumerate(row_names):
        best, best_spread, sign = None, 0.0, 1.0
        for column, measure in enumerate(measures.names):
            if not varies(fits[measure]):
                continue
            values = figures[measure].reshape(len(row_names), TRAVERSAL_STEPS)[r]
            change = measures.difference(values[:, None], np.full((TRAVERSAL_STEPS, 1), values[middle]), [column])[:, 0]
            spread = (change.max() - change.min()) / fits[measure]["sd"]
            if spread > best_spread:
                best, best_spread, sign = measure, spread, 1.0 if change[-1] >= change[0] else -1.0
        label = (f"{row}: moves nothing measured" if best is None or best_spread < MOVES_NOTHING_SD
                 else f"{row} ~ {best} {'+' if sign > 0 else '-'}{best_spread:.1f} sd")
        if reads is not None and reads[r, 0] != reads[r, -1]:  # the class read at the row's two ends
            label += f", {reads[r, 0]}->{reads[r, -1]}"
        labels.append(label)
    grid = labelled_grid(images.cpu(), labels, [f"{a:+.1f}" for a in np.linspace(-span, span, TRAVERSAL_STEPS)])
    out = export_folder()
    stem = "".join(c if c.isascii() and c.isalnum() else "-" for c in f"{name}-traversal").strip("-")
    png = out / f"{stem}.png"
    grid.save(png)
    what = (f"latent coordinate, set from {-span:+.1f} to {span:+.1f} (the prior's standard deviations) with the "
            "others kept" if row_names[0] == "z0" else
            f"principal direction, moved from {-span:+.1f} to {span:+.1f} of its latent standard deviation")
    caption = (f"**{name}**: one row per {what}. Each row is labelled with the measure it moves "
               f"most, in standard deviations over the model's samples; a row under {MOVES_NOTHING_SD} sd on every "
               "measure moves nothing measured (a VAE's unused coordinates read so)"
               + ("; \"6->2\" says the digit read at the row's two ends." if measures.classes else "."))
    return grid, str(png), caption


# --- the user's own digit -----------------------------------------------------------------------------------

def digit_from_upload(upload) -> np.ndarray:
    """An uploaded file (its path) -> an MNIST-style uint8 digit; anything else gets a clear message."""
    if upload is None:
        raise gr.Error("upload an image of a digit first")
    try:
        return prepare_digit(upload)
    except DataError as error:
        raise gr.Error(f"cannot use this upload: {error}") from error


def upload_for(models: ModelCache, name, upload) -> torch.Tensor:
    """An uploaded picture prepared as the encoder's domain prepares one: made MNIST-style for a digits model,
    fitted to the model's size (in colour for a colour model) for any other -> (C, H, W) in [0, 1]."""
    model = encoder_or_error(models, name)
    if upload is None:
        raise gr.Error("upload an image first")
    try:
        return domain_of(model).prepare_upload(upload, model.image_shape)
    except DataError as error:
        raise gr.Error(f"cannot use this upload: {error}") from error


def drawing_for(models: ModelCache, name, drawing) -> torch.Tensor:
    """A sketchpad drawing prepared as an upload is; refused for a colour model (the pad draws in one ink)."""
    model = encoder_or_error(models, name)
    if model.image_shape[0] != 1:
        raise gr.Error(f"{name} makes colour images: upload a picture for it (the sketchpad draws grey digits)")
    composite = drawing.get("composite") if isinstance(drawing, dict) else None
    if composite is None:
        raise gr.Error("draw a digit on the sketchpad first")
    try:
        return domain_of(model).prepare_upload(open_image(np.asarray(composite)), model.image_shape)
    except DataError as error:
        raise gr.Error(f"cannot use this drawing: {error}") from error


def encoder_or_error(models: ModelCache, name):
    model = model_or_error(models, name)
    if not model.can_encode:
        raise gr.Error(f"{name} has no way to encode an image")
    return model


def encode_digit(models: ModelCache, name, digit: np.ndarray, report=None):
    """-> (the digit as the model sees it, its reconstruction, a caption with the error, the new pick).
    `report(done, total)` is told how far an iterative encoding (GAN inversion, DDIM inversion) has got."""
    model = encoder_or_error(models, name)
    if isinstance(digit, torch.Tensor):  # prepared by the model's domain: (C, H, W) in [0, 1]
        x = digit.reshape(1, *digit.shape[-3:])
    else:  # an MNIST-style uint8 digit (digit_from_upload)
        x = torch.from_numpy(np.asarray(digit, dtype=np.float32) / 255).reshape(1, 1, *np.shape(digit)[-2:])
    z = model.encode(x, progress=report)
    reconstruction = model.decode(z)
    error = float((reconstruction.cpu() - x).abs().mean())
    caption = (f"{ENCODED} **{name}** ({model.encode_method}): mean absolute pixel error {error:.3f} "
               f"({error * 255:.0f} of 255 levels). It is now the picked latent.")
    if error > POOR_RECONSTRUCTION:
        caption += (" **The reconstruction is far from the picture**: this model cannot draw it well (is it like the "
                    "images the model was trained on?), so edits start from what it drew, not from your picture.")
    what = f"your {domain_of(model).item}"
    return to_image(x, 8), to_image(reconstruction, 8), caption, make_pick(name, z[0], f"{what}, {name}")


def watched_encode(models: ModelCache, name, digit: np.ndarray):
    """`encode_digit`, watched: yields (seen, reconstruction, caption, pick), the caption saying how far an
    iterative encoding has got (GAN inversion took up to 39 s under load) until the result; the Stop button,
    which cancels this generator, ends the encoding at its next step and leaves the picked latent as it was."""
    model = encoder_or_error(models, name)  # an unknown model is refused before any work starts
    for kind, *result in watched(lambda report: encode_digit(models, name, digit, report)):
        if kind == "progress":
            done, total, elapsed = result
            left = time_left(done, total, elapsed)
            yield (gr.skip(), gr.skip(), f"Encoding with **{name}** ({model.encode_method}): step {done} of {total}"
                   f"{', ' + left if left else ''}. **Stop** keeps the picked latent as it is.", gr.skip())
        else:
            yield result[0]


def encoding_failed(models: ModelCache, pick, caption) -> tuple:
    """After an encoding's event failed (a Stop, or a refusal): -> (caption, *open_pick's outputs). A Stop that
    lands as the encoding ends finds its result already sent, caption and pick both (the caption then begins
    "Encoded by"): the Edit tab then opens that pick, as a finished encoding's success does, and the caption
    stays. Otherwise the pick is as it was, and the caption says so."""
    if isinstance(caption, str) and caption.startswith(ENCODED):
        return caption, *open_pick(models, pick)
    return ("Stopped (or refused): the picked latent is as it was.", *[gr.skip()] * len(open_pick_outputs()))


# --- the JSON API ---------------------------------------------------------------------------------------------

def api_pick(models: ModelCache, model, seed, index, temperature, count) -> tuple:
    """(model, pick) for sample `index` of the grid the Sample tab draws with (model, seed, temperature, count),
    every argument checked under the name the API gives it, before any work."""
    model = check_choice(model, "model", models.names)
    model_obj = smooth_or_error(models, model)
    seed = check_int(seed, "seed", 0, MAX_SEED)
    temperature = check_float(temperature, "temperature", 0.0, 2.0)
    count = check_int(count, "count", 1, MAX_GRID)
    index = check_int(index, "index", 0, count - 1)
    pick, _ = pick_sample(models, {"model": model, "seed": seed, "temperature": temperature, "count": count}, index)
    return model_obj, pick


def api_edit(models: ModelCache, model: str, seed: int, index: int, amounts: list[float], temperature: float = 1.0,
             count: int = 32) -> list[list[int]]:
    """A sample of the Sample tab's grid moved along its model's principal directions (the Edit tab's fold of PC sliders).

    Parameters:
        model: the name of a model whose latent can be edited, e.g. "dcgan-mnist" (not pixelcnn-mnist or rbm-mnist)
        seed: the grid's seed, a whole number from 0 to 2^63 - 1
        index: which sample of the grid, a whole number from 0 to count - 1
        amounts: up to 6 numbers from -3 to 3, the moves along principal directions 1, 2, ... in standard deviations (the 2-D models have 2)
        temperature: the prior's scale the grid was drawn at, from 0 to 2
        count: how many samples the grid holds, a whole number from 1 to 64 (the Sample tab's "samples")
    Returns:
        image: the edited image, an image as rows of pixels: for a grey model (the shipped digits, 28x28) each pixel a grey level from 0 (black) to 255 (white), for a colour model each an [r, g, b] triple
    """
    model_obj, pick = api_pick(models, model, seed, index, temperature, count)
    directions = min(N_PRINCIPAL, len(models.directions(pick["model"]).vectors))
    if not isinstance(amounts, (list, tuple)) or len(amounts) > directions:
        raise gr.Error(f"amounts must be a list of at most {directions} numbers for {pick['model']} (one per principal "
                       f"direction), got {shown(amounts)}")
    settings = fresh_settings()
    for i, amount in enumerate(amounts):
        settings = apply_control(settings, f"pc{i}", check_float(amount, f"amounts[{i}] (PC{i + 1})", -SLIDER_RANGE,
                                                                 SLIDER_RANGE))
    model_obj, z, _ = edited_latent(models, pick, settings)
    return image_rows(model_obj.decode(z))


def api_edit_attributes(models: ModelCache, model: str, seed: int, index: int, amounts: dict[str, float],
                        lock: list[str] | None = None, temperature: float = 1.0, count: int = 32) -> list[list[int]]:
    """A sample of the Sample tab's grid moved along named attributes, with others locked (explorer.edit).

    Parameters:
        model: the name of a model whose latent can be edited, e.g. "vae-mnist" (not pixelcnn-mnist or rbm-mnist)
        seed: the grid's seed, a whole number from 0 to 2^63 - 1
        index: which sample of the grid, a whole number from 0 to count - 1
        amounts: attribute names mapped to numbers from -3 to 3, in standard deviations of that attribute over the model's samples: for the digits thickness, slant, width, height, area and "digit 0" to "digit 9"; for a model of your own (--model) brightness, contrast, colourfulness and hue (colour only), sharpness, "centre x", "centre y", "foreground size"
        lock: attribute names to hold still while the others move, and, for the digits, "digit" to keep the digit the classifier reads; none if left out
        temperature: the prior's scale the grid was drawn at, from 0 to 2
        count: how many samples the grid holds, a whole number from 1 to 64 (the Sample tab's "samples")
    Returns:
        image: the edited image, an image as rows of pixels: for a grey model (the shipped digits, 28x28) each pixel a grey level from 0 (black) to 255 (white), for a colour model each an [r, g, b] triple
    """
    model_obj, pick = api_pick(models, model, seed, index, temperature, count)
    directions = models.attributes(pick["model"])
    names = list(directions.names)
    if not isinstance(amounts, dict) or len(amounts) > len(names):
        raise gr.Error(f"amounts must map attribute names ({', '.join(names)}) to numbers, got {shown(amounts)}")
    checked = {check_choice(n, "an attribute in amounts", names): check_float(a, f"amounts[{n!r}]", -SLIDER_RANGE, SLIDER_RANGE)
               for n, a in amounts.items()}
    lock = [] if lock is None else lock
    if not isinstance(lock, (list, tuple)) or len(lock) > len(names) + 1:
        raise gr.Error(f"lock must be a list of attribute names (or \"digit\") to hold still, got {shown(lock)}")
    lock = tuple(check_choice(n, "an attribute in lock", (*names, "digit")) for n in lock)
    _, z = picked_latent(models, pick)
    try:
        z = edit(model_obj, z, checked, lock=lock, directions=directions)
    except ValueError as error:
        raise gr.Error(str(error)) from error
    return image_rows(model_obj.decode(z))


# --- the tab --------------------------------------------------------------------------------------------------

def slow_handler(models: ModelCache, control: str):
    """The slow lane's event handler for one control: a generator function, as Gradio needs to stream and stop it."""
    def handler(pick, settings, value):
        yield from watched_slow_move(models, pick, settings, control, value)
    return handler


def build(models: ModelCache, picked: gr.State):
    gr.Markdown(EXPLANATION + SHAPES_NOTE + (OWN_MODELS_NOTE if models.opened() else ""))
    settings = gr.State(None)
    with gr.Row():
        with gr.Column(scale=1):
            with gr.Row(equal_height=True):
                thumbnail = image_view(label="picked", type="pil", height=96, width=96, min_width=96, scale=0,
                                       show_label=False, buttons=[], elem_id="edit-picked-thumbnail")
                source = gr.Markdown("Pick a sample on the Sample tab, or encode your own digit below.", elem_id="edit-source")
            image = image_view(label="edited", type="pil", height=300, width=300, elem_id="edit-image")
            status = gr.Markdown(elem_id="edit-status")
            stop = gr.Button("Stop the edit", variant="stop", visible=False, elem_id="edit-stop")
            readout = gr.HTML(elem_id="edit-readout")
        with gr.Column(scale=2):
            fitting = gr.Markdown(elem_id="edit-fitting")
            # until a pick opens (on page load), the slots are named as the first editable model's domain names them
            editable = models.names_where("smooth_latent")
            first = (domain_of(models.domain(editable[0])).edit_measures(models.image_shape(editable[0])).sliders
                     if editable else ())
            named, locks = [], []
            # no reset (↺) button on an edit slider: it sets the slider without the `input` event an edit runs
            # on, so the image kept the old edit under a slider showing 0 (teacher review); "Reset to the
            # picked latent" below resets every slider and the image together
            for i in range(N_NAMED):
                with gr.Row():
                    named.append(gr.Slider(-SLIDER_RANGE, SLIDER_RANGE, value=0, step=0.1, scale=4, visible=i < len(first),
                                           label=first[i] if i < len(first) else f"slider {i + 1}", buttons=[],
                                           elem_id=f"edit-slot-{i}"))
                    locks.append(gr.Checkbox(label="lock", value=False, scale=1, min_width=60, visible=i < len(first),
                                             elem_id=f"edit-lock-slot-{i}"))
            with gr.Row():
                digit = gr.Slider(-SLIDER_RANGE, SLIDER_RANGE, value=0, step=0.1, label="toward digit", scale=3, buttons=[],
                              elem_id="edit-digit")
                target = gr.Dropdown(list(range(10)), value=1, label="target digit", scale=1, min_width=60,
                                     info="starts at the digit after the one the pick reads as", elem_id="edit-target")
                locks.append(gr.Checkbox(label="keep the digit", value="digit" in OPENING_LOCKS, scale=1, min_width=60,
                                         elem_id="edit-lock-digit"))
    with gr.Accordion("Principal directions (found without labels, named by what they move most)", open=False):
        principal = [gr.Slider(-SLIDER_RANGE, SLIDER_RANGE, value=0, step=0.1, label=f"PC{i + 1}", buttons=[],
                               elem_id=f"edit-slider-{i}")
                     for i in range(N_PRINCIPAL)]
    with gr.Accordion("Latent traversal: the picked latent with one coordinate (or direction) swept per row", open=False):
        with gr.Row():
            span = gr.Slider(0.5, 3.0, value=2.0, step=0.5, label="sweep each row from -span to +span", scale=3,
                             elem_id="edit-traversal-span")
            draw_traversal = gr.Button("Draw the traversal", variant="primary", scale=1, elem_id="edit-traversal-run")
        traversal_caption = gr.Markdown(elem_id="edit-traversal-caption")
        traversal_image = image_view(label="traversal", type="pil", elem_id="edit-traversal")
        traversal_file = gr.File(label="the grid as PNG", elem_id="edit-traversal-png")
    with gr.Row():
        reset = gr.Button("Reset to the picked latent", elem_id="edit-reset")
        to_a = gr.Button("Use the edited image as interpolation A", elem_id="edit-to-a")
        to_b = gr.Button("Use the edited image as interpolation B", elem_id="edit-to-b")
    gr.Markdown(OWN_DIGIT + (OWN_IMAGE if models.opened() else ""))
    with gr.Row():
        with gr.Column():
            encoder = gr.Dropdown(models.names_where("can_encode"), value=(models.names_where("can_encode") or [None])[0],
                                  label="encode with", elem_id="edit-encoder",
                                  info=("not listed, as they have no encoder: " + ", ".join(cannot) if (cannot := [
                                      n for n in models.names if not models.model_class(n).can_encode]) else None))
            upload = gr.File(label="upload an image (PNG, JPEG, ...)", file_types=["image"], type="filepath", elem_id="edit-upload")
            encode_upload = gr.Button("Encode the upload", variant="primary", elem_id="edit-encode-upload")
        with gr.Column():
            sketch = gr.Sketchpad(label="or draw a digit", type="numpy", canvas_size=(280, 280), fixed_canvas=True,
                                  layers=False, transforms=(), brush=gr.Brush(default_size=18, colors=["#000000"], color_mode="fixed"),
                                  elem_id="edit-sketch")
            encode_sketch = gr.Button("Encode the drawing", variant="primary", elem_id="edit-encode-sketch")
            stop_encoding = gr.Button("Stop encoding", variant="stop", size="sm", elem_id="edit-stop-encoding")
        with gr.Column():
            seen = image_view(label="as the model sees it", type="pil", height=150, width=200, elem_id="edit-seen")
            rebuilt = image_view(label="reconstruction", type="pil", height=150, width=200, elem_id="edit-rebuilt")
            encoded_caption = gr.Markdown(elem_id="edit-encoded")

    controls = [(c, n) for c, n in zip(named, SLOTS)] + [(digit, "digit"), (target, "target")] + \
        [(c, f"pc{i}") for i, c in enumerate(principal)] + [(c, f"lock:{n}") for c, n in zip(locks, (*SLOTS, "digit"))]
    slow_moves = []
    for component, control in controls:
        fast = functools.partial(lambda p, s, v, control: lane_move(models, p, s, control, v, slow_lane=False), control=control)
        component.input(fast, [picked, settings, component], [image, settings, readout], trigger_mode="always_last",
                        show_progress="hidden", concurrency_id="edit", concurrency_limit="default", api_visibility="private")
        # a slow model's move is watched (status line) and can be stopped: one at a time in its own lane
        slow = slow_handler(models, control)
        slow_moves.append(component.input(slow, [picked, settings, component], [image, settings, readout, status],
                                          trigger_mode="always_last", show_progress="hidden", concurrency_id="edit-slow",
                                          concurrency_limit=1, api_visibility="private"))
    stop.click(None, None, None, cancels=slow_moves, api_visibility="private")
    for event in slow_moves:  # written once the cancel has gone through, so no late step can land after it
        event.failure(lambda: "Stopped (or refused): the image and readout are the last edit that finished.", None,
                      status, api_visibility="private")

    opened = [image, source, settings, readout, *named, digit, target, *principal, *locks, thumbnail, stop]
    reset.click(lambda p: open_pick(models, p), picked, opened, api_visibility="private")
    if models.opened():  # a server with models of the user's own shows their background fits' progress
        timer = gr.Timer(2.0)
        timer.tick(lambda p, s: fit_tick(models, p, s), [picked, settings], [fitting, *opened, timer],
                   show_progress="hidden", concurrency_limit=None, api_visibility="private")

    def encoder_of(read):
        def encode(value, name):
            yield from watched_encode(models, name, read(models, name, value))
        return encode

    encodings = []
    for button, read, value, api in ((encode_upload, upload_for, upload, dict(api_name="encode")),
                                     (encode_sketch, drawing_for, sketch, dict(api_visibility="private"))):
        # encoding by optimisation or DDIM inversion takes seconds to tens of seconds: the long-work lane
        encodings.append(button.click(encoder_of(read), [value, encoder], [seen, rebuilt, encoded_caption, picked], **api,
                                      **LONG_WORK))
        encodings[-1].success(lambda p: open_pick(models, p), picked, opened, api_visibility="private")
        # written once a stop has gone through (a finished encoding is not "stopped"; a refusal also fails)
        encodings[-1].failure(lambda p, c: encoding_failed(models, p, c), [picked, encoded_caption],
                              [encoded_caption, *opened], api_visibility="private")
    stop_encoding.click(None, None, None, cancels=encodings, api_visibility="private")
    # a traversal decodes up to 32 rows of 7: the long-work lane
    draw_traversal.click(lambda p, a: traversal_grid(models, p, a), [picked, span],
                         [traversal_image, traversal_file, traversal_caption], api_visibility="private", **LONG_WORK)
    make_end = functools.partial(edited_pick, models)
    return {"open": (lambda p: open_pick(models, p), picked, opened), "to_a": to_a, "to_b": to_b,
            "load": (lambda: open_default_pick(models), None, [picked, *opened]),
            "edited_pick": (make_end, [picked, settings])}
