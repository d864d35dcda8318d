"""The app's HTTP API, against the real server (app.py, started once for this module): through gradio_client,
through raw REST as curl would call it (POST /gradio_api/call/NAME, then the event stream), and through the
page's own protocol for uploads. The server checks every argument itself, names what was wrong and what is
allowed, never shows where it keeps files, keeps serving after bad calls, and keeps concurrent users' results
separate. A few tests need no server: the argument checks, damaged images and the build-time guards."""

from __future__ import annotations

import io
import json
import math
import random
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio as gr
import httpx
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

gradio_client = pytest.importorskip("gradio_client")

from conftest import free_port, running_app  # noqa: E402
from explorer.ui import api, edit  # noqa: E402
from explorer.ui.common import check_choice, check_float, check_int, picked_latent  # noqa: E402
from explorer.ui.models import ModelCache  # noqa: E402

CLIENT = gradio_client.Client  # kept: the README test puts a stand-in in its place
ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
NAN, INF = float("nan"), float("inf")
# a path on the server: two or more /-separated parts (an upload's temporary copy is /tmp/.../name.png)
PATH = re.compile(r"(?:/[\w.-]+){2,}")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("server")) as url:
        yield url


def connect(url: str):
    """A gradio_client Client without its own time limits (it gives up on /config after 5 s, which a loaded CI
    machine can take): a call that is stuck is pytest.ini's hang guard's to catch."""
    return CLIENT(url, verbose=False, httpx_kwargs={"timeout": None})


@pytest.fixture(scope="module")
def client(app_url):
    return connect(app_url)


@pytest.fixture(scope="module")
def local():
    return ModelCache("cpu")


@pytest.fixture(scope="module")
def config(app_url):
    return httpx.get(app_url + "config").json()


def rest(url: str, name: str, body, session_hash: str | None = None, first_only: bool = False):
    """A raw REST call as curl makes it: POST the arguments (a list: /call/NAME; a dict: /call/v2/NAME), then read
    the event stream to its last event. -> ("complete", data) or ("error", message); with `first_only`, the first
    event and the event id, without waiting for the rest."""
    route = "call/v2" if isinstance(body, dict) else "call"
    payload = body if isinstance(body, dict) else {"data": body, **({"session_hash": session_hash} if session_hash else {})}
    started = httpx.post(f"{url}gradio_api/{route}/{name}", content=json.dumps(payload),  # json.dumps writes NaN as JSON
                         headers={"Content-Type": "application/json"}, timeout=None)  # clients do; httpx's json= refuses
    assert started.status_code == 200, started.text
    event_id, event = started.json()["event_id"], None
    with httpx.stream("GET", f"{url}gradio_api/{route}/{name}/{event_id}", timeout=None) as stream:
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: ") and event in ("generating", "complete", "error"):
                data = json.loads(line[len("data: "):])
                if first_only:
                    return event, data, event_id
                if event == "error":
                    return "error", (data or {}).get("error")
                if event == "complete":
                    return "complete", data
    raise AssertionError(f"the stream of /{name} ended without a result")


def refused(url: str, name: str, data) -> str:
    outcome, message = rest(url, name, data)
    assert outcome == "error" and message, (name, data, outcome, str(message)[:200])
    return message


def decoded_zero(url: str) -> np.ndarray:
    """The server still answering: the prior's mean through vae-mnist."""
    outcome, data = rest(url, "decode", ["vae-mnist", [0.0] * 16])
    assert outcome == "complete"
    return np.asarray(data[0])


def digit_png(path: Path) -> Path:
    picture = Image.new("L", (100, 120), 255)
    ImageDraw.Draw(picture).line([(50, 10), (50, 110)], fill=0, width=10)  # a "1"
    picture.save(path)
    return path


def uploaded(url: str, name: str, content: bytes) -> dict:
    """A file sent as the page sends it (POST /gradio_api/upload), as the FileData an event takes."""
    response = httpx.post(url + "gradio_api/upload", files={"files": (name, content)}, timeout=None)
    response.raise_for_status()
    return {"path": response.json()[0], "orig_name": name, "meta": {"_type": "gradio.FileData"}}


# --- gradio_client ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("api_name, args, message", [
    ("/sample", ("vae-mnist", 0, 1.0, 1_000_000), "samples must be between 1 and 64, got 1000000"),
    ("/sample", ("vae-mnist", -1, 1.0, 8), "seed must be between 0 and"),
    ("/denoise", ("ddpm-mnist", 0, "ddim", 1_000_000_000, 0.0), "steps must be between 1 and 1000, got 1000000000"),
    ("/decode", ("vae-mnist", [0.1, 0.2]), "latent must be 16 finite numbers for vae-mnist, got a list of 2"),
    ("/decode", ("vae-mnist", "not a latent"), "latent is malformed"),
    ("/edit", ("vae-mnist", 0, 99, [1.0]), "index must be between 0 and 31, got 99"),
    ("/edit", ("vae-mnist", 0, 1, [1e9]), r"amounts\[0\] \(PC1\) must be between -3 and 3"),
    ("/edit", ("vae-mnist", 0, 1, [0.0] * 7), "at most 6 numbers"),
    ("/edit_attributes", ("vae-mnist", 0, 1, {"thickness": 1e9}, []), r"amounts\['thickness'\] must be between -3 and 3"),
    ("/edit_attributes", ("vae-mnist", 0, 1, {"charisma": 1.0}, []), "an attribute in amounts must be one of thickness"),
    ("/edit_attributes", ("vae-mnist", 0, 1, {"thickness": 1.0}, ["thickness"]), "both edited and locked"),
    ("/edit_attributes", ("vae-mnist", 0, 1, {"thickness": 1.0}, "slant"), "lock must be a list"),
    ("/compare", (-5,), "seed must be between 0 and"),
    ("/compare", (2.5,), "seed must be a whole number from 0 to"),  # gr.Number(precision=0) would have made it 2
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


def test_eight_users_editing_at_once_get_their_own_results(app_url, local):
    requests = [("vae-mnist" if i % 2 else "dcgan-mnist", 100 + i, i % 5, [0.5 * (i % 3), -1.0]) for i in range(8)]

    clients = [connect(app_url) for _ in requests]  # connected one by one; the eight edits run at once

    def call(client_and_request):
        user, request = client_and_request
        return np.asarray(user.predict(*request, api_name="/edit"))

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, zip(clients, requests)))
    for request, result in zip(requests, results):
        assert np.array_equal(result, np.asarray(edit.api_edit(local, *request)))
    assert len({r.tobytes() for r in results}) == 8


def test_interpolation_and_encoding_an_upload(client, local, tmp_path):
    frames = client.predict("vae-mnist", 1, 2, 5, "slerp", api_name="/interpolate")
    a, b = (local.get("vae-mnist").sample_latent(1, seed=s) for s in (1, 2))
    first = (local.get("vae-mnist").decode(a)[0, 0] * 255).round().to(torch.uint8).numpy()
    assert np.asarray(frames).shape == (5, 28, 28) and np.abs(np.asarray(frames[0]) - first.astype(int)).max() <= 1
    with pytest.raises(gradio_client.exceptions.AppError, match="frames must be between 2 and 64, got 1000"):
        client.predict("vae-mnist", 1, 2, 1000, "slerp", api_name="/interpolate")
    seen, rebuilt, caption = client.predict(gradio_client.handle_file(str(digit_png(tmp_path / "one.png"))), "vae-mnist",
                                            api_name="/encode")
    assert "mean absolute pixel error" in caption and Image.open(rebuilt).size == Image.open(seen).size
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(gradio_client.exceptions.AppError, match="not a readable image") as refusal:
        client.predict(gradio_client.handle_file(str(tmp_path / "notes.png")), "vae-mnist", api_name="/encode")
    assert not PATH.search(str(refusal.value)) and "gradio" not in str(refusal.value)  # no server path shown


def test_attribute_edit_matches_the_library(client, local):
    import explorer

    rows = client.predict("vae-mnist", 3, 2, {"thickness": 1.5, "digit 4": 0.5}, ["slant"], api_name="/edit_attributes")
    model = local.get("vae-mnist")
    z = explorer.edit(model, model.sample_latent(32, seed=3)[2:3], {"thickness": 1.5, "digit 4": 0.5}, lock=("slant",))
    expected = (model.decode(z)[0, 0] * 255).round().to(torch.uint8).numpy()
    assert np.abs(np.asarray(rows, dtype=int) - expected).max() <= 1


# --- the README's examples, as written ----------------------------------------------------------------------------

def readme_block(language: str) -> str:
    """The first ```language block of the README's "Calling it from code"."""
    section = README.read_text().split("### Calling it from code", 1)[1].split("\n## ", 1)[0]
    return section.split(f"```{language}\n", 1)[1].split("```", 1)[0]


def test_the_readme_python_example_runs_as_written(app_url, tmp_path, monkeypatch):
    code = readme_block("python")
    assert 'Client("http://127.0.0.1:7860/")' in code
    monkeypatch.chdir(tmp_path)
    digit_png(tmp_path / "my-digit.png")  # the example's own file name
    monkeypatch.setattr(gradio_client, "Client", lambda src, **options: connect(src))  # no time limits (see connect)
    names = {}
    exec(code.replace("http://127.0.0.1:7860/", app_url), names)  # only the server's address is changed
    assert len(names["gallery"]) == 16 and names["seed"] == 7 and np.asarray(names["rows"]).shape == (28, 28)
    assert np.asarray(names["frames"]).shape == (10, 28, 28) and "mean absolute pixel error" in names["caption"]


def test_the_readme_curl_examples_work_as_written(app_url):
    lines = [line for line in readme_block("bash").splitlines() if line.startswith("curl")]
    posts = [line for line in lines if "-X POST" in line]
    assert len(posts) == 2 and any("EVENT_ID" in line for line in lines)
    for line in posts:
        route, name = re.search(r"/gradio_api/(call(?:/v2)?)/(\w+)", line).groups()
        body = json.loads(re.search(r"-d '(.*)'", line).group(1))
        assert ("data" in body) == (route == "call")  # the v2 route takes arguments by name
        outcome, data = rest(app_url, name, body["data"] if route == "call" else body)
        assert outcome == "complete", data
        assert np.asarray(data[0]).shape in ((28, 28), (4, 28, 28))  # /edit_attributes' image, /interpolate's 4 frames


# --- raw REST: optional arguments, and refusals by name ------------------------------------------------------------

@pytest.mark.parametrize("name, short, full", [
    ("edit_attributes", ["vae-mnist", 7, 3, {"thickness": 1.0}, ["slant"]], ["vae-mnist", 7, 3, {"thickness": 1.0}, ["slant"], 1.0, 32]),
    ("edit_attributes", ["vae-mnist", 7, 3, {"thickness": 1.0}], ["vae-mnist", 7, 3, {"thickness": 1.0}, [], 1.0, 32]),
    ("edit", ["dcgan-mnist", 7, 3, [1.5, 0, -1]], ["dcgan-mnist", 7, 3, [1.5, 0, -1], 1.0, 32]),
    ("interpolate", ["vae-mnist", 1, 2], ["vae-mnist", 1, 2, 10, "slerp"]),
    ("sample", ["vae-mnist", 7], ["vae-mnist", 7, 1.0, 32, "any"]),
    ("sample", [], ["vae-mnist", 0, 1.0, 32, "any"]),
    ("denoise", ["ddpm-mnist", 0, "ddim", 3], ["ddpm-mnist", 0, "ddim", 3, 0.0]),
])
def test_raw_rest_calls_may_leave_out_optional_arguments(app_url, name, short, full):
    outcome, left_out = rest(app_url, name, short)
    assert outcome == "complete", left_out
    outcome, given = rest(app_url, name, full)
    assert outcome == "complete", given
    assert left_out == given  # images come back as files named by their content, so equal images give equal data


def test_raw_rest_encode_and_compare_take_their_defaults(app_url, config, tmp_path):
    digit = uploaded(app_url, "one.png", digit_png(tmp_path / "one.png").read_bytes())
    outcome, left_out = rest(app_url, "encode", [digit])  # the model left out: vae-mnist, the dropdown's first
    assert outcome == "complete" and "Encoded by **vae-mnist**" in left_out[2]
    # /compare with its only argument left out starts (before, it was refused at once); stopped after its first
    # message, as the page's Stop does, so it does not hold a long-work slot for every model's samples
    session = uuid.uuid4().hex
    event, data, event_id = rest(app_url, "compare", [], session_hash=session, first_only=True)
    assert event == "generating", data
    fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "compare")
    httpx.post(app_url + "gradio_api/cancel", json={"session_hash": session, "fn_index": fn_index, "event_id": event_id},
               timeout=None).raise_for_status()


@pytest.mark.parametrize("name, data, message", [
    # NaN, infinities and booleans, and which entry
    ("decode", ["vae-mnist", [NAN] + [0.0] * 15], r"^latent must be 16 finite numbers from -10000 to 10000 for "
                                                   r"vae-mnist: entry 0 is nan, which is not finite$"),
    ("decode", ["vae-mnist", [0.0] * 7 + [INF, -INF] + [0.0] * 7], r"entry 7 is inf, which is not finite \(2 entries are refused\)"),
    ("decode", ["vae-mnist", [0.0] * 15 + [True]], r"latent is malformed: entry 15 is true \(a boolean\), not a number"),
    ("decode", ["vae-mnist", [1e300] + [0.0] * 15], "entry 0 is 1e[+]300, outside -10000 to 10000"),
    ("decode", ["vae-mnist", [[0.0] * 16]], "must be 16 finite numbers for vae-mnist, got a list of 1"),
    ("decode", ["vae-mnist", {"z": 1}], "latent is malformed: it must be a flat list of 16 finite numbers"),
    ("decode", [7, [0.0] * 16], "^model must be one of vae-mnist, .*; got 7$"),
    ("sample", ["vae-mnist", 0, NAN], "^temperature must be a finite number between 0 and 2, got nan, which is not finite$"),
    ("edit", ["vae-mnist", 0, 3, [0.0, NAN]], r"^amounts\[1\] \(PC2\) must be a finite number between -3 and 3"),
    ("edit", ["vae-mnist", 0, 3, [1.0], INF], "^temperature must be a finite number between 0 and 2, got inf"),
    ("edit_attributes", ["vae-mnist", 0, 3, {"slant": NAN}], r"^amounts\['slant'\] must be a finite number between -3 and 3"),
    ("denoise", ["ddpm-mnist", 0, "ddim", 3, NAN], "^eta must be a finite number between 0 and 1"),
    # seeds and counts that are not whole numbers, or are booleans (gr.Number(precision=0) rounded them before)
    ("sample", ["vae-mnist", 1.5], r"^seed must be a whole number from 0 to 9223372036854775807, got 1\.5$"),
    ("sample", ["vae-mnist", True], r"^seed must be a whole number from 0 to 9223372036854775807, got true \(a boolean\)$"),
    ("sample", ["vae-mnist", "7"], "^seed must be a whole number from 0 to 9223372036854775807, got '7'$"),
    ("sample", ["vae-mnist", 0, 1.0, 4.5], "^samples must be a whole number from 1 to 64, got 4.5$"),
    ("compare", [True], r"^seed must be a whole number from 0 to 9223372036854775807, got true \(a boolean\)$"),
    ("compare", ["x"], "^seed must be a whole number"),
    ("denoise", ["ddpm-mnist", 1.5], "^seed must be a whole number"),
    ("denoise", ["ddpm-mnist", 0, "ddim", 2.5], "^steps must be a whole number from 1 to 1000, got 2.5$"),
    ("denoise", ["ddpm-mnist", 0, "ddim", True], r"^steps must be a whole number from 1 to 1000, got true \(a boolean\)$"),
    ("edit", ["vae-mnist", 1.5, 3, [1.0]], "^seed must be a whole number"),
    ("edit", ["vae-mnist", 0, True, [1.0]], r"^index must be a whole number from 0 to 31, got true \(a boolean\)$"),
    ("edit", ["vae-mnist", 0, 3, [1.0], 1.0, 1.5], "^count must be a whole number from 1 to 64, got 1.5$"),
    ("edit_attributes", ["vae-mnist", True, 3, {"slant": 1.0}], r"^seed must be a whole number .*true \(a boolean\)$"),
    ("interpolate", ["vae-mnist", 1.5, 2], "^seed_a must be a whole number"),
    ("interpolate", ["vae-mnist", 1, True], r"^seed_b must be a whole number .*true \(a boolean\)$"),
    ("interpolate", ["vae-mnist", 1, 2, 2.5], "^frames must be a whole number from 2 to 64, got 2.5$"),
    # out of range: the argument and what it may be
    ("sample", ["vae-mnist", -1], "^seed must be between 0 and 9223372036854775807, got -1$"),
    ("sample", ["vae-mnist", 0, 2.5], "^temperature must be between 0 and 2, got 2.5$"),
    ("sample", ["vae-mnist", 0, 1.0, 0], "^samples must be between 1 and 64, got 0$"),
    ("sample", ["vae-mnist", 0, 1.0, 4, "10"], "^digit must be one of any, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9; got '10'$"),
    ("sample", ["vae-mnist", 0, 1.0, 4, True], r"^digit must be one of any, 0, .*; got true \(a boolean\)$"),
    ("denoise", ["flow-mnist", 0, "euler"], "^sampler must be one of ddpm, ddim; got 'euler'$"),  # ignored, still checked
    ("denoise", ["rbm-mnist", 0, "ddim", 0], "^steps must be between 1 and 1000, got 0$"),
    ("denoise", ["pixelcnn-mnist", 0, "ddim", 3, -1], "^eta must be between 0 and 1, got -1$"),
    ("compare", [-5], "^seed must be between 0 and"),
    ("denoise", ["ddpm-mnist", 0, "euler"], "^sampler must be one of ddpm, ddim; got 'euler'$"),
    ("denoise", ["ddpm-mnist", 0, "ddim", 10**9], "^steps must be between 1 and 1000, got 1000000000$"),
    ("denoise", ["ddpm-mnist", 0, "ddim", 3, 1.5], "^eta must be between 0 and 1, got 1.5$"),
    ("denoise", ["vae-mnist"], "makes an image in one step"),
    ("edit", ["vae-mnist", 0, 32, [1.0]], "^index must be between 0 and 31, got 32$"),
    ("edit", ["vae-mnist", 0, 3, [1.0], 1.0, 65], "^count must be between 1 and 64, got 65$"),
    ("edit", ["vae-mnist", 0, 3, [4.0]], r"^amounts\[0\] \(PC1\) must be between -3 and 3, got 4.0$"),
    ("edit", ["ae2d-mnist", 0, 3, [0.0, 0.0, 1.0]], "^amounts must be a list of at most 2 numbers for ae2d-mnist"),
    ("edit", ["pixelcnn-mnist", 0, 3, [1.0]], "cannot be edited or interpolated"),
    ("edit", ["gpt", 0, 3, [1.0]], "^model must be one of"),
    ("edit_attributes", ["vae-mnist", 0, 3, {"thickness": -3.5}], r"^amounts\['thickness'\] must be between -3 and 3, got -3.5$"),
    ("edit_attributes", ["vae-mnist", 0, 3, {"charisma": 1.0}], "^an attribute in amounts must be one of thickness, slant"),
    ("edit_attributes", ["vae-mnist", 0, 3, {"slant": 1.0}, ["charm"]], "^an attribute in lock must be one of .*, digit; got 'charm'$"),
    ("edit_attributes", ["vae-mnist", 0, 3, [1.0]], r"^amounts must map attribute names \(thickness, slant"),
    ("interpolate", ["vae-mnist", 1, 2, 100], "^frames must be between 2 and 64, got 100$"),
    ("interpolate", ["vae-mnist", 1, 2, 5, "zigzag"], "^mode must be one of slerp, lerp; got 'zigzag'$"),
    ("interpolate", ["rbm-mnist", 1, 2], "cannot be edited or interpolated"),
    # arguments missing or too many
    ("edit_attributes", ["vae-mnist", 7, 3], "^/edit_attributes needs amounts: it takes model, seed, index, amounts, lock, "
                                             "temperature, count, and the call sent 3 of them$"),
    ("decode", ["vae-mnist"], "^/decode needs latent"),
    ("decode", ["vae-mnist", [0.0] * 16, 1], r"^/decode takes at most 2 arguments \(model, latent\), got 3$"),
    ("encode", [], "^/encode needs image"),
    ("compare", [0, 1], "^/compare takes at most 1 arguments"),
])
def test_raw_rest_refuses_bad_arguments_by_name(app_url, name, data, message):
    assert re.search(message, refused(app_url, name, data)), refused(app_url, name, data)
    assert decoded_zero(app_url).shape == (28, 28)


@pytest.mark.parametrize("name, body, message", [
    ("decode", {"model": "vae-mnist"}, "^/decode: No value provided for required argument: latent$"),
    ("sample", {"model": "vae-mnist", "charm": 2}, "^/sample: Parameter `charm` is not a valid key-word argument.$"),
    ("nope", {}, r"^there is no endpoint /nope \(GET /gradio_api/info lists them\)$"),
])
def test_a_call_by_name_that_cannot_be_read_is_told_why(app_url, name, body, message):
    """The v2 route maps names to arguments before any of the app's checks: Gradio's own failures there were a bare
    500 (server.NamedCallErrors)."""
    answer = httpx.post(f"{app_url}gradio_api/call/v2/{name}", json=body)
    assert answer.status_code == 422 and re.search(message, answer.json()["error"]), answer.text
    assert decoded_zero(app_url).shape == (28, 28)


def test_a_digit_may_be_sent_as_a_number(app_url):
    outcome, data = rest(app_url, "sample", ["cvae-mnist", 0, 1.0, 2, 7])
    assert outcome == "complete" and "every one a 7" in data[2]


# --- what "Use via API" and /gradio_api/info show --------------------------------------------------------------------

PARAMETERS = {  # every public endpoint, its parameters in order, and the required ones
    "/sample": (["model", "seed", "temperature", "samples", "digit"], set()),
    "/decode": (["model", "latent"], {"model", "latent"}),
    "/edit": (["model", "seed", "index", "amounts", "temperature", "count"], {"model", "seed", "index", "amounts"}),
    "/edit_attributes": (["model", "seed", "index", "amounts", "lock", "temperature", "count"], {"model", "seed", "index", "amounts"}),
    "/interpolate": (["model", "seed_a", "seed_b", "frames", "mode"], {"model", "seed_a", "seed_b"}),
    "/encode": (["image", "model"], {"image"}),
    "/denoise": (["model", "seed", "sampler", "steps", "eta"], set()),
    "/compare": (["seed"], set()),
}


def test_the_api_info_names_and_describes_every_parameter_and_output(app_url):
    info = httpx.get(app_url + "gradio_api/info").json()
    assert set(info["named_endpoints"]) == set(PARAMETERS) and not info["unnamed_endpoints"]
    for endpoint, (names, required) in PARAMETERS.items():
        described = info["named_endpoints"][endpoint]
        parameters, returns = described["parameters"], described["returns"]
        assert described["description"], endpoint
        assert [p["parameter_name"] for p in parameters] == names, endpoint
        assert {p["parameter_name"] for p in parameters if not p["parameter_has_default"]} == required, endpoint
        assert all(p["python_type"]["description"] for p in parameters), endpoint
        assert all(not re.fullmatch(r"(param|parameter)_\d+|\d+(st|nd|rd|th)", p["label"]) for p in parameters), endpoint
        assert returns and all(r["python_type"]["description"] for r in returns), endpoint
        assert all(not re.fullmatch(r"value_\d+|\d+(st|nd|rd|th)", r["label"]) for r in returns), (endpoint, returns)
    defaults = {(e, p["parameter_name"]): p["parameter_default"] for e, d in info["named_endpoints"].items()
                for p in d["parameters"] if p["parameter_has_default"]}
    assert defaults[("/edit_attributes", "lock")] is None and defaults[("/edit_attributes", "count")] == 32
    assert defaults[("/interpolate", "mode")] == "slerp" and defaults[("/sample", "samples")] == 32


# --- uploads: every handler, bad files, no paths ---------------------------------------------------------------------

FILE_INPUTS = ("file", "image", "imageeditor", "sketchpad")
BAD_FILES = {"notes.txt": b"just text", "notes.png": b"not a picture", "empty.png": b"",
             "cut.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01", "vector.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>"}


def run_event(url: str, dependency: dict, data: list) -> dict:
    """One event run as the page runs it (POST /gradio_api/queue/join, then the session's stream): -> its
    process_completed message."""
    session = uuid.uuid4().hex
    joined = httpx.post(url + "gradio_api/queue/join", timeout=None, json={
        "data": data, "event_data": None, "fn_index": dependency["id"], "trigger_id": dependency["targets"][0][0],
        "session_hash": session})
    joined.raise_for_status()
    with httpx.stream("GET", url + "gradio_api/queue/data", params={"session_hash": session}, timeout=None) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:") and json.loads(line[5:]).get("msg") == "process_completed":
                return json.loads(line[5:])
    raise AssertionError("the event's stream ended without completing")


def test_bad_uploads_to_every_upload_handler_say_what_is_wrong_and_never_where_files_live(app_url, config):
    components = {c["id"]: c for c in config["components"]}
    handlers = [d for d in config["dependencies"] if d.get("backend_fn")
                and any(components[i]["type"] in FILE_INPUTS for i in d["inputs"])]
    assert {components[i]["props"].get("elem_id") for d in handlers for i in d["inputs"]} >= {
        "edit-upload", "edit-sketch", "clean-upload", "play-sketch"}  # the Edit, Denoise and Playground uploads
    for dependency in handlers:
        for name, content in BAD_FILES.items():
            data, paths = [], []
            for i in dependency["inputs"]:
                kind = components[i]["type"]
                if kind in FILE_INPUTS:
                    file = uploaded(app_url, name, content)
                    paths.append(file["path"])
                    data.append(file if kind in ("file", "image") else {"background": None, "layers": [], "composite": file, "id": None})
                else:
                    data.append(None if kind == "state" else components[i]["props"].get("value"))
            done = run_event(app_url, dependency, data)
            message = str(done.get("output", {}).get("error"))
            assert not done["success"] and re.search("not a readable image|Invalid file type", message), (dependency["id"], name, message)
            assert not PATH.search(message) and not any(Path(p).parent.name in message for p in paths), message


def damaged(data: bytes, rng: random.Random) -> bytes:
    broken = bytearray(data)
    for _ in range(rng.randint(1, 12)):
        broken[rng.randrange(len(broken))] = rng.randrange(256)
    return bytes(broken[: rng.randrange(1, len(broken))] if rng.random() < 0.3 else broken)


def test_damaged_pictures_of_every_format_are_refused_clearly(tmp_path):
    """Corrupted PNG, JPEG (with an EXIF orientation), GIF, TIFF, BMP, WebP, ICO and PPM files through the Edit
    tab's upload handler: each becomes a digit or a clear refusal (Pillow met some with ValueErrors of its own,
    "buffer is not large enough", which reached the page as they were)."""
    picture = Image.new("L", (60, 80), 255)
    ImageDraw.Draw(picture).line([(30, 5), (30, 75)], fill=0, width=8)
    rng = random.Random(0)
    for form in ("PNG", "JPEG", "GIF", "TIFF", "BMP", "WEBP", "ICO", "PPM"):
        buffer = io.BytesIO()
        exif = Image.Exif()
        exif[0x0112] = 6  # rotated: the EXIF block is read too
        picture.save(buffer, form, **({"exif": exif} if form == "JPEG" else {}))
        for i in range(40):
            path = tmp_path / f"upload-{form}-{i}.{form.lower()}"
            path.write_bytes(damaged(buffer.getvalue(), rng))
            try:
                digit = edit.digit_from_upload(str(path))
            except gr.Error as error:
                assert re.match("cannot use this upload: (not a readable image|the image has no visible digit|image too large)",
                                error.message), error.message
                assert str(tmp_path) not in error.message and "upload-" not in error.message
            else:
                assert digit.shape == (28, 28) and digit.dtype == np.uint8


# --- the checks themselves, and the build-time guards (no server) ------------------------------------------------------

@pytest.mark.parametrize("check, value, message", [
    (lambda v: check_int(v, "seed", 0, 10), 1.5, "seed must be a whole number from 0 to 10, got 1.5"),
    (lambda v: check_int(v, "seed", 0, 10), True, r"got true \(a boolean\)"),
    (lambda v: check_int(v, "seed", 0, 10), NAN, "got nan, which is not finite"),
    (lambda v: check_int(v, "seed", 0, 10), None, r"got null \(nothing\)"),
    (lambda v: check_int(v, "seed", 0, 10), 10**400, r"seed must be between 0 and 10, got 1000000000\d*\.\.\."),
    (lambda v: check_float(v, "eta", 0, 1), INF, "eta must be a finite number between 0 and 1, got inf, which is not finite"),
    (lambda v: check_float(v, "eta", 0, 1), False, r"eta must be a number between 0 and 1, got false \(a boolean\)"),
    (lambda v: check_float(v, "eta", 0, 1), 10**400, "eta must be between 0 and 1"),
    (lambda v: check_choice(v, "digit", (0, 1)), True, r"digit must be one of 0, 1; got true \(a boolean\)"),
    (lambda v: check_choice(v, "mode", {"slerp", "lerp"}), ["slerp"], "mode must be one of"),
])
def test_checks_refuse_what_json_can_send_and_say_what_it_was(check, value, message):
    with pytest.raises(gr.Error, match=message):
        check(value)


def test_checks_accept_what_they_should():
    assert check_int(7.0, "seed", 0, 10) == 7 and type(check_int(7.0, "seed", 0, 10)) is int
    assert check_float(1, "eta", 0, 1) == 1.0 and check_choice(1, "digit", (0, 1)) == 1
    models = ModelCache("cpu", names=["vae-mnist"])
    model, z = picked_latent(models, {"model": "vae-mnist", "latent": [0, 1] * 8})  # ints are numbers
    assert z.shape == (1, *model.latent_shape) and z.dtype == torch.float32
    with pytest.raises(gr.Error) as refusal:
        picked_latent(models, {"model": "vae-mnist", "latent": [0.0] * 3 + [math.nan] + [0.0] * 12})
    assert refusal.value.message.endswith("for vae-mnist: entry 3 is nan, which is not finite")


def test_the_api_refuses_to_build_with_a_stale_or_missing_description():
    models = ModelCache("cpu", names=["vae-mnist"])
    with gr.Blocks() as app:
        seed = gr.Number(0, precision=0, label="seed")
        gr.Button().click(lambda s: s, seed, seed, api_name="sample")  # /sample documented with 5 parameters
        with pytest.raises(RuntimeError, match="/sample is documented with parameters"):
            api.publish(app, models)
    with gr.Blocks() as app:
        gr.Button().click(lambda: None, None, None, api_name="undocumented")
        with pytest.raises(RuntimeError, match="/undocumented is public but explorer/ui/api.py does not document it"):
            api.publish(app, models)


def test_a_left_out_argument_takes_its_default_and_a_required_one_is_named():
    endpoint = api.Endpoint("edit", ("model", "seed", "amounts", "lock"), ((False, None), (False, None), (False, None), (True, [])))
    values = ["vae-mnist", 7, [1.0]]
    endpoint.complete(values)
    assert values == ["vae-mnist", 7, [1.0], []]
    assert values[3] is not endpoint.defaults[3][1]  # a copy: a handler cannot change the default for the next call
    with pytest.raises(gr.Error, match="/edit needs seed, amounts: it takes model, seed, amounts, lock, and the call sent 1 of them"):
        endpoint.complete(["vae-mnist"])
