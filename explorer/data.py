"""Digits to train and evaluate on: the shipped MNIST subset, the official files, or a folder of images.

The repository ships 14,000 MNIST digits (see data/README.md). They are split once, with a fixed seed,
into 12,000 training images and 2,000 held-out images that only evaluation touches. When the official
files (train-images-idx3-ubyte[.gz] and friends) are put in the data folder, the official 60k/10k split
is used instead. Images are returned as uint8 arrays (N, 28, 28); `to_tensor` gives the k/255 floats
every model takes.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "mnist"
HELDOUT_SIZE = 2000
SPLIT_SEED = 0  # fixed for ever: changing it would leak held-out digits into training
MAX_UPLOAD_PIXELS = 40_000_000  # larger uploads are refused before decoding, not after

SHIPPED_FILES = {
    "images": ["train4k-images-idx3-ubyte", "t10k-images-idx3-ubyte"],
    "labels": ["train4k-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"],
}
OFFICIAL_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "heldout": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class DataError(ValueError):
    """Raised for data the project cannot read, with what to do about it."""


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) as a numpy array of its declared shape. A damaged file is
    refused by its name, not its path: the message can reach the app's users, who need not know where data lives."""
    path = Path(path)
    try:
        raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise DataError(f"{path.name} is not a readable gzip file ({type(error).__name__})") from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path.name} is not an IDX file (bad magic number)")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in dtypes:
        raise DataError(f"{path.name}: unknown IDX data type 0x{raw[2]:02x}")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path.name}: cut short inside its header")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(dtypes[raw[2]])
    values = (len(raw) - 4 - 4 * ndim) // dtype.itemsize
    if values != int(np.prod(shape)) or (len(raw) - 4 - 4 * ndim) % dtype.itemsize:
        raise DataError(f"{path.name}: holds {values} values, header says {shape}")
    return np.frombuffer(raw, dtype=dtype, count=values, offset=4 + 4 * ndim).reshape(shape)


def _find(data_dir: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (data_dir / name).exists():
            return data_dir / name
    return None


@dataclass(frozen=True)
class Digits:
    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # (N,) int64, -1 where unknown
    source: str  # which files and split, recorded in checkpoints
    domain: str | None = "digits"  # what the views know of this data (explorer.domains); None: a user's folder

    def __len__(self) -> int:
        return len(self.images)


def load_mnist(split: str = "train", data_dir: str | Path | None = None) -> Digits:
    """The training or held-out digits. Uses the official split when the official files are present."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', not {split!r}")
    data_dir = Path(data_dir) if data_dir else DATA_DIR
    official = [_find(data_dir, s) for s in OFFICIAL_FILES[split]]
    if _find(data_dir, OFFICIAL_FILES["train"][0]) and all(official):
        images, labels = read_idx(official[0]), read_idx(official[1]).astype(np.int64)
        return Digits(images, labels, f"mnist-official:{split}")
    paths = {k: [_find(data_dir, s) for s in v] for k, v in SHIPPED_FILES.items()}
    missing = [s for k, v in SHIPPED_FILES.items() for s, p in zip(v, paths[k]) if p is None]
    if missing:
        # the shipped folder by its place in the repository (the app shows this message to its users); a folder the
        # caller named, by the name they gave
        where = "data/mnist/ (see data/README.md)" if data_dir == DATA_DIR else str(data_dir)
        raise DataError(f"MNIST files missing from {where}: {', '.join(missing)}")
    images = np.concatenate([read_idx(p) for p in paths["images"]])
    labels = np.concatenate([read_idx(p) for p in paths["labels"]]).astype(np.int64)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    chosen = order[:HELDOUT_SIZE] if split == "heldout" else order[HELDOUT_SIZE:]
    return Digits(images[chosen], labels[chosen], f"mnist-shipped-14k:{split}(seed={SPLIT_SEED})")


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) grey or (N, H, W, 3) colour -> float (N, C, H, W) holding k/255, the form every model takes."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    return x.permute(0, 3, 1, 2).contiguous() if x.dim() == 4 else x.unsqueeze(1)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float images in [0, 1] -> uint8: grey (N, 1, H, W) or (N, H, W) -> (N, H, W); colour (N, 3, H, W) ->
    (N, H, W, 3), the layout PIL and imageio take."""
    x = x.detach().float().cpu().clamp(0, 1)
    if x.dim() == 4:
        x = x[:, 0] if x.shape[1] == 1 else x.permute(0, 2, 3, 1)
    return (x * 255).round().to(torch.uint8).numpy()


def display_scale(height: int, width: int, scale: int) -> int:
    """How many times to enlarge an image so it shows as large as a 28 px digit enlarged `scale` times: a 64 px
    butterfly is not drawn at 512 px where a digit is drawn at 224, nor a 256 px image at 2048."""
    return max(1, round(scale * 28 / max(height, width)))


# --- user images ------------------------------------------------------------------------------------------


def open_image(source) -> Image.Image:
    """Open a path, bytes, numpy array or PIL image as a PIL image, refusing what is not a sane image."""
    try:
        if isinstance(source, Image.Image):
            image = source
        elif isinstance(source, np.ndarray):
            array = source
            if array.ndim not in (2, 3) or array.size == 0:
                raise DataError(f"an image array must be 2-D or 3-D and non-empty, got shape {array.shape}")
            if array.dtype == bool:
                array = array.astype(np.uint8) * 255
            elif array.dtype != np.uint8:
                array = array.astype(np.float64)
                if not np.isfinite(array).all():
                    raise DataError("the image array holds NaN or infinite values")
                low, high = array.min(), array.max()
                # floats in [0, 1] are intensities already; any other range is stretched to 0-255
                scale = (array if low >= 0 and high <= 1 else (array - low) / ((high - low) or 1))
                array = (scale * 255).round().astype(np.uint8)
            image = Image.fromarray(array.squeeze(-1) if array.ndim == 3 and array.shape[-1] == 1 else array)
        else:
            image = Image.open(source)  # reads the header only, so the size is checked before decoding
            if image.width * image.height > MAX_UPLOAD_PIXELS:
                raise DataError(f"image too large: {image.width}x{image.height} is over {MAX_UPLOAD_PIXELS:,} pixels")
            image.load()
    # Pillow's own messages name the file's path on the server (an upload's temporary copy): say what was wrong
    # with the input instead, never where it lives
    except DataError:
        raise
    except Image.DecompressionBombError as error:
        raise DataError(f"image too large (over {MAX_UPLOAD_PIXELS:,} pixels)") from error
    except UnidentifiedImageError as error:
        raise DataError("not a readable image: use a PNG, JPEG, GIF, BMP, TIFF or WebP picture") from error
    except FileNotFoundError as error:  # the app's cache drops an upload a few minutes after it arrived
        raise DataError("the image is no longer there (an upload is kept for a few minutes): upload it again") from error
    except Exception as error:  # damaged files meet Pillow's decoders as OSError, ValueError, EOFError, struct.error
        # and more (tests/test_api.py feeds it corrupted files); the error's name is kept for whoever debugs
        what = "the array cannot be shown as an image" if isinstance(source, np.ndarray) else "the file is damaged or cut short"
        raise DataError(f"not a readable image: {what} ({type(error).__name__})") from error
    if image.width * image.height > MAX_UPLOAD_PIXELS:
        raise DataError(f"image too large: {image.width}x{image.height} is over {MAX_UPLOAD_PIXELS:,} pixels")
    return image


def _to_gray(image: Image.Image) -> np.ndarray:
    """Any mode (1, L, P, RGB, RGBA, LA, I;16, I, F, CMYK) -> float gray in [0, 1]; alpha composited on white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        return (array - low) / (high - low) if high > low else np.zeros_like(array)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.asarray(image.convert("L"), dtype=np.float64) / 255.0


def prepare_digit(source) -> np.ndarray:
    """Convert any image to an MNIST-style digit: uint8 (28, 28), white ink on black.

    The steps follow how MNIST itself was made (LeCun et al. 1998): grayscale; ink made bright (inverted
    when the picture is dark on light, judged by its border); cropped to the ink; scaled, aspect kept, to
    fit a 20x20 box with anti-aliasing; placed in 28x28 so that its centre of mass is at the centre.
    """
    image = open_image(source)
    try:  # the pixels decoded, but a damaged EXIF block or palette is only read here
        image = ImageOps.exif_transpose(image)
        if max(image.size) > 1024:  # 1. shrink huge pictures early; the result is 20 pixels tall anyway
            image = image.copy()
            image.thumbnail((1024, 1024), Image.Resampling.LANCZOS)
        gray = _to_gray(image)
    except Exception as error:
        raise DataError(f"not a readable image: the file is damaged ({type(error).__name__})") from error
    def border_level(a: np.ndarray) -> float:
        return float(np.median(np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])))

    if border_level(gray) > 0.5:  # 2. dark ink on a light page -> light ink on black
        gray = 1.0 - gray
    gray = np.clip(gray - border_level(gray), 0, None)  # the page's own grey is background, not ink
    if gray.max() <= 0.05:
        raise DataError("the image has no visible digit (it is blank or has no contrast)")
    gray = gray / gray.max()
    rows, cols = np.nonzero(gray > 0.1)  # 3. crop to the ink
    gray = gray[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    height, width = gray.shape
    scale = 20.0 / max(height, width)  # 4. fit the 20x20 box, aspect ratio kept
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = Image.fromarray((gray * 255).astype(np.uint8)).resize(new_size, Image.Resampling.LANCZOS)
    box = np.asarray(small, dtype=np.float64)
    total = box.sum()  # 5. centre of mass to the centre of the 28x28 canvas
    cy = (box.sum(axis=1) @ np.arange(box.shape[0])) / total
    cx = (box.sum(axis=0) @ np.arange(box.shape[1])) / total
    top = int(np.clip(round(13.5 - cy), 0, 28 - box.shape[0]))
    left = int(np.clip(round(13.5 - cx), 0, 28 - box.shape[1]))
    canvas = np.zeros((28, 28), dtype=np.float64)
    canvas[top : top + box.shape[0], left : left + box.shape[1]] = box
    return np.clip(canvas, 0, 255).round().astype(np.uint8)


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


def load_image_folder(folder: str | Path) -> Digits:
    """A folder of ordinary images as a dataset. A subfolder named 0-9 gives its images that label."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}")
    images, labels = [], []
    for path in files:
        try:
            images.append(prepare_digit(path))
        except DataError as error:  # the folder is the caller's own: say which of its files
            raise DataError(f"{path.relative_to(folder)}: {error}") from error
        parent = path.parent.name
        labels.append(int(parent) if parent.isdigit() and len(parent) == 1 else -1)
    return Digits(np.stack(images), np.asarray(labels, dtype=np.int64), f"folder:{folder}", domain=None)


def load_dataset(spec: str = "mnist", split: str = "train") -> Digits:
    """'mnist' (shipped or official); 'shapes', the colour world of explorer.domains.shapes, generated (its labels
    the factor table, one column per factor in FACTORS order); or a path to a folder of images (all of it, for
    training)."""
    if spec == "mnist":
        return load_mnist(split)
    if spec == "shapes":
        from .domains.shapes import FACTORS, SPLITS, split as shapes_split

        images, factors = shapes_split(split)
        table = np.stack([factors[name] for name in FACTORS], 1).astype(np.float32)
        count, seed = SPLITS[split]
        return Digits(images, table, f"shapes:{split}({count} images, seed={seed})", domain="shapes")
    return load_image_folder(spec)


def image_grid(images: torch.Tensor | np.ndarray, ncols: int = 10, pad: int = 2, scale: int = 1) -> Image.Image:
    """Tile (N, C, H, W) floats in [0, 1] (or to_uint8's arrays) into one PIL image, grey or colour, each image
    enlarged as display_scale says."""
    array = images if isinstance(images, np.ndarray) else to_uint8(images)
    n, h, w = array.shape[:3]
    scale = display_scale(h, w, scale) if scale > 1 else 1
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, *array.shape[3:]), 40, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, ncols)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = array[i]
    image = Image.fromarray(grid)
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST) if scale > 1 else image
