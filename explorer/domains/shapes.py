"""A colour world with known factors: coloured shapes on a plain grey page, 3x32x32, each image drawn from
factors sampled independently (in the manner of dSprites, Matthey et al. 2017, and 3D Shapes, Burgess & Kim
2018), and every image keeping its factor values. Generated here from a seed: no download, and the same seed
gives the same bytes.

    from explorer.domains.shapes import generate, split
    images, factors = generate(1000, seed=0)   # images (N, 32, 32, 3) uint8, factors {name: (N,) array}
    images, factors = split("train")           # the fixed training split; "heldout" for the held-out one

Factors, each uniform over its range and independent of the others:

| factor | range | |
|---|---|---|
| shape | circle, square, triangle | an integer 0, 1, 2 (SHAPES) |
| hue | 0-360 degrees | the shape's colour at saturation 0.8, value 0.9; circular |
| background | 0-0.5 | the page's grey level (the shape is always brighter: value 0.9) |
| scale | 4-9 px | the shape's circumradius-like size (a circle's radius; a square's half side is 0.85 of it) |
| rotation | 0-360 degrees | the phase of the shape's symmetry period (90 degrees for a square, 120 for a triangle), so every value is a distinct picture; circular; a circle looks the same at all |
| x, y | 10-22 px | the shape's centre, in pixels from the left and top |

Drawing is anti-aliased: each pixel's coverage is 0.5 minus the signed distance from its centre to the shape's
edge, clipped to [0, 1] (signed distance functions after Quilez), so a small move of any factor makes a small
change of the image."""

from __future__ import annotations

import colorsys
from functools import lru_cache

import numpy as np

SIZE = 32
SHAPES = ("circle", "square", "triangle")
SYMMETRY = {"circle": None, "square": 90.0, "triangle": 120.0}  # degrees a turn must go to look the same
RANGES = {"hue": (0.0, 360.0), "background": (0.0, 0.5), "scale": (4.0, 9.0), "rotation": (0.0, 360.0),
          "x": (10.0, 22.0), "y": (10.0, 22.0)}
FACTORS = ("shape", *RANGES)
CIRCULAR = {"hue": 360.0, "rotation": 360.0}
SATURATION, VALUE = 0.8, 0.9
SPLITS = {"train": (20_000, 0), "heldout": (2_000, 1)}  # (images, seed): fixed for ever, disjoint seeds
CHUNK = 2_000


def sample_factors(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """n independent draws of every factor, in FACTORS order (the order the seed's stream is spent in)."""
    factors = {"shape": rng.integers(0, len(SHAPES), n)}
    for name, (low, high) in RANGES.items():
        factors[name] = rng.uniform(low, high, n)
    return factors


def signed_distance(shape: np.ndarray, px: np.ndarray, py: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Distance in pixels from points (px, py), in the shape's own upright frame centred on it, to the edge of
    each shape: negative inside. Arrays broadcast as (N, 1, 1) factors against (N, H, W) points."""
    circle = np.hypot(px, py) - scale
    half = 0.85 * scale  # square: a box's distance (Quilez)
    qx, qy = np.abs(px) - half, np.abs(py) - half
    square = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0)
    side = scale * np.sqrt(3) / 2  # triangle: equilateral, circumradius `scale`, half its side here (Quilez)
    k = np.sqrt(3)
    tx, ty = np.abs(px) - side, -py + side / k  # its apex up (rows grow downwards)
    fold = tx + k * ty > 0
    tx, ty = np.where(fold, (tx - k * ty) / 2, tx), np.where(fold, (-k * tx - ty) / 2, ty)
    tx = tx - np.clip(tx, -2 * side, 0)
    triangle = -np.hypot(tx, ty) * np.sign(ty)
    return np.select([shape == 0, shape == 1], [circle, square], triangle)


def render(factors: dict[str, np.ndarray]) -> np.ndarray:
    """Images (N, 32, 32, 3) uint8 of the given factors (see the module docstring)."""
    shape = factors["shape"].astype(np.int64)[:, None, None]
    column = lambda name: np.asarray(factors[name], np.float64)[:, None, None]  # noqa: E731
    centres = np.arange(SIZE, dtype=np.float64) + 0.5
    dx, dy = centres[None, None, :] - column("x"), centres[None, :, None] - column("y")
    period = np.array([SYMMETRY[kind] or 360.0 for kind in SHAPES])[shape]  # a circle's: any, so a whole turn
    turn = np.radians(column("rotation") / 360.0 * period)
    # into the shape's own frame: turned back by its rotation
    px, py = np.cos(turn) * dx + np.sin(turn) * dy, -np.sin(turn) * dx + np.cos(turn) * dy
    coverage = np.clip(0.5 - signed_distance(shape, px, py, column("scale")), 0.0, 1.0)[..., None]
    colour = np.array([colorsys.hsv_to_rgb(h / 360.0, SATURATION, VALUE) for h in factors["hue"]])[:, None, None, :]
    page = column("background")[..., None]
    image = page * (1 - coverage) + colour * coverage
    return np.round(image * 255).astype(np.uint8)


def generate(n: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """n images and their factors from `seed`: the same seed gives the same bytes."""
    factors = sample_factors(n, np.random.default_rng(seed))
    images = np.concatenate([render({k: v[i:i + CHUNK] for k, v in factors.items()}) for i in range(0, n, CHUNK)])
    return images, factors


def split(name: str = "train") -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The fixed training split (20,000 images, seed 0) or held-out split (2,000, seed 1)."""
    if name not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {name!r}")
    return generate(*SPLITS[name])


# --- the domain: what the views know of this world (explorer.domains) ------------------------------------------

UNITS = {"hue": "deg", "background": "of white", "scale": "px", "rotation": "deg of a turn of its symmetry",
         "x": "px from the left", "y": "px from the top"}


class Shapes:
    """The shapes world behind the Domain face: captions, measures and class locks read by the shipped measurer
    (explorer.models.measurer), held-out images with their known factors."""

    name = "shapes"
    has_classes = True
    has_heldout = True
    noun, item, class_kind = "shapes", "image", "shape"  # its images, one of them, one of its classes
    class_names = SHAPES
    about = "coloured shapes drawn from known factors (the shapes world)"  # what its models were trained on

    def classifier(self, device):
        return _load_classifier(device)

    def captions(self, images, classifier=None) -> list[str]:
        """The shape the measurer reads in each image, and how sure it is: "square 98%"."""
        probs, _ = (classifier or self.classifier("cpu")).predict(images.cpu())
        return [f"{SHAPES[int(p.argmax())]} {float(p.max()):.0%}" for p in probs]

    def heldout(self):
        """The 2,000 held-out images, (N, 3, 32, 32) in [0, 1]."""
        return _heldout()[0]

    def heldout_labels(self) -> np.ndarray:
        """Their shapes (0 circle, 1 square, 2 triangle), in heldout()'s order."""
        return _heldout()[1]["shape"]

    def heldout_factors(self) -> dict[str, np.ndarray]:
        """Every factor of every held-out image, in heldout()'s order: the truth the disentanglement scores use."""
        return _heldout()[1]

    def prepare_upload(self, source, image_shape=(3, SIZE, SIZE)):
        from .generic import fit_picture

        return fit_picture(source, image_shape)

    def measure(self, images) -> dict[str, np.ndarray]:
        """Every continuous factor as the measurer reads it back, in the factor's units."""
        return read_factors(images)

    def edit_measures(self, image_shape=(3, SIZE, SIZE)):
        """The continuous factors as the measurer reads them, every one a slider with a lock (see _measures)."""
        return _measures()


def read_factors(images) -> dict[str, np.ndarray]:
    """images (N, 3, 32, 32) in [0, 1] -> {factor: (N,) floats} for every continuous factor, read by the measurer
    on the images' own device."""
    import torch

    from ..metrics import load_measurer

    device = images.device if isinstance(images, torch.Tensor) else "cpu"
    read, _ = load_measurer(device).read(torch.as_tensor(images))
    return {name: read[name].astype(np.float64) for name in RANGES}


def _load_classifier(device):
    from ..metrics import load_shape_classifier

    return load_shape_classifier(device)


@lru_cache(maxsize=1)
def _measures():
    """Every continuous factor a slider with a lock. The shape is read (captions, the latent map's colours) but
    not edited: a slider moves a quantity, and "toward a square" is a class, which the Edit tab's class
    controls (ten digits' worth) do not offer for this domain yet."""
    from ..attributes import Measures

    names = tuple(RANGES)
    return Measures(names, dict(UNITS), names, read_factors, circular=dict(CIRCULAR))


@lru_cache(maxsize=1)
def _heldout():
    """(held-out images as floats (N, 3, 32, 32), their factors), generated once per process."""
    from ..data import to_tensor

    images, factors = split("heldout")
    return to_tensor(images), factors


DOMAIN = Shapes()
