"""The Sample tab: the grid drawn on page load, the pick's thumbnail beside its name, and long grids (PixelCNN,
RBM, diffusion) streamed in the long-work lane with a Stop that frees the lane at once; handlers first, then
the public /sample endpoint through gradio_client, then a real browser (as in test_browser.py, every wait is for
a state of the page, never for a length of time)."""

from __future__ import annotations

import inspect
import io
import threading

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_model
from explorer.checkpoint import save_checkpoint
from explorer.ui import build_app, sample
from explorer.ui.models import ModelCache

from test_browser import TIMEOUT_MS, app_url, browser, page, pick_first_sample  # noqa: F401  (app_url: this module's own server)


@pytest.fixture(scope="module")
def shipped():
    return ModelCache("cpu")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny checkpoints: the three families that draw in many steps (PixelCNN and the RBM recorded as slow, as their
    evaluation records them; diffusion slow by its flag), and a VAE recorded once as slow and once with no figure."""
    folder = tmp_path_factory.mktemp("sample-tab")
    slow = {"sampling_ms_per_image": 10 * sample.SLOW_MS_PER_IMAGE}
    names = {key: str(save_checkpoint(tiny_model(key), folder / key, tiny_model(key).family, {"command": "test"},
                                      slow if key != "diffusion" else None))
             for key in ("pixelcnn", "rbm", "diffusion")}
    names["vae measured slow"] = str(save_checkpoint(tiny_model("vae"), folder / "vae-slow", "vae", {}, slow))
    names["vae"] = str(save_checkpoint(tiny_model("vae"), folder / "vae", "vae"))
    return ModelCache("cpu", names=list(names.values())), names


@pytest.fixture(scope="module")
def drawn(tiny):
    """Every message draw_grid sends for 3 samples of each tiny long-drawing model, seed 7."""
    models, names = tiny
    return {key: list(sample.draw_grid(models, names[key], 7, 1.0, 3)) for key in ("pixelcnn", "rbm", "diffusion")}


def pixels(item) -> np.ndarray:
    return np.asarray(item[0] if isinstance(item, tuple) else item)


def is_skip(value) -> bool:
    return isinstance(value, dict) and value.get("__type__") == "update" and len(value) == 1


# --- handlers -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["pixelcnn", "rbm", "diffusion"])
def test_a_long_grid_fills_in_and_ends_with_the_models_own_decode(tiny, drawn, key):
    models, names = tiny
    messages, model = drawn[key], models.get(names[key])
    gallery, seed, caption, grid = messages[0]  # first the old grid is cleared and the work announced
    assert gallery == [] and seed == 7 and caption.startswith("Drawing 3 samples") and grid["unfinished"]["shown"] is None
    partial = [m for m in messages[1:-1] if isinstance(m[0], list)]
    assert partial, "no unfinished grid was shown before the last"
    reached = [m[2].split(": step ")[1].split(" (")[0].split(" of ") for m in messages[1:-1] if isinstance(m[2], str)]
    total = int(reached[0][1])
    assert [(int(k), int(n)) for k, n in reached] == [(k, total) for k in range(1, total)]  # each step but the last, in order
    for gallery, _, caption, grid in partial:
        assert len(gallery) == 3 and grid["unfinished"]["shown"] in caption
    gallery, seed, caption, grid = messages[-1]
    expected = model.decode(model.sample_latent(3, seed=7))  # the same seed gives the model's own decode, pixel for pixel
    assert [np.array_equal(pixels(item), pixels(sample.to_image(image, sample.SCALE))) for item, image in zip(gallery, expected)] == [True] * 3
    assert (seed, caption, grid) == sample.finished(model, names[key], expected, 7, 1.0, "any")[1:]  # as sample_grid ends
    assert "unfinished" not in grid


def test_a_grid_being_drawn_can_be_picked_from_and_stop_says_what_it_shows(tiny, drawn):
    models, names = tiny
    model = models.get(names["pixelcnn"])
    state = next(m[3] for m in drawn["pixelcnn"][1:] if isinstance(m[0], list))  # the state beside the first partial grid
    pick, status = sample.pick_sample(models, state, 2)  # the latents are known from the start
    assert torch.equal(torch.tensor(pick["latent"]).reshape(1, 28, 28), model.sample_latent(3, seed=7)[2])
    assert "seed 7 #2" in status
    caption = sample.stopped_caption(state)
    assert caption.startswith("**Stopped** at step") and f"as they were at {state['unfinished']['shown']}" in caption
    assert "Nothing had been drawn" in sample.stopped_caption(drawn["pixelcnn"][0][3])
    for nothing_running in (drawn["pixelcnn"][-1][3], None, {"unfinished": "not ours"}):  # finished, never drawn, malformed
        assert is_skip(sample.stopped_caption(nothing_running))


def test_each_grid_goes_to_the_lane_its_measured_cost_says(shipped, tiny):
    """Long work is what the checkpoint measured as slow or the decode_is_slow flag says, never a family's name;
    the other lane's event skips. No weights are loaded to decide."""
    assert [n for n in shipped.names if sample.in_long_lane(shipped, n)] == ["ddpm-mnist", "pixelcnn-mnist", "rbm-mnist",
                                                                             "rbm-spin-mnist"]
    names = tiny[1]
    models = ModelCache("cpu", names=list(names.values()))
    assert sample.in_long_lane(models, names["vae measured slow"]) and not sample.in_long_lane(models, names["vae"])
    assert sample.in_long_lane(models, names["diffusion"])  # no figure recorded: its flag says
    assert not models._built  # nothing was loaded to decide
    skip = sample.quick_grid(models, names["vae measured slow"], 0, 1.0, 2)
    assert len(skip) == 4 and all(map(is_skip, skip))
    assert [len(m) for m in sample.long_grid(models, names["vae"], 0, 1.0, 2)] == [4]
    assert all(map(is_skip, next(sample.long_grid(models, names["vae"], 0, 1.0, 2))))
    assert len(sample.quick_grid(models, names["vae"], 0, 1.0, 2)[0]) == 2
    with pytest.raises(gr.Error, match="unknown model"):  # an unknown name is the quick lane's to refuse
        sample.quick_grid(models, "no-such-model", 0, 1.0, 2)
    assert all(map(is_skip, next(sample.long_grid(models, "no-such-model", 0, 1.0, 2))))
    with pytest.raises(gr.Error, match="samples"):  # the long lane checks its arguments before any work
        next(sample.long_grid(models, names["pixelcnn"], 0, 1.0, 1000))


def test_the_app_wires_two_lanes_a_stop_and_an_endpoint_that_does_not_stream(shipped):
    app = build_app(shipped)
    button = {b.elem_id: b._id for b in app.blocks.values() if getattr(b, "elem_id", None) in ("sample-run", "sample-stop")}
    clicked = [fn for fn in app.fns.values() if (button["sample-run"], "click") in fn.targets]
    assert sorted(fn.concurrency_id == "long" for fn in clicked) == [False, True]
    long_event = next(fn for fn in clicked if fn.concurrency_id == "long")
    assert inspect.isgeneratorfunction(long_event.fn) and long_event.api_visibility == "private"
    stops = [fn for fn in app.fns.values() if (button["sample-stop"], "click") in fn.targets]
    assert any(long_event._id in fn.cancels for fn in stops)
    assert all(fn.fn is None for fn in stops)  # Stop only cancels: the caption is the long event's next step
    assert any(fn.fn is sample.stopped_caption and fn.trigger_after == long_event._id and fn.trigger_only_on_failure
               for fn in app.fns.values())  # run by the page once the cancel has gone through
    (endpoint,) = [fn for fn in app.fns.values() if fn.api_name == "sample"]
    assert endpoint.targets == [] and not inspect.isgeneratorfunction(endpoint.fn) and endpoint.api_visibility == "public"
    assert any(fn.targets == [(app._id, "load")] and fn.fn.func is sample.quick_grid for fn in app.fns.values()
               if getattr(fn.fn, "func", None) is not None)  # the first grid is drawn on load, in the quick lane


def test_closing_a_watched_process_stops_it_after_the_step_in_hand():
    computed, gate = [], threading.Event()

    def steps():
        for i in range(100):
            if i == 1:
                gate.wait()  # step 1 takes as long as the test says
            computed.append(i)
            yield i

    before = set(threading.enumerate())
    watcher = sample.watched_steps(steps())
    assert next(watcher) == 0
    assert next(watcher) is None  # step 1 is in hand: the watcher yields anyway, so a cancel can land
    (worker,) = set(threading.enumerate()) - before
    watcher.close()  # what Gradio's cancel does to the handler
    gate.set()
    worker.join()
    assert computed == [0, 1]

    def failing():
        yield 0
        raise ValueError("the model refused")

    with pytest.raises(ValueError, match="the model refused"):  # an error in the work reaches the handler
        list(sample.watched_steps(failing()))


def test_the_thumbnail_is_the_picked_samples_own_image(shipped, tmp_path):
    gallery, _, _, grid = sample.sample_grid(shipped, "vae-mnist", 5, 1.0, 8)
    pick, status = sample.pick_sample(shipped, grid, 3)
    assert np.array_equal(pixels(sample.pick_thumbnail(shipped, pick)), pixels(gallery[3]))
    shown = []
    for i, (image, caption) in enumerate(gallery):  # the gallery as Gradio hands it to the select event: files
        path = tmp_path / f"{i}.png"
        (Image.eval(image, lambda v: 255 - v) if i == 3 else image).save(path)  # #3 unlike its decode
        shown.append((str(path), caption))
    picked, status, thumbnail = sample.pick_from_grid(shipped, grid, shown, 3)
    assert picked == pick and "Picked **vae-mnist seed 5 #3**" in status
    assert np.array_equal(pixels(thumbnail), 255 - pixels(gallery[3]))  # the clicked image itself, not decoded again
    other = tmp_path / "other.png"
    Image.new("L", (10, 10), 255).save(other)  # a file of the cache that is no grid image
    for not_this_grid in (shown[:5], [*shown[:3], (str(other), "#3"), *shown[4:]], [(None, None)] * 8):
        _, _, decoded = sample.pick_from_grid(shipped, grid, not_this_grid, 3)
        assert np.array_equal(pixels(decoded), pixels(gallery[3]))
    with pytest.raises(gr.Error, match="picked sample"):
        sample.pick_thumbnail(shipped, None)
    with pytest.raises(gr.Error, match="draw samples first"):
        sample.pick_from_grid(shipped, None, shown, 3)


# --- the public endpoint ------------------------------------------------------------------------------------

def test_the_sample_endpoint_returns_the_whole_grid_in_one_message(app_url, shipped):  # noqa: F811
    gradio_client = pytest.importorskip("gradio_client")
    client = gradio_client.Client(app_url, verbose=False)
    for name, count in (("vae-mnist", 8), ("rbm-mnist", 2)):  # a quick model and one the page streams
        job = client.submit(name, 3, 1.0, count, "any", api_name="/sample")
        gallery, seed, caption = job.result()
        assert len(job.outputs()) == 1  # no unfinished grid reaches a client
        model = shipped.get(name)
        expected = model.decode(model.sample_latent(count, seed=3))
        assert seed == 3 and caption.startswith(f"**{name}**") and len(gallery) == count
        for item, image in zip(gallery, expected):
            with Image.open(item["image"]) as sent:
                assert np.array_equal(np.asarray(sent.convert("L")), pixels(sample.to_image(image, sample.SCALE)))


# --- in the browser -----------------------------------------------------------------------------------------

def new_page(browser, app_url):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app_url)
    return page


def choose(page, model: str, count: int, seed: int = 0) -> None:  # noqa: F811
    page.get_by_label("model", exact=True).click()
    page.get_by_role("option", name=model, exact=True).click()
    for selector, value in (("#sample-count input[type=number]", count), ("#sample-seed input", seed)):
        page.locator(selector).fill(str(value))
        page.locator(selector).press("Enter")


def caption_has(page, *texts: str) -> None:
    page.wait_for_function("texts => texts.every(t => document.querySelector('#sample-caption').innerText.includes(t))",
                           arg=list(texts))


def drawing_partly(page, count: int) -> None:
    """Until the page shows an unfinished grid: as many images as asked for, and the caption still drawing."""
    page.wait_for_function("""count => document.querySelector('#sample-caption').innerText.includes('Drawing')
        && document.querySelector('#sample-caption').innerText.includes(' step ')
        && document.querySelectorAll('#sample-gallery .gallery-item').length === count""", arg=count)


def image_pixels(page, image: str) -> np.ndarray:
    """The pixels of the image a JavaScript expression names, as the browser fetched it."""
    src = page.evaluate(f"() => ({image}).src")
    return np.asarray(Image.open(io.BytesIO(page.request.get(src).body())).convert("L"))


def top_and_bottom(page, selector: str) -> tuple[float, float]:
    """Where an element starts and ends, in page coordinates (however far the page is scrolled)."""
    return tuple(page.evaluate(f"() => {{ const r = document.querySelector('{selector}').getBoundingClientRect(); "
                               "return [r.top + window.scrollY, r.bottom + window.scrollY]; }"))


def test_the_first_grid_is_drawn_on_load_and_the_pick_stays_in_view(page, shipped):  # noqa: F811
    first = shipped.names[0]
    page.wait_for_function("document.querySelectorAll('#sample-gallery .gallery-item').length === 32")  # nothing pressed
    caption_has(page, first, "32 samples, seed 0")
    page.locator("#sample-gallery .gallery-item").nth(3).click()
    page.wait_for_function("document.querySelector('#sample-picked').innerText.includes('Picked')")
    assert f"Picked {first} seed 0 #3" in page.inner_text("#sample-picked")
    page.wait_for_selector("#sample-picked-image img")
    assert np.array_equal(image_pixels(page, "document.querySelector('#sample-picked-image img')"),
                          image_pixels(page, "document.querySelectorAll('#sample-gallery .gallery-item img')[3]"))
    choose(page, first, 64, seed=1)
    page.click("#sample-run")
    caption_has(page, "64 samples, seed 1")
    assert f"Picked {first} seed 0 #3" in page.inner_text("#sample-picked")  # a new grid keeps the pick
    thumbnail, grid = top_and_bottom(page, "#sample-picked-image img"), top_and_bottom(page, "#sample-gallery")
    assert thumbnail[1] <= min(grid[0], page.viewport_size["height"])  # above the grid, in the first screen


def test_a_pixelcnn_grid_fills_in_and_stop_frees_its_lane_at_once(browser, app_url):  # noqa: F811
    """Two users fill both slots of the long-work lane (diffusion, then PixelCNN); the PixelCNN user presses Stop
    and a third user's long grid is then served while the diffusion grid, started first, is still being drawn:
    had Stop not freed its slot, the third would wait for one of the two to finish, and the diffusion grid would
    finish first."""
    third, other, pixelcnn = (new_page(browser, app_url) for _ in range(3))
    choose(third, "rbm-mnist", 1)  # loaded now, so that its turn below measures the lane, not the loading
    third.click("#sample-run")
    caption_has(third, "rbm-mnist (rbm): 1 samples, seed 0")
    choose(other, "ddpm-mnist", 64)
    other.click("#sample-run")
    drawing_partly(other, 64)
    choose(pixelcnn, "pixelcnn-mnist", 64)
    pixelcnn.click("#sample-run")
    drawing_partly(pixelcnn, 64)  # the unfinished grid, row by row
    pixelcnn.click("#sample-stop")
    caption_has(pixelcnn, "Stopped at step", "pixelcnn-mnist", "as they were at step")
    choose(third, "rbm-mnist", 1, seed=1)
    third.click("#sample-run")
    caption_has(third, "rbm-mnist (rbm): 1 samples, seed 1")
    assert "Drawing" in other.inner_text("#sample-caption")  # served while both slots would otherwise be held
    assert "Stopped at step" in pixelcnn.inner_text("#sample-caption")  # and no late message undid the Stop
    assert pixelcnn.locator("#sample-gallery .gallery-item").count() == 64  # the unfinished grid stays shown
    other.click("#sample-stop")
    caption_has(other, "Stopped at step")
    for page in (third, other, pixelcnn):  # noqa: F402
        page.context.close()


def test_picking_during_a_long_grid_picks_that_sample(page):  # noqa: F811
    """pick_first_sample, as the other browser tests use it, on a model whose grid is streamed."""
    choose(page, "rbm-mnist", 4)
    pick_first_sample(page)
    assert "Picked rbm-mnist seed 0 #0" in page.inner_text("#sample-picked")
