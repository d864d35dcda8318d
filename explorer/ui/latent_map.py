"""The Latent map tab: every held-out digit encoded and drawn on a plane of latent space, coloured by its
class. Clicking anywhere decodes that point; successive clicks draw a path that becomes a strip and a GIF;
two maps side by side (an autoencoder's and a VAE's, say) show where one has holes the other does not.

Building a map means encoding the 2,000 held-out digits (41 s for the flow on a busy server), so it is drawn by a
generator that encodes a batch at a time and says how far it has got; Stop cancels it between two batches."""

from __future__ import annotations

import csv
import time

import gradio as gr
import numpy as np
import torch
from PIL import Image, ImageDraw

from ..domains import domain_of
from ..latent import LatentMap, latent_map_steps
from .common import LONG_WORK, check_choice, check_int, export_folder, export_frames, image_view, model_or_error, to_image
from .models import ModelCache

MAP_SIZE = 420      # pixels of the square plot
MARGIN = 14         # blank border around the plot's frame
LEGEND = 24         # pixels of legend under the plot: the picture is MAP_SIZE x (MAP_SIZE + LEGEND)
CHUNK = 100         # digits encoded between two progress reports: a Stop lands within one batch
MAX_PATH = 32       # clicks kept in one path
MAX_FRAMES = 64
# matplotlib's tab10, so each digit keeps a colour people know from the literature's latent plots
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

EXPLANATION = (
    "Each dot is one of the 2,000 held-out digits, **encoded** and placed by its **latent** (the latent "
    "itself for a 2-D model, else its projection on the top two principal components of all the codes). "
    "Click anywhere to **decode** that point: inside a cluster you get that digit; in the gaps a plain "
    "**autoencoder** gives smudges, because nothing in its loss asks the space between codes to mean "
    "anything, while the **VAE**'s KL term pulls every code toward one Gaussian **prior** and fills the "
    "gaps. Click several points to draw a path, then turn it into a strip and a GIF."
)
# Set-ups a teacher can click: (left model, right model, what to look for). Content, not code paths: offered
# where both models are served and mappable.
PRESETS = {
    "autoencoder vs VAE: the holes": (
        "ae2d-mnist", "vae2d-mnist",
        "Click in the empty space between the clusters on both maps: the plain autoencoder's latent plane has "
        "holes that decode to smudges no digit looks like, while the VAE's prior pulls its codes into one Gaussian "
        "and fills the plane, so nearly every point decodes to something digit-like."),
}


def mappable(models: ModelCache) -> list[str]:
    """Models whose encoder is one network pass and whose domain has held-out images to place on the map, in
    the order the app lists models."""
    return [n for n in models.names_where("encode_is_fast") if domain_of(models.domain(n)).has_heldout]


def not_mapped(models: ModelCache) -> str:
    """A line naming the served models the map leaves out, and why (empty where it maps them all)."""
    reasons = []
    for name in models.names:
        if name in mappable(models):
            continue
        flags = models.model_class(name)
        if not flags.can_encode:
            why = "it has no encoder"
        elif not flags.encode_is_fast:
            why = f"encodes by {flags.encode_method}, not in one network pass"
        else:
            why = "its data has no held-out images to place"
        reasons.append(f"**{name}** ({why})")
    return f"Not mapped here: {'; '.join(reasons)}." if reasons else ""


def presets(models: ModelCache) -> list[str]:
    """The presets whose two models this server serves and can map."""
    names = mappable(models)
    return [label for label, (left, right, _) in PRESETS.items() if left in names and right in names]


def built_map(models: ModelCache, name: str):
    """(map, labels) if this server has built the map of `name`, else None; never builds (drawing encodes a
    batch at a time, so it can be stopped, and hands the result to the cache: still built once per server)."""
    return models.built("latent map", name)


def keep_map(models: ModelCache, name: str, value) -> None:
    models.keep("latent map", name, value)


def frame(latent_map: LatentMap) -> tuple[np.ndarray, np.ndarray]:
    """The plot's data window (low, high) per axis: the middle 99% of the points, widened by a tenth."""
    coords = latent_map.coords.numpy()
    low, high = np.percentile(coords, 0.5, axis=0), np.percentile(coords, 99.5, axis=0)
    pad = (high - low) * 0.1 + 1e-6
    return low - pad, high + pad


def to_pixels(points: np.ndarray, window) -> np.ndarray:
    low, high = window
    span = MAP_SIZE - 2 * MARGIN
    x = MARGIN + (points[:, 0] - low[0]) / (high[0] - low[0]) * span
    y = MARGIN + (high[1] - points[:, 1]) / (high[1] - low[1]) * span  # up is +v, as on paper
    return np.stack([x, y], 1)


def from_pixel(x: float, y: float, window) -> np.ndarray:
    low, high = window
    span = MAP_SIZE - 2 * MARGIN
    return np.array([low[0] + (x - MARGIN) / span * (high[0] - low[0]), high[1] - (y - MARGIN) / span * (high[1] - low[1])])


def draw_map(latent_map: LatentMap, labels: np.ndarray, path: list | None = None,
             class_names=tuple(str(k) for k in range(10))) -> Image.Image:
    """Every point as a dot in its class colour, a legend naming the classes, and the user's path on top."""
    window = frame(latent_map)
    image = Image.new("RGB", (MAP_SIZE, MAP_SIZE + LEGEND), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([MARGIN, MARGIN, MAP_SIZE - MARGIN, MAP_SIZE - MARGIN], outline="#bbbbbb")
    order = np.random.default_rng(0).permutation(len(labels))  # no class painted over all the others
    for (x, y), label in zip(to_pixels(latent_map.coords.numpy()[order], window), labels[order]):
        draw.ellipse([x - 1.6, y - 1.6, x + 1.6, y + 1.6], fill=PALETTE[int(label)])
    x = MARGIN
    for label, colour in zip(class_names, PALETTE):
        draw.rectangle([x, MAP_SIZE + 6, x + 10, MAP_SIZE + 16], fill=colour)
        draw.text((x + 14, MAP_SIZE + 5), label, fill="black")
        x += max(40, 26 + int(draw.textlength(label)))  # 40 px a digit, as ever; a longer name takes more
    if path:
        pixels = [tuple(p) for p in to_pixels(np.asarray(path, dtype=np.float64), window)]
        if len(pixels) > 1:
            draw.line(pixels, fill="black", width=2)
        for x, y in pixels:
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], outline="black", width=2)
    return image


def check_path(path) -> list[list[float]]:
    """A per-user path, checked: at most MAX_PATH finite (u, v) points."""
    try:
        points = np.asarray(path if path is not None else [], dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise gr.Error(f"a path is a list of (u, v) points, got {str(path)[:80]}") from error
    if points.size == 0:
        return []
    if points.ndim != 2 or points.shape[1] != 2 or len(points) > MAX_PATH or not np.isfinite(points).all():
        raise gr.Error(f"a path is a list of at most {MAX_PATH} finite (u, v) points")
    return points.tolist()


def mappable_or_error(models: ModelCache, name):
    model = model_or_error(models, name)
    if not model.encode_is_fast:
        raise gr.Error(f"{name} has no one-pass encoder to place 2,000 digits with; choose one of {', '.join(mappable(models))}")
    return model


def show_map(models: ModelCache, name):
    """-> (the map with no path, a caption, an empty path), building the map first if need be."""
    model = mappable_or_error(models, name)
    domain = domain_of(model)
    latent_map, labels = models.latent_map(name)
    plane = ("its 2-D latent" if model.latent_shape == (2,) else
             f"the top two principal components of its {int(np.prod(model.latent_shape))}-D codes "
             f"({float(latent_map.explained[0]):.0%} and {float(latent_map.explained[1]):.0%} of their variance)")
    return (draw_map(latent_map, labels, class_names=domain.class_names),
            f"**{name}**: {len(labels):,} held-out {domain.noun} on {plane}.", [])


def draw(models: ModelCache, name):
    """One side's map, drawn for a user, as a generator of (map, caption, path, progress). A map this server has
    built is shown at once; otherwise the held-out digits are encoded CHUNK at a time, with the map cleared (no
    click can land on a map that is not the chosen model's) and the caption saying how far it has got. The
    progress, {"model", "done", "total", "shown"}, is what `stopped` reports on once the drawing has ended."""
    model = mappable_or_error(models, name)
    if built_map(models, name) is None:
        domain = domain_of(model)
        images, labels = domain.heldout(), domain.heldout_labels()
        total, began = len(labels), time.perf_counter()
        yield None, f"**{name}**: encoding {total:,} {domain.noun} to place them on its map...", [], \
            {"model": name, "done": 0, "total": total, "shown": False}
        for done, mapped in latent_map_steps(model, images, CHUNK):
            if mapped is None:
                left = (time.perf_counter() - began) / done * (total - done)
                yield (gr.skip(), f"**{name}**: {done:,} of {total:,} {domain.noun} encoded, about {left:.0f} s left",
                       gr.skip(), {"model": name, "done": done, "total": total, "shown": False})
        keep_map(models, name, (mapped, labels))
    image, caption, path = show_map(models, name)
    yield image, caption, path, {"model": name, "shown": True}


def stopped(progress):
    """Once a drawing has ended -> (map, caption, path): unchanged where it finished, else (it was stopped) the
    map cleared, saying how far it had got."""
    if progress is None:
        return gr.skip(), gr.skip(), gr.skip()
    if not (isinstance(progress, dict) and isinstance(progress.get("model"), str)
            and (progress.get("shown") or all(isinstance(progress.get(k), int) for k in ("done", "total")))):
        raise gr.Error("this map's progress is malformed: choose a model to draw its map")
    if progress.get("shown"):
        return gr.skip(), gr.skip(), gr.skip()
    return (None, f"**Stopped** drawing {progress['model']}'s map after {progress['done']:,} of "
                  f"{progress['total']:,} digits: no map is shown. Choose a model to draw its map.", [])


def apply_preset(models: ModelCache, label, left_request, right_request):
    """A preset -> (left model, right model, both sides' draw requests bumped, the sentence on what to look for)."""
    label = check_choice(label, "preset", presets(models))
    left, right, note = PRESETS[label]
    return left, right, next_request(left_request), next_request(right_request), f"**{label}**: {note}"


def next_request(request) -> int:
    """A side's draw request, one on: every change draws that side (see panel)."""
    return check_int(request, "draw request", 0, 2**53) + 1


def inside_plot(x: int, y: int) -> bool:
    """Whether pixel (x, y) of the picture is inside the plot's frame (not the margins or the legend)."""
    return MARGIN <= x <= MAP_SIZE - MARGIN and MARGIN <= y <= MAP_SIZE - MARGIN


def click(models: ModelCache, name, path, x, y):
    """A click at pixel (x, y) of the map's picture -> (the map with the path so far, the decoded point, the new
    path). A click off the plot (on the legend, in a margin) changes nothing: it is no point of latent space; nor
    does one while the chosen model's map is not drawn (its drawing stopped before it began: the map shown is
    another model's), and this lane never builds a map."""
    model = mappable_or_error(models, name)
    x, y = check_int(x, "x", 0, MAP_SIZE), check_int(y, "y", 0, MAP_SIZE + LEGEND)
    path = check_path(path)
    if not inside_plot(x, y) or built_map(models, name) is None:
        return gr.skip(), gr.skip(), gr.skip()
    latent_map, labels = built_map(models, name)
    point = from_pixel(x, y, frame(latent_map))
    path = (path + [point.tolist()])[-MAX_PATH:]
    decoded = model.decode(latent_map.latent(torch.tensor(point[None], dtype=torch.float32)).to(model.device))
    return draw_map(latent_map, labels, path, domain_of(model).class_names), to_image(decoded, 8), path


def path_frames(models: ModelCache, name, path, frames):
    """The clicked path, walked at even speed -> (strip, GIF path, PNG path)."""
    model = model_or_error(models, name)
    points = np.asarray(check_path(path))
    if len(points) < 2:
        raise gr.Error("click at least two points on the map to make a path")
    frames = check_int(frames, "frames", 2, MAX_FRAMES)
    lengths = np.r_[0, np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))]
    if lengths[-1] == 0:
        raise gr.Error("the path's points are all the same: click somewhere else too")
    along = np.linspace(0, lengths[-1], frames)
    walked = np.stack([np.interp(along, lengths, points[:, k]) for k in range(2)], 1)
    latent_map, _ = models.latent_map(name)
    latents = latent_map.latent(torch.tensor(walked, dtype=torch.float32)).to(model.device)
    return export_frames(models, name, model.decode(latents.reshape(-1, *model.latent_shape)), "latent-path")


def clear_path(models: ModelCache, name):
    """-> (the map without its path, its caption, an empty path); a map not drawn (stopped) is not built here."""
    mappable_or_error(models, name)
    return show_map(models, name) if built_map(models, name) is not None else (gr.skip(), gr.skip(), [])


def export_csv(models: ModelCache, name) -> str:
    """The map's coordinates and each digit's class as a CSV file."""
    mappable_or_error(models, name)
    if built_map(models, name) is None:  # this button's lane is not the long-work one: no 2,000 encodes here
        raise gr.Error(f"{name}'s map is not drawn yet: choose the model to draw it, then export")
    latent_map, labels = built_map(models, name)
    out = export_folder() / f"{name}-latent-map.csv"
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", domain_of(models.domain(name)).class_kind, "u", "v"])
        for i, ((u, v), label) in enumerate(zip(latent_map.coords.tolist(), labels.tolist())):
            writer.writerow([i, label, f"{u:.6g}", f"{v:.6g}"])
    return str(out)


def panel(models: ModelCache, side: str, default):
    with gr.Column():
        name = gr.Dropdown(mappable(models), value=default, label="model", elem_id=f"map-{side}-model")
        with gr.Row(equal_height=True):
            caption = gr.Markdown(elem_id=f"map-{side}-caption")
            stop = gr.Button("Stop", variant="stop", size="sm", scale=0, min_width=80, elem_id=f"map-{side}-stop")
        plot = image_view(type="pil", label="click to decode; clicks make a path", interactive=False,
                          height=MAP_SIZE + LEGEND, width=MAP_SIZE, elem_id=f"map-{side}")
        with gr.Row():
            decoded = image_view(type="pil", label="decoded at the click", height=168, width=168, elem_id=f"map-{side}-decoded")
            with gr.Column():
                frames = gr.Slider(2, 24, value=10, step=1, label="frames along the path")
                make = gr.Button("Path to strip and GIF", elem_id=f"map-{side}-path")
                clear = gr.Button("Clear the path", elem_id=f"map-{side}-clear")
                export = gr.Button("Export coordinates (CSV)", elem_id=f"map-{side}-export")
        strip = image_view(type="pil", label="along the path", elem_id=f"map-{side}-strip")
        with gr.Row():
            gif = gr.File(label="GIF", elem_id=f"map-{side}-gif")
            png = gr.File(label="PNG strip", elem_id=f"map-{side}-png")
            table = gr.File(label="CSV", elem_id=f"map-{side}-csv")
    path, progress = gr.State([]), gr.State(None)  # this user's clicks, and how far this side's drawing has got
    request = gr.State(0)  # bumped by whatever wants this side drawn: opening the tab, a preset

    def on_select(model_name, current, event: gr.SelectData):  # Gradio fills `event` with the pixel clicked
        index = event.index if isinstance(event.index, (list, tuple)) and len(event.index) == 2 else (None, None)
        return click(models, model_name, current, *index)

    # Every event that reads or writes this side's path runs in one queue, in the order made: a "Path" pressed
    # right after a click waited for nothing and drew the path without its last point (under load, none at
    # all). Clicks use trigger mode "multiple": the default drops a click made while the last still decodes.
    # Drawing can mean encoding 2,000 digits (41 s for the flow), so that goes in the long-work lane, not the
    # per-side one: the per-side lane is global, and a map being built must not hold up everyone's clicks.
    # A click comes after its map is shown (draw clears the old one first); one that does not is ignored.
    # One event draws, so that Stop can cancel it: a user's choice of model (`input`, not `change`: a preset
    # sets the model and asks for a draw itself) or a bumped request. The tab's own select event is wired in
    # ui/__init__.py, out of Stop's reach, so it only bumps the request.
    in_order = dict(concurrency_id=f"map-{side}", concurrency_limit=1, api_visibility="private")
    drawing = gr.on([name.input, request.change], lambda n: (yield from draw(models, n)), name,
                    [plot, caption, path, progress], trigger_mode="always_last", api_visibility="private", **LONG_WORK)
    # Stop cancels the drawing, and the caption says what was stopped once the drawing has ended: Gradio's front
    # end fires `then` after a cancelled event too, once the server has ended it, so no step under way lands after.
    stop.click(None, cancels=[drawing], api_visibility="private")
    drawing.then(stopped, progress, [plot, caption, path], api_visibility="private")
    plot.select(on_select, [name, path], [plot, decoded, path], trigger_mode="multiple", **in_order)
    make.click(lambda n, p, f: path_frames(models, n, p, f), [name, path, frames], [strip, gif, png], **in_order)
    clear.click(lambda n: clear_path(models, n), name, [plot, caption, path], **in_order)
    export.click(lambda n: export_csv(models, n), name, table, api_visibility="private")
    return name, request


def build(models: ModelCache):
    gr.Markdown(EXPLANATION)
    gr.Markdown(not_mapped(models), elem_id="map-not-mapped")
    names, offered = mappable(models), presets(models)
    # the first preset's pair by default (content, not a code path), else the first and last mappable models
    left_default, right_default = PRESETS[offered[0]][:2] if offered else (names[0], names[-1]) if names else (None, None)
    with gr.Row(equal_height=True):
        buttons = [gr.Button(label, size="sm", scale=0, min_width=280, elem_id=f"map-preset-{i}",
                             elem_classes=["preset"]) for i, label in enumerate(offered)]
        note = gr.Markdown(elem_id="map-preset-note")
    with gr.Row():
        left_name, left_request = panel(models, "left", left_default)
        right_name, right_request = panel(models, "right", right_default)
    for button, label in zip(buttons, offered):
        button.click(lambda a, b, label=label: apply_preset(models, label, a, b), [left_request, right_request],
                     [left_name, right_name, left_request, right_request, note], api_visibility="private")
    return {"load": [(lambda a, b: (next_request(a), next_request(b)), [left_request, right_request],
                      [left_request, right_request])]}
