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
from ..data import to_uint8
from .models import ModelCache

# Work that can take tens of seconds to minutes (Compare, a denoising run, encoding an upload, building a latent
# map) queues in a lane of its own with at most two running, so however many people start it, the other
# events (samples, edits, interpolations) still find free slots in the default lane.
LONG_WORK = dict(concurrency_id="long", concurrency_limit=2)
# The Playground's Play streams frames for up to PLAY_LIMIT_S: its own lane, so players never hold the slots
# everything else runs in.
PLAYGROUND = dict(concurrency_id="playground", concurrency_limit=4)

__all__ = ["LONG_WORK", "PLAYGROUND", "MAX_SEED", "check_int", "check_float", "check_choice", "to_image", "labelled_strip", "make_pick",
           "picked_latent", "model_or_error", "smooth_or_error", "image_rows"]


def check_int(value, name: str, low: int, high: int) -> int:
    """Accept ints and integral floats (Gradio sends numbers as floats); refuse anything else clearly."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or int(value) != value:
        raise gr.Error(f"{name} must be a whole number, got {value!r}")
    if not low <= int(value) <= high:
        raise gr.Error(f"{name} must be between {low} and {high}, got {int(value)}")
    return int(value)


def check_float(value, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise gr.Error(f"{name} must be a number between {low} and {high}, got {value!r}")
    return float(value)


def check_choice(value, name: str, choices) -> str:
    if value not in choices:
        raise gr.Error(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def model_or_error(models: ModelCache, name) -> LatentModel:
    try:
        return models.get(name)
    except ValueError as error:
        raise gr.Error(str(error)) from error


def one_uint8(x: torch.Tensor) -> np.ndarray:
    """One image (1, 1, H, W), (1, H, W) or (H, W) in [0, 1] -> uint8 (H, W)."""
    return to_uint8(x.reshape(1, 1, *x.shape[-2:]))[0]


def image_view(**options) -> gr.Image:
    """An image output sent as PNG. Gradio's default, WebP, is lossy (it blurs the very pixels people inspect)
    and slow to encode: 4.8 ms for a 280x280 digit against 0.6 ms as PNG, a fifth of an edit's round trip."""
    return gr.Image(format="png", **options)


def to_image(x: torch.Tensor, scale: int = 8) -> Image.Image:
    """One image in [0, 1] -> an enlarged PIL image, pixels kept sharp."""
    image = Image.fromarray(one_uint8(x))
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)


def labelled_strip(images: torch.Tensor, labels: list[str], scale: int = 3) -> Image.Image:
    """Frames side by side with a caption under each (the digit the classifier reads, say)."""
    cell = 28 * scale
    strip = Image.new("L", (len(images) * (cell + 4) + 4, cell + 22), 40)
    draw = ImageDraw.Draw(strip)
    for i, (image, label) in enumerate(zip(images, labels)):
        strip.paste(to_image(image, scale), (4 + i * (cell + 4), 4))
        draw.text((4 + i * (cell + 4) + 2, cell + 7), label, fill=235)
    return strip


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


def export_frames(models, images: torch.Tensor, stem: str) -> tuple[Image.Image, str, str]:
    """Decoded frames -> (a strip labelled with the digit the classifier reads under each, an animated GIF
    that plays there and back so its loop has no jump, the strip as a PNG), the files in a fresh folder."""
    probs, _ = models.classifier().predict(images.cpu())
    strip = labelled_strip(images, [f"{int(p.argmax())} {float(p.max()):.0%}" for p in probs])
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


def picked_latent(models: ModelCache, pick, what: str = "a picked sample",
                  smooth: bool = False) -> tuple[LatentModel, torch.Tensor]:
    """The model and latent a state holds, checked: shape, finiteness, that the model exists and (with
    `smooth`, for edits and paths) that its latent space is one where nearby means similar."""
    if not isinstance(pick, dict) or "model" not in pick or "latent" not in pick:
        raise gr.Error(f"no {what} yet: pick one on the Sample tab first")
    model = (smooth_or_error if smooth else model_or_error)(models, pick["model"])
    try:
        latent = torch.tensor(np.asarray(pick["latent"], dtype=np.float32))
    except (TypeError, ValueError) as error:
        raise gr.Error(f"{what} holds a malformed latent: {error}") from error
    size = int(np.prod(model.latent_shape))
    if latent.numel() != size or not torch.isfinite(latent).all():
        raise gr.Error(f"{what} must be {size} finite numbers for {pick['model']}, got {latent.numel()}")
    return model, latent.reshape(1, *model.latent_shape).to(model.device)


def image_rows(x: torch.Tensor) -> list[list[int]]:
    """One decoded image as 28 rows of 0-255 values: what the JSON API returns."""
    return one_uint8(x).tolist()
