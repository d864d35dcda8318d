from __future__ import annotations

import gzip
import io
import struct

import numpy as np
import pytest
from PIL import Image

from explorer.data import (HELDOUT_SIZE, DataError, image_grid, load_image_folder, load_mnist, prepare_digit, read_idx,
                           to_tensor)


def write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trip(tmp_path, compress):
    array = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    write_idx(path, array, compress)
    assert np.array_equal(read_idx(path), array)


def test_read_idx_refuses_garbage(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x89PNG not idx")
    with pytest.raises(DataError, match="not an IDX"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 100) + b"\x00" * 10)
    with pytest.raises(DataError, match="header says"):
        read_idx(tmp_path / "short")


def test_shipped_split_is_fixed_disjoint_and_balanced():
    train, heldout = load_mnist("train"), load_mnist("heldout")
    assert len(heldout) == HELDOUT_SIZE and len(train) == 14_000 - HELDOUT_SIZE
    assert train.images.shape[1:] == (28, 28) and train.images.dtype == np.uint8
    assert np.array_equal(load_mnist("heldout").images, heldout.images)  # the same every time
    train_hashes = {row.tobytes() for row in train.images}
    assert not any(row.tobytes() in train_hashes for row in heldout.images)
    assert np.bincount(heldout.labels, minlength=10).min() > 100


def test_official_files_take_over_with_the_official_split(tmp_path):
    for stem, n in [("train", 6), ("t10k", 4)]:
        write_idx(tmp_path / f"{stem}-images-idx3-ubyte.gz", np.full((n, 28, 28), n, dtype=np.uint8), True)
        write_idx(tmp_path / f"{stem}-labels-idx1-ubyte.gz", np.arange(n) % 10, True)
    train, heldout = load_mnist("train", tmp_path), load_mnist("heldout", tmp_path)
    assert (len(train), len(heldout)) == (6, 4)
    assert train.source.startswith("mnist-official") and int(heldout.images[0, 0, 0]) == 4


def test_missing_files_are_named(tmp_path):
    with pytest.raises(DataError, match="train4k-images"):
        load_mnist("train", tmp_path)


def drawing(mode: str = "RGB", size=(300, 200), dark_on_light: bool = True, offset=(40, 30)) -> Image.Image:
    """A thick bar, like a '1', drawn off-centre."""
    background, ink = (255, 0) if dark_on_light else (0, 255)
    gray = np.full((size[1], size[0]), background, dtype=np.uint8)
    gray[offset[1] : offset[1] + 120, offset[0] : offset[0] + 25] = ink
    return Image.fromarray(gray).convert(mode)


def assert_mnist_like(digit: np.ndarray) -> None:
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    assert digit[0].max() == 0 and digit[:, 0].max() == 0  # black background, light ink
    ys, xs = np.nonzero(digit > 30)
    assert ys.max() - ys.min() < 21 and xs.max() - xs.min() < 21  # fits the 20x20 box
    weights = digit.astype(float)
    cy = (weights.sum(1) @ np.arange(28)) / weights.sum()
    cx = (weights.sum(0) @ np.arange(28)) / weights.sum()
    assert abs(cy - 13.5) < 1.0 and abs(cx - 13.5) < 1.0  # centred by mass


@pytest.mark.parametrize("mode", ["RGB", "L", "1", "P", "CMYK"])
def test_prepare_digit_converts_dark_on_light_pictures(mode):
    assert_mnist_like(prepare_digit(drawing(mode)))


def test_prepare_digit_keeps_light_on_dark_and_handles_alpha_and_16_bit():
    assert_mnist_like(prepare_digit(drawing("L", dark_on_light=False)))
    rgba = np.zeros((100, 100, 4), dtype=np.uint8)  # transparent page, opaque black strokes (a sketchpad)
    rgba[20:80, 45:55] = (0, 0, 0, 255)
    assert_mnist_like(prepare_digit(Image.fromarray(rgba, "RGBA")))
    sixteen = (np.asarray(drawing("L"), dtype=np.uint16) * 257).astype(np.uint16)
    assert_mnist_like(prepare_digit(Image.fromarray(sixteen)))
    assert_mnist_like(prepare_digit(np.asarray(drawing("L")).astype(np.float32) / 255))


def test_prepare_digit_reads_files_and_bytes(tmp_path):
    path = tmp_path / "digit.jpg"
    drawing().save(path)
    assert_mnist_like(prepare_digit(path))
    buffer = io.BytesIO()
    drawing().save(buffer, format="PNG")
    assert_mnist_like(prepare_digit(io.BytesIO(buffer.getvalue())))


def test_prepare_digit_refuses_what_is_not_a_digit(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="not a readable image") as refused:
        prepare_digit(tmp_path / "notes.txt")
    assert str(tmp_path) not in str(refused.value)  # the message says what is wrong, not where the file lives
    buffer = io.BytesIO()
    drawing().save(buffer, format="PNG")
    (tmp_path / "cut.png").write_bytes(buffer.getvalue()[:200])  # a PNG cut short
    with pytest.raises(DataError, match="damaged or cut short") as refused:
        prepare_digit(tmp_path / "cut.png")
    assert str(tmp_path) not in str(refused.value)
    with pytest.raises(DataError, match="no visible digit"):
        prepare_digit(Image.new("L", (50, 50), 255))
    with pytest.raises(DataError, match="too large"):
        prepare_digit(Image.new("L", (8000, 6000), 255))
    with pytest.raises(DataError):
        prepare_digit(np.zeros((0, 5)))
    with pytest.raises(DataError, match="NaN"):
        prepare_digit(np.full((5, 5), np.nan))


def test_huge_image_file_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (10_000, 5_000)).save(path)  # 50 megapixels, a few kilobytes on disk
    with pytest.raises(DataError, match="too large"):
        prepare_digit(path)


def test_image_folder_dataset_with_labels(tmp_path):
    for label in ("3", "7"):
        (tmp_path / label).mkdir()
        for i in range(2):
            drawing(offset=(40 + 10 * i, 30)).save(tmp_path / label / f"{i}.png")
    (tmp_path / "unlabelled.bmp").write_bytes(b"")  # unreadable files are reported, not skipped silently
    with pytest.raises(DataError):
        load_image_folder(tmp_path)
    (tmp_path / "unlabelled.bmp").unlink()
    digits = load_image_folder(tmp_path)
    assert digits.images.shape == (4, 28, 28) and sorted(digits.labels.tolist()) == [3, 3, 7, 7]


def test_tensor_and_grid_helpers():
    images = load_mnist("heldout").images[:12]
    x = to_tensor(images)
    assert x.shape == (12, 1, 28, 28) and float(x.max()) <= 1 and np.array_equal((x[:, 0] * 255).round().byte().numpy(), images)
    grid = image_grid(x, ncols=5, pad=2)
    assert grid.size == (5 * 30 + 2, 3 * 30 + 2)
