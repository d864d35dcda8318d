"""The app's HTTP API through gradio_client: the server checks every argument itself, keeps serving after
bad calls, and keeps concurrent users' results separate."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

gradio_client = pytest.importorskip("gradio_client")

from explorer.ui import edit, sample  # noqa: E402
from explorer.ui.models import ModelCache  # noqa: E402

from test_browser import app_url  # noqa: E402,F401  (the real server, started once for this module)


@pytest.fixture(scope="module")
def client(app_url):  # noqa: F811
    return gradio_client.Client(app_url, verbose=False)


@pytest.fixture(scope="module")
def local():
    return ModelCache("cpu")


@pytest.mark.parametrize("api_name, args, message", [
    # Gradio's components check their own ranges first; the handlers check again behind them
    ("/sample", ("vae-mnist", 0, 1.0, 1_000_000), "number of samples|greater than maximum value 64"),
    ("/sample", ("vae-mnist", -1, 1.0, 8), "seed|less than minimum value 0"),
    ("/denoise", ("ddpm-mnist", 0, "ddim", 1_000_000_000, 0.0), "steps|greater than maximum value 1000"),
    ("/decode", ("vae-mnist", [0.1, 0.2]), "16 finite numbers"),
    ("/decode", ("vae-mnist", "not a latent"), "malformed|16 finite"),
    ("/edit", ("vae-mnist", 0, 99, [1.0]), "sample index"),
    ("/edit", ("vae-mnist", 0, 1, [1e9]), "PC1"),
    ("/edit", ("vae-mnist", 0, 1, [0.0] * 7), "at most 6"),
    ("/edit_attributes", ("vae-mnist", 0, 1, {"thickness": 1e9}, []), "thickness must be"),
    ("/edit_attributes", ("vae-mnist", 0, 1, {"charisma": 1.0}, []), "attribute must be one of"),
    ("/edit_attributes", ("vae-mnist", 0, 1, {"thickness": 1.0}, ["thickness"]), "both edited and locked"),
    ("/edit_attributes", ("vae-mnist", 0, 1, {"thickness": 1.0}, "slant"), "lock must be a list"),
    ("/compare", (-5,), "seed|less than minimum value 0"),
])
def test_bad_calls_get_a_clear_error_and_the_app_keeps_serving(client, api_name, args, message):
    with pytest.raises(gradio_client.exceptions.AppError, match=message):
        client.predict(*args, api_name=api_name)
    rows = client.predict("vae-mnist", [0.0] * 16, api_name="/decode")
    assert np.asarray(rows).shape == (28, 28)


def test_decode_matches_the_library(client, local):
    z = local.get("flow-mnist").sample_latent(1, seed=9)
    rows = client.predict("flow-mnist", z.flatten().tolist(), api_name="/decode")
    expected = (local.get("flow-mnist").decode(z)[0, 0] * 255).round().to(torch.uint8).numpy()
    assert np.abs(np.asarray(rows, dtype=int) - expected).max() <= 1  # JSON floats round-trip to the last bit or so


def test_eight_users_editing_at_once_get_their_own_results(app_url, local):  # noqa: F811
    requests = [("vae-mnist" if i % 2 else "dcgan-mnist", 100 + i, i % 5, [0.5 * (i % 3), -1.0]) for i in range(8)]

    def call(request):
        return np.asarray(gradio_client.Client(app_url, verbose=False).predict(*request, api_name="/edit"))

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, requests))
    for request, result in zip(requests, results):
        assert np.array_equal(result, np.asarray(edit.api_edit(local, *request)))
    assert len({r.tobytes() for r in results}) == 8


def test_interpolation_and_encoding_an_upload(client, local, tmp_path):
    frames = client.predict("vae-mnist", 1, 2, 5, "slerp", api_name="/interpolate")
    a, b = (local.get("vae-mnist").sample_latent(1, seed=s) for s in (1, 2))
    first = (local.get("vae-mnist").decode(a)[0, 0] * 255).round().to(torch.uint8).numpy()
    assert np.asarray(frames).shape == (5, 28, 28) and np.abs(np.asarray(frames[0]) - first.astype(int)).max() <= 1
    with pytest.raises(gradio_client.exceptions.AppError, match="frames"):
        client.predict("vae-mnist", 1, 2, 1000, "slerp", api_name="/interpolate")
    from PIL import Image, ImageDraw

    picture = Image.new("L", (100, 120), 255)
    ImageDraw.Draw(picture).line([(50, 10), (50, 110)], fill=0, width=10)  # a "1"
    picture.save(tmp_path / "one.png")
    seen, rebuilt, caption = client.predict(gradio_client.handle_file(str(tmp_path / "one.png")), "vae-mnist",
                                            api_name="/encode")
    assert "mean absolute pixel error" in caption and Image.open(rebuilt).size == Image.open(seen).size
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(gradio_client.exceptions.AppError, match="not a readable image") as refused:
        client.predict(gradio_client.handle_file(str(tmp_path / "notes.png")), "vae-mnist", api_name="/encode")
    assert "/tmp" not in str(refused.value) and "gradio" not in str(refused.value)  # no server path shown


def test_attribute_edit_matches_the_library(client, local):
    import explorer

    rows = client.predict("vae-mnist", 3, 2, {"thickness": 1.5, "digit 4": 0.5}, ["slant"], api_name="/edit_attributes")
    model = local.get("vae-mnist")
    z = explorer.edit(model, model.sample_latent(32, seed=3)[2:3], {"thickness": 1.5, "digit 4": 0.5}, lock=("slant",))
    expected = (model.decode(z)[0, 0] * 255).round().to(torch.uint8).numpy()
    assert np.abs(np.asarray(rows, dtype=int) - expected).max() <= 1
