"""What every tab shares: argument checks (the server checks everything itself, whatever the UI's sliders
allow), image conversion, and the per-user latent state.

A picked latent is held in gr.State as {"model": name, "latent": list of floats, "label": text}: plain
data, never a model, checked against the model's latent shape whenever it is used."""

from __future__ import annotations

import atexit
import math
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

import gradio as gr
import imageio.v3 as iio
import numpy as np
import torch
from PIL import Image, ImageDraw

from ..base import MAX_SEED, LatentModel
from ..data import display_scale, to_uint8
from ..domains import domain_of
from .models import ModelCache

# Work that can take tens of seconds to minutes (Compare, a denoising run, encoding an upload, building a latent
# map) queues in a lane of its own with at most two running, so however many people start it, the other
# events (samples, edits, interpolations) still find free slots in the default lane.
LONG_WORK = dict(concurrency_id="long", concurrency_limit=2)
# The Playground's Play streams frames for up to PLAY_LIMIT_S: its own lane, so players never hold the slots
# everything else runs in.
PLAYGROUND = dict(concurrency_id="playground", concurrency_limit=4)

__all__ = ["LONG_WORK", "PLAYGROUND", "MAX_SEED", "LATENT_LIMIT", "check_int", "check_float", "check_choice", "shown", "to_image",
           "labelled_strip", "make_pick", "picked_latent", "model_or_error", "smooth_or_error", "image_rows"]


def shown(value) -> str:
    """A value as an error message shows it: short, in JSON's words for what a client sends (true, null)."""
    if isinstance(value, bool) or value is None:
        return {True: "true (a boolean)", False: "false (a boolean)", None: "null (nothing)"}[value]
    if not _finite(value):
        return f"{value}, which is not finite"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_number(value) -> bool:
    """A JSON number: an int or a float, never a boolean (JSON's true is not 1)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value) -> bool:
    """False for NaN and the infinities (a float); every int is finite, however large (math.isfinite would overflow)."""
    return not isinstance(value, float) or math.isfinite(value)


def check_int(value, name: str, low: int, high: int) -> int:
    """Accept ints and integral floats (JSON and Gradio send 7 as 7.0); refuse booleans, fractions, NaN and text,
    and anything outside [low, high], with a message naming the argument and its range."""
    if not _is_number(value) or not _finite(value) or int(value) != value:
        raise gr.Error(f"{name} must be a whole number from {low} to {high}, got {shown(value)}")
    if not low <= int(value) <= high:
        raise gr.Error(f"{name} must be between {low} and {high}, got {shown(int(value))}")
    return int(value)


def check_float(value, name: str, low: float, high: float) -> float:
    """A finite number in [low, high]; booleans, NaN, infinities and text are refused, saying which they were."""
    if not _is_number(value):
        raise gr.Error(f"{name} must be a number between {low:g} and {high:g}, got {shown(value)}")
    if not _finite(value):
        raise gr.Error(f"{name} must be a finite number between {low:g} and {high:g}, got {shown(value)}")
    if not low <= value <= high:
        raise gr.Error(f"{name} must be between {low:g} and {high:g}, got {shown(value)}")
    return float(value)


def check_choice(value, name: str, choices) -> str:
    try:
        # a boolean equals 0 or 1, so `True in (1, 2)` holds: a choice must be the very value offered
        known = value in choices and not (isinstance(value, bool) and not any(c is value for c in choices))
    except TypeError:  # an unhashable value (a list, a dict) asked of a set
        known = False
    if not known:
        raise gr.Error(f"{name} must be one of {', '.join(map(str, choices))}; got {shown(value)}")
    return value


def model_or_error(models: ModelCache, name) -> LatentModel:
    try:
        return models.get(name)
    except ValueError as error:
        raise gr.Error(str(error)) from error


def one_uint8(x: torch.Tensor) -> np.ndarray:
    """One image (1, C, H, W), (C, H, W) or (H, W) in [0, 1] -> uint8 (H, W) grey or (H, W, 3) colour."""
    channels = x.shape[-3] if x.dim() >= 3 else 1
    return to_uint8(x.reshape(1, channels, *x.shape[-2:]))[0]


def image_view(**options) -> gr.Image:
    """An image output sent as PNG. Gradio's default, WebP, is lossy (it blurs the very pixels people inspect)
    and slow to encode: 4.8 ms for a 280x280 digit against 0.6 ms as PNG, a fifth of an edit's round trip."""
    return gr.Image(format="png", **options)


def to_image(x: torch.Tensor, scale: int = 8) -> Image.Image:
    """One image in [0, 1] -> a PIL image shown as large as a digit enlarged `scale` times (data.display_scale),
    pixels kept sharp."""
    image = Image.fromarray(one_uint8(x))
    scale = display_scale(image.height, image.width, scale)
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)


def labelled_strip(images: torch.Tensor, labels: list[str], scale: int = 3) -> Image.Image:
    """Frames side by side with a caption under each (the digit the classifier reads, say), centred in its cell.

    The captions are set in Pillow's own scalable font (load_default(size), Pillow >= 10.1; nothing downloaded) at
    a quarter of a cell's height, never under 14 px (at the default scale 21 px, digits 14 px high): the bitmap
    font drawn before had digits 7 px high, unreadable once a strip of many frames was scaled down to fit the
    page. A caption too wide for its cell is set smaller until it fits."""
    scale = display_scale(images.shape[-2], images.shape[-1], scale)
    width, height = images.shape[-1] * scale, images.shape[-2] * scale
    mode, background, ink = ("RGB", (40, 40, 40), (235, 235, 235)) if images.shape[-3] == 3 else ("L", 40, 235)
    draw = ImageDraw.Draw(Image.new(mode, (1, 1)))
    size = max(14, height // 4)
    while size > 8 and any(draw.textlength(label, font_size=size) > width - 4 for label in labels):
        size -= 1
    band = size + 12  # the captions' row under the frames
    strip = Image.new(mode, (len(images) * (width + 4) + 4, height + 4 + band), background)
    draw = ImageDraw.Draw(strip)
    for i, (image, label) in enumerate(zip(images, labels)):
        left = 4 + i * (width + 4)
        cell = Image.fromarray(one_uint8(image))
        strip.paste(cell.resize((width, height), Image.Resampling.NEAREST), (left, 4))
        draw.text((left + width / 2, height + 4 + band / 2), label, fill=ink, font_size=size, anchor="mm")
    return strip


def labelled_grid(images: torch.Tensor, row_labels: list[str], column_labels: list[str], scale: int = 2) -> Image.Image:
    """Images (rows, columns, C, H, W) as a grid, each row's label at its left and each column's above (set as
    labelled_strip sets its captions: Pillow's scalable font, never under 14 px)."""
    rows, columns = images.shape[:2]
    scale = display_scale(images.shape[-2], images.shape[-1], scale)
    width, height = images.shape[-1] * scale, images.shape[-2] * scale
    mode, background, ink = ("RGB", (40, 40, 40), (235, 235, 235)) if images.shape[-3] == 3 else ("L", 40, 235)
    draw = ImageDraw.Draw(Image.new(mode, (1, 1)))
    size = max(14, min(height // 3, 18))
    margin = int(max(draw.textlength(label, font_size=size) for label in row_labels)) + 16
    band = size + 12
    grid = Image.new(mode, (margin + columns * (width + 4) + 4, band + rows * (height + 4) + 4), background)
    draw = ImageDraw.Draw(grid)
    for c, label in enumerate(column_labels):
        draw.text((margin + 4 + c * (width + 4) + width / 2, band / 2), label, fill=ink, font_size=size, anchor="mm")
    for r in range(rows):
        top = band + 4 + r * (height + 4)
        draw.text((margin - 8, top + height / 2), row_labels[r], fill=ink, font_size=size, anchor="rm")
        for c in range(columns):
            cell = Image.fromarray(one_uint8(images[r, c])).resize((width, height), Image.Resampling.NEAREST)
            grid.paste(cell, (margin + 4 + c * (width + 4), top))
    return grid


EXPORT_MAX_AGE_S = 5 * 60  # an exported file outlives the download it was made for by this long (Gradio's copy too)
_exports: dict[str, Path] = {}
_exports_guard = threading.Lock()


def export_folder() -> Path:
    """A fresh folder for one export's files, inside one folder per server process that is removed at exit.
    Gradio copies a returned file into its own cache (which server.CacheSweeper cleans), so ours are needed only
    until then; each new export removes the ones older than EXPORT_MAX_AGE_S, so hours of use leave at most
    five minutes' files behind."""
    with _exports_guard:
        if "root" not in _exports:
            _exports["root"] = Path(tempfile.mkdtemp(prefix="latent-explorer-exports-"))
            atexit.register(shutil.rmtree, _exports["root"], ignore_errors=True)
        root = _exports["root"]
    oldest = time.time() - EXPORT_MAX_AGE_S
    for old in root.iterdir():
        try:
            if old.stat().st_mtime < oldest:
                shutil.rmtree(old, ignore_errors=True)
        except FileNotFoundError:  # another request removed it first
            pass
    folder = root / uuid.uuid4().hex
    folder.mkdir()
    return folder


def export_frames(models, name: str, images: torch.Tensor, stem: str) -> tuple[Image.Image, str, str]:
    """Decoded frames of model `name` -> (a strip captioned by the model's domain under each frame (the digit the
    classifier reads; the frame's number where the domain reads nothing), an animated GIF
    that plays there and back so its loop has no jump, the strip as a PNG), the files in a fresh folder and
    named after `stem`, which says what they hold ("vae-mnist-slerp-10-frames" -> vae-mnist-slerp-10-frames.gif
    and vae-mnist-slerp-10-frames-strip.png): a download keeps its name, so "interpolation.gif" told nobody which."""
    domain = domain_of(models.domain(name))
    captions = domain.captions(images, models.classifier(domain) if domain.has_classes else None)
    strip = labelled_strip(images, [caption or f"#{i}" for i, caption in enumerate(captions)])
    # a file name of letters, digits, '.', '-' and '_' only, whatever the stem was made from (a pick's label, say)
    stem = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "-" for c in stem).strip("-.") or "frames"
    out = export_folder()
    big = [np.asarray(to_image(image, 6)) for image in images]
    gif, png = out / f"{stem}.gif", out / f"{stem}-strip.png"
    iio.imwrite(gif, big + big[-2:0:-1], duration=80, loop=0)
    strip.save(png)
    return strip, str(gif), str(png)


def make_pick(model_name: str, latent: torch.Tensor, label: str) -> dict:
    return {"model": model_name, "latent": latent.detach().cpu().reshape(-1).tolist(), "label": label}


def smooth_or_error(models: ModelCache, name) -> LatentModel:
    """The model, if moving its latent a little moves its image a little; else a message saying why not."""
    model = model_or_error(models, name)
    if not model.smooth_latent:
        raise gr.Error(f"{name} ({model.family}) cannot be edited or interpolated: its latent is sampling noise, "
                       "and a small change to it gives an unrelated image. Models that can: "
                       f"{', '.join(models.names_where('smooth_latent'))}")
    return model


# the largest latent entry accepted: far past any latent a shipped model samples or encodes (under 50 at
# temperature 2, under 20 for encoded digits, white squares and noise included), short of where decoders overflow
LATENT_LIMIT = 1e4


def picked_latent(models: ModelCache, pick, what: str = "a picked sample",
                  smooth: bool = False, where_from: str = "pick one on the Sample tab first") -> tuple[LatentModel, torch.Tensor]:
    """The model and latent a state (or an API call) holds, checked: that the model exists and (with `smooth`, for
    edits and paths) that its latent space is one where nearby means similar; that the latent is a flat list of
    as many numbers as the model's latent has, each finite and within +-LATENT_LIMIT. A refusal names the entry."""
    if not isinstance(pick, dict) or "model" not in pick or "latent" not in pick:
        raise gr.Error(f"no {what.removeprefix('a ')} yet: {where_from}")
    model = (smooth_or_error if smooth else model_or_error)(models, pick["model"])
    values, name, size = pick["latent"], pick["model"], int(np.prod(model.latent_shape))
    if not isinstance(values, (list, tuple)):
        raise gr.Error(f"{what} is malformed: it must be a flat list of {size} finite numbers for {name}, got {shown(values)}")
    if len(values) != size:  # before reading the entries: a client may send millions
        raise gr.Error(f"{what} must be {size} finite numbers for {name}, got a list of {len(values)}")
    for i, value in enumerate(values):
        if not _is_number(value):
            raise gr.Error(f"{what} is malformed: entry {i} is {shown(value)}, not a number ({name} needs {size} finite numbers)")
        if not (_finite(value) and abs(value) <= LATENT_LIMIT):
            problem = shown(value) if not _finite(value) else f"{shown(value)}, outside -{LATENT_LIMIT:g} to {LATENT_LIMIT:g}"
            count = sum(1 for v in values if _is_number(v) and not (_finite(v) and abs(v) <= LATENT_LIMIT))
            others = f" ({count} entries are refused)" if count > 1 else ""
            raise gr.Error(f"{what} must be {size} finite numbers from -{LATENT_LIMIT:g} to {LATENT_LIMIT:g} for {name}: "
                           f"entry {i} is {problem}{others}")
    latent = torch.tensor(values, dtype=torch.float32)
    return model, latent.reshape(1, *model.latent_shape).to(model.device)


def image_rows(x: torch.Tensor) -> list:
    """One decoded image as rows of 0-255 values (grey), or of [r, g, b] triples (colour): what the JSON API returns."""
    return one_uint8(x).tolist()


# --- long work, watched and stopped -------------------------------------------------------------------------

class Stopped(Exception):
    """Raised inside stopped work at its next progress report (see `watched`)."""


def watched(work, every_s: float = 0.5, poll_s: float | None = None):
    """Run `work(report)` in a worker thread, where `report(done, total)` is its progress callback; yield
    ("progress", done, total, elapsed seconds) for the first report and then at most every `every_s`, and finally ("done", result); with
    `poll_s`, also ("waiting", elapsed seconds) whenever that long passes with no report (so a handler yields, and a
    cancel can land, even while one step of the work takes seconds). A handler
    that is a generator over this is stopped by Gradio (a Stop button's `cancels`, or the page closing) by
    closing it, and closing it makes the work's next report raise Stopped: a function cannot be interrupted
    from outside, so the work ends at its next report and the slot and the CPU are free at once."""
    import queue

    updates: queue.Queue = queue.Queue()
    stop = threading.Event()
    began = time.perf_counter()

    def report(done, total):
        if stop.is_set():
            raise Stopped()
        updates.put(("progress", done, total))

    def run():
        try:
            updates.put(("done", work(report)))
        except BaseException as error:  # handed to the generator, which raises it where Gradio reports it
            updates.put(("error", error))

    threading.Thread(target=run, daemon=True, name="watched-work").start()
    last = -every_s  # the first report is always shown: fast work on a fast machine still says what it does
    try:
        while True:
            try:
                kind, *payload = updates.get(timeout=poll_s)
            except queue.Empty:
                yield ("waiting", time.perf_counter() - began)
                continue
            if kind == "error":
                raise payload[0]
            if kind == "done":
                yield ("done", payload[0])
                return
            now = time.perf_counter() - began
            if now - last >= every_s:
                last = now
                yield ("progress", *payload, now)
    finally:
        stop.set()


def time_left(done: float, total: float, elapsed: float) -> str:
    """'about 20 s left', from the rate so far ('' until something is done)."""
    if done <= 0 or total <= done:
        return ""
    left = elapsed * (total - done) / done
    return f"about {left:.0f} s left" if left < 90 else f"about {left / 60:.0f} min left"
