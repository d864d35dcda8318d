"""The latent map: the plane it lays digits on, the pixel <-> plane mapping behind a click, the path strip and
GIF, the CSV export, and every handler on bad input."""

from __future__ import annotations

import csv

import gradio as gr
import imageio.v3 as iio
import numpy as np
import pytest
import torch

from conftest import tiny_model
from explorer.latent import latent_map
from explorer.ui import latent_map as tab
from explorer.ui.models import ModelCache


@pytest.fixture(scope="module")
def models():
    return ModelCache("cpu", names=["vae-mnist", "dcgan-mnist", "flow-mnist"])


def test_a_2d_latent_is_its_own_map_and_a_wider_one_is_projected_on_its_principal_plane():
    images = torch.rand(64, 1, 28, 28)
    flat = tiny_model("vae")
    flat.config.latent_dim = 2  # rebuild with a 2-D code
    two = type(flat)(flat.config).eval()
    mapped = latent_map(two, images, batch_size=20)
    assert torch.allclose(mapped.coords, two.encode(images), atol=1e-5)
    wide = latent_map(tiny_model("autoencoder"), images, batch_size=20)
    assert torch.allclose(wide.axes @ wide.axes.T, torch.eye(2), atol=1e-5)  # orthonormal plane
    assert wide.explained[0] >= wide.explained[1] > 0
    back = (wide.latent(wide.coords) - wide.origin) @ wide.axes.T  # a point's latent projects back onto it
    assert torch.allclose(back, wide.coords, atol=1e-4)


def test_pixels_and_plane_points_map_back_and_forth(models):
    window = tab.frame(models.latent_map("vae-mnist")[0])
    points = np.array([[0.0, 0.0], [1.0, -2.0], [-0.5, 0.7]])
    pixels = tab.to_pixels(points, window)
    assert np.allclose([tab.from_pixel(x, y, window) for x, y in pixels], points)
    assert pixels[1, 1] > pixels[0, 1]  # lower v is further down the picture


def test_show_click_path_and_export(models):
    image, caption, path = tab.show_map(models, "vae-mnist")
    assert image.size == (tab.MAP_SIZE, tab.MAP_SIZE + 24) and "2,000 held-out digits" in caption and path == []
    with_path, decoded, path = tab.click(models, "vae-mnist", path, 200, 210)
    assert decoded.size == (224, 224) and len(path) == 1 and np.asarray(with_path).std() > 0
    _, _, path = tab.click(models, "vae-mnist", path, 80, 330)
    # the decoded point is the model's decode of that point's latent
    latent = models.latent_map("vae-mnist")[0].latent(torch.tensor([path[1]], dtype=torch.float32))
    _, again, _ = tab.click(models, "vae-mnist", [], 80, 330)
    assert np.array_equal(np.asarray(again), np.asarray(tab.to_image(models.get("vae-mnist").decode(latent), 8)))
    strip, gif, png = tab.path_frames(models, "vae-mnist", path, 7)
    assert len(iio.imread(gif, index=None)) == 2 * 7 - 2 and strip.size[0] > 7 * 84
    rows = list(csv.reader(open(tab.export_csv(models, "vae-mnist"))))
    assert rows[0] == ["index", "digit", "u", "v"] and len(rows) == 2001
    labels = models.latent_map("vae-mnist")[1]
    assert [int(r[1]) for r in rows[1:]] == labels.tolist()


@pytest.mark.parametrize("call, message", [
    (lambda m: tab.show_map(m, "dcgan-mnist"), "no one-pass encoder"),
    (lambda m: tab.show_map(m, "nope"), "unknown model"),
    (lambda m: tab.click(m, "vae-mnist", [], -5, 10), "x must be"),
    (lambda m: tab.click(m, "vae-mnist", [], 10, 10**9), "y must be"),
    (lambda m: tab.click(m, "vae-mnist", [[1, 2, 3]], 10, 10), "finite"),
    (lambda m: tab.click(m, "vae-mnist", [["a", "b"]], 10, 10), "list of"),
    (lambda m: tab.click(m, "vae-mnist", [[float("nan"), 0]], 10, 10), "finite"),
    (lambda m: tab.click(m, "vae-mnist", [[0, 0]] * 40, 10, 10), "at most"),
    (lambda m: tab.path_frames(m, "vae-mnist", [[0, 0]], 5), "at least two"),
    (lambda m: tab.path_frames(m, "vae-mnist", [[0, 0], [0, 0]], 5), "all the same"),
    (lambda m: tab.path_frames(m, "vae-mnist", [[0, 0], [1, 1]], 10**6), "frames must be"),
])
def test_bad_input_gets_a_clear_message(models, call, message):
    with pytest.raises(gr.Error, match=message):
        call(models)


def test_the_shapes_world_maps_its_held_out_shapes_coloured_by_shape():
    shapes = ModelCache("cpu", names=["vae-shapes"])
    assert tab.mappable(shapes) == ["vae-shapes"]
    image, caption, _ = tab.show_map(shapes, "vae-shapes")
    assert "2,000 held-out shapes" in caption and image.size == (tab.MAP_SIZE, tab.MAP_SIZE + 24)
    latent_map_, labels = shapes.latent_map("vae-shapes")
    assert sorted(set(labels.tolist())) == [0, 1, 2] and latent_map_.coords.shape == (2000, 2)
    legend = np.asarray(image)[tab.MAP_SIZE:]
    # a swatch per shape, in the palette's first three colours, and none in the fourth
    for k, colour in enumerate(tab.PALETTE[:4]):
        rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)]) if isinstance(colour, str) else np.array(colour)
        present = (np.abs(legend.astype(int) - rgb).sum(2) < 10).any()
        assert present == (k < 3), k
    _, decoded, _ = tab.click(shapes, "vae-shapes", [], 200, 210)
    assert np.asarray(decoded).ndim == 3 and np.asarray(decoded).shape[2] == 3  # a colour image
    rows = list(csv.reader(open(tab.export_csv(shapes, "vae-shapes"))))
    assert rows[0] == ["index", "shape", "u", "v"]
