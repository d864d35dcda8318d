"""The Latent map tab: every held-out digit encoded and drawn on a plane of latent space, coloured by its
class. Clicking anywhere decodes that point; successive clicks draw a path that becomes a strip and a GIF;
two maps side by side (an autoencoder's and a VAE's, say) show where one has holes the other does not."""

from __future__ import annotations

import csv

import gradio as gr
import numpy as np
import torch
from PIL import Image, ImageDraw

from ..latent import LatentMap
from .common import LONG_WORK, check_int, export_folder, export_frames, image_view, model_or_error, to_image
from .models import ModelCache

MAP_SIZE = 420      # pixels of the square plot
MARGIN = 14
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


def mappable(models: ModelCache) -> list[str]:
    """Models whose encoder is one network pass; 2-D latents first, since their map is the latent itself."""
    names = models.names_where("encode_is_fast")
    return sorted(names, key=lambda n: ("2d" not in n, names.index(n)))


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


def draw_map(latent_map: LatentMap, labels: np.ndarray, path: list | None = None) -> Image.Image:
    """Every point as a dot in its class colour, a legend, and the user's path on top."""
    window = frame(latent_map)
    image = Image.new("RGB", (MAP_SIZE, MAP_SIZE + 24), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([MARGIN, MARGIN, MAP_SIZE - MARGIN, MAP_SIZE - MARGIN], outline="#bbbbbb")
    order = np.random.default_rng(0).permutation(len(labels))  # no class painted over all the others
    for (x, y), label in zip(to_pixels(latent_map.coords.numpy()[order], window), labels[order]):
        draw.ellipse([x - 1.6, y - 1.6, x + 1.6, y + 1.6], fill=PALETTE[int(label)])
    for digit, colour in enumerate(PALETTE):
        draw.rectangle([MARGIN + digit * 40, MAP_SIZE + 6, MARGIN + digit * 40 + 10, MAP_SIZE + 16], fill=colour)
        draw.text((MARGIN + digit * 40 + 14, MAP_SIZE + 5), str(digit), fill="black")
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


def show_map(models: ModelCache, name):
    """-> (the map with no path, a caption, an empty path)."""
    model = model_or_error(models, name)
    if not model.encode_is_fast:
        raise gr.Error(f"{name} has no one-pass encoder to place 2,000 digits with; choose one of {', '.join(mappable(models))}")
    latent_map, labels = models.latent_map(name)
    plane = ("its 2-D latent" if model.latent_shape == (2,) else
             f"the top two principal components of its {int(np.prod(model.latent_shape))}-D codes "
             f"({float(latent_map.explained[0]):.0%} and {float(latent_map.explained[1]):.0%} of their variance)")
    return draw_map(latent_map, labels), f"**{name}**: {len(labels):,} held-out digits on {plane}.", []


def click(models: ModelCache, name, path, x, y):
    """A click at pixel (x, y) of the map -> (the map with the path so far, the decoded point, the new path)."""
    model = model_or_error(models, name)
    if not model.encode_is_fast:
        raise gr.Error(f"{name} has no latent map")
    x, y = check_int(x, "x", 0, MAP_SIZE), check_int(y, "y", 0, MAP_SIZE)
    latent_map, labels = models.latent_map(name)
    point = from_pixel(x, y, frame(latent_map))
    path = (check_path(path) + [point.tolist()])[-MAX_PATH:]
    decoded = model.decode(latent_map.latent(torch.tensor(point[None], dtype=torch.float32)).to(model.device))
    return draw_map(latent_map, labels, path), to_image(decoded, 8), path


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
    return export_frames(models, model.decode(latents.reshape(-1, *model.latent_shape)), "latent-path")


def export_csv(models: ModelCache, name) -> str:
    """The map's coordinates and each digit's class as a CSV file."""
    model_or_error(models, name)
    latent_map, labels = models.latent_map(name)
    out = export_folder() / f"{name}-latent-map.csv"
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "digit", "u", "v"])
        for i, ((u, v), label) in enumerate(zip(latent_map.coords.tolist(), labels.tolist())):
            writer.writerow([i, label, f"{u:.6g}", f"{v:.6g}"])
    return str(out)


def panel(models: ModelCache, side: str, default):
    with gr.Column():
        name = gr.Dropdown(mappable(models), value=default, label="model", elem_id=f"map-{side}-model")
        caption = gr.Markdown(elem_id=f"map-{side}-caption")
        plot = image_view(type="pil", label="click to decode; clicks make a path", interactive=False,
                        height=MAP_SIZE + 24, width=MAP_SIZE, elem_id=f"map-{side}")
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
    path = gr.State([])

    def on_select(model_name, current, event: gr.SelectData):  # Gradio fills `event` with the pixel clicked
        index = event.index if isinstance(event.index, (list, tuple)) and len(event.index) == 2 else (None, None)
        return click(models, model_name, current, *index)

    # Every event that reads or writes this side's path runs in one queue, in the order made: a "Path" pressed
    # right after a click waited for nothing and drew the path without its last point (under load, none at
    # all). Clicks use trigger mode "multiple": the default drops a click made while the last still decodes.
    # Choosing a model can mean encoding 2,000 digits (41 s for the flow), so that goes in the long-work lane,
    # not the per-side one: the per-side lane is global, and a map being built must not hold up everyone's clicks.
    # A click comes only after its map is shown, so the map it reads is built by then.
    in_order = dict(concurrency_id=f"map-{side}", concurrency_limit=1, api_visibility="private")
    name.change(lambda n: show_map(models, n), name, [plot, caption, path], api_visibility="private", **LONG_WORK)
    plot.select(on_select, [name, path], [plot, decoded, path], trigger_mode="multiple", **in_order)
    make.click(lambda n, p, f: path_frames(models, n, p, f), [name, path, frames], [strip, gif, png], **in_order)
    clear.click(lambda n: show_map(models, n), name, [plot, caption, path], **in_order)
    export.click(lambda n: export_csv(models, n), name, table, api_visibility="private")
    return name, (lambda n: show_map(models, n), name, [plot, caption, path])


def build(models: ModelCache):
    gr.Markdown(EXPLANATION)
    names = mappable(models)
    left_default = next((n for n in names if n.startswith("ae")), names[0] if names else None)
    right_default = next((n for n in names if n.startswith("vae")), names[-1] if names else None)
    with gr.Row():
        left = panel(models, "left", left_default)
        right = panel(models, "right", right_default)
    return {"load": [left[1], right[1]]}
