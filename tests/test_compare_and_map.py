"""Compare and the Latent map as a teacher met them: a click off the map's plot, long work that streams, says
how far it has got and stops, and the autoencoder-vs-VAE preset. Handlers first (no browser), then the app in
headless chromium with the fixtures of test_browser.py (every wait is for a state of the page, never a time)."""

from __future__ import annotations

import re

import gradio as gr
import numpy as np
import pytest
import torch

from explorer.data import image_grid, load_mnist, to_tensor
from explorer.latent import latent_map, latent_map_steps
from explorer.ui import build_app, compare
from explorer.ui import latent_map as tab
from explorer.ui.common import LONG_WORK
from explorer.ui.models import ModelCache

from conftest import tiny_model

SKIP = (gr.skip(), gr.skip(), gr.skip())


@pytest.fixture(scope="module")
def models():
    """One-pass models beside two that decode in steps (the flow block by block, the RBM's Gibbs chain)."""
    return ModelCache("cpu", names=["vae-mnist", "ae2d-mnist", "vae2d-mnist", "flow-mnist", "rbm-mnist"])


def seconds_left(status: str) -> int:
    return int(re.search(r"about (\d+) s left", status).group(1))


# --- 1. a click off the plot --------------------------------------------------------------------------------

def test_the_legend_sits_below_the_plot_where_the_click_test_clicks(models):
    picture, _, _ = tab.show_map(models, "ae2d-mnist")
    assert picture.size == (tab.MAP_SIZE, tab.MAP_SIZE + tab.LEGEND)
    swatch = (tab.MARGIN + 3 * 40 + 5, tab.MAP_SIZE + 11)  # the click: y 437, on the legend
    assert "#%02x%02x%02x" % picture.getpixel(swatch) == tab.PALETTE[3]
    assert not tab.inside_plot(*swatch)


@pytest.mark.parametrize("x, y", [
    (tab.MARGIN + 3 * 40 + 5, tab.MAP_SIZE + 11),                   # the legend's swatch for 3 (the issue: y 437)
    (200, tab.MAP_SIZE + tab.LEGEND),                               # the picture's last row
    (tab.MARGIN - 1, 200), (200, tab.MARGIN - 1),                   # the margins, left and top
    (tab.MAP_SIZE - tab.MARGIN + 1, 200), (200, tab.MAP_SIZE - tab.MARGIN + 1),  # right and bottom
    (0, 0), (tab.MAP_SIZE, tab.MAP_SIZE + tab.LEGEND),               # the picture's corners
])
def test_a_click_off_the_plot_changes_nothing(models, x, y):
    models.latent_map("ae2d-mnist")  # drawn: a click on the plot would decode
    path = [[0.1, 0.2]]
    assert tab.click(models, "ae2d-mnist", path, x, y) == SKIP  # map, decoded image and path all stay
    assert path == [[0.1, 0.2]]


@pytest.mark.parametrize("x, y", [(tab.MARGIN, tab.MARGIN), (tab.MAP_SIZE - tab.MARGIN, tab.MAP_SIZE - tab.MARGIN)])
def test_a_click_on_the_plots_frame_decodes_that_corner_of_the_window(models, x, y):
    latent_map_, _ = models.latent_map("ae2d-mnist")
    low, high = tab.frame(latent_map_)
    corner = [low[0], high[1]] if x == tab.MARGIN else [high[0], low[1]]  # up is +v
    _, decoded, path = tab.click(models, "ae2d-mnist", [], x, y)
    assert np.allclose(path, [corner])
    expected = models.get("ae2d-mnist").decode(torch.tensor([corner], dtype=torch.float32))
    assert np.array_equal(np.asarray(decoded), np.asarray(tab.to_image(expected, 8)))


@pytest.mark.parametrize("x, y, message", [
    (-1, 200, "x must be"), (tab.MAP_SIZE + 1, 200, "x must be"),
    (200, tab.MAP_SIZE + tab.LEGEND + 1, f"y must be between 0 and {tab.MAP_SIZE + tab.LEGEND}"),
    (None, None, "x must be"), (10.5, 10, "x must be"),
])
def test_a_click_outside_the_picture_is_refused(models, x, y, message):
    with pytest.raises(gr.Error, match=message):
        tab.click(models, "ae2d-mnist", [], x, y)


def test_a_click_on_a_map_not_drawn_is_ignored_and_builds_nothing():
    models = ModelCache("cpu", names=["vae2d-mnist"])  # its drawing stopped before it began
    assert tab.click(models, "vae2d-mnist", [], 200, 200) == SKIP
    assert tab.built_map(models, "vae2d-mnist") is None


def test_a_click_off_the_plot_still_checks_its_arguments(models):
    with pytest.raises(gr.Error, match="finite"):
        tab.click(models, "ae2d-mnist", [[float("nan"), 0]], 0, 0)
    with pytest.raises(gr.Error, match="unknown model"):
        tab.click(models, "no-such-model", [], 0, 0)


# --- 2. Compare: streamed, estimated, stoppable ---------------------------------------------------------------

def test_compare_clears_then_shows_each_model_as_it_finishes(models):
    names, count = models.names, len(models.names)
    updates = list(compare.compare(models, 5))
    first = updates[0]
    assert first[:count] == tuple(None for _ in names) and first[-1] == "" and f"0 of {count} models done" in first[count]
    arrivals = [next(k for k, u in enumerate(updates) if u[i] != gr.skip() and u[i] is not None) for i in range(count)]
    assert arrivals == sorted(arrivals) and len(set(arrivals)) == count  # one model at a time, in the listed order
    for i, name in enumerate(names):
        model = models.get(name)
        z = model.sample_latent(compare.N_SAMPLES, seed=5, temperature=model.default_temperature)
        shown = np.asarray(updates[arrivals[i]][i], dtype=int)
        expected = np.asarray(image_grid(model.decode(z), ncols=compare.N_SAMPLES, scale=2), dtype=int)
        assert np.abs(shown - expected).max() <= 1  # decode_steps ends at decode (up to float rounding)
        table = updates[arrivals[i]][-1]
        assert all((f"| {n} |" in table) == (j <= i) for j, n in enumerate(names))  # the table fills in too
    *_, status, progress, table = updates[-1]
    assert status.startswith("**Done**") and "seed 5" in status
    assert progress == {"seed": 5, "done": count, "total": count, "running": None}


def test_compare_reports_after_every_step_of_a_model_that_decodes_in_steps(models):
    """Gradio cancels a generator between yields: one per decode step keeps a Stop within one step."""
    names, count = models.names, len(models.names)
    updates = list(compare.compare(models, 0))
    for i, name in enumerate(names):
        model = models.get(name)
        steps = list(model.decode_steps(model.sample_latent(compare.N_SAMPLES, seed=0)))
        running = [u for u in updates if u[count + 1]["running"] == name and u[count + 1]["done"] == i]
        assert len(running) == 1 + len(steps)  # the update that said it was next, then one per step
        stepwise = [u[count] for u in running if u[i] == gr.skip()]
        assert all(f"**{name}**" in s and f"{i} of {count} models done" in s for s in stepwise)
        if len(steps) > 1:
            assert f"step {len(steps)} of {len(steps)}" in stepwise[-1]


def test_compare_estimates_the_time_left_from_the_last_run(models, monkeypatch):
    names, count = models.names, len(models.names)
    monkeypatch.setattr(compare, "_last_seconds", {name: 10.0 for name in names})
    run = compare.compare(models, 1)
    for update in run:
        progress, status = update[count + 1], update[count]
        if update[-1] != gr.skip() and progress["done"] < count:  # a model just finished: the rest as last time
            assert seconds_left(status) == 10 * (count - progress["done"])
    assert set(compare._last_seconds) == set(names) and all(s != 10.0 for s in compare._last_seconds.values())


def test_a_model_never_run_here_is_estimated_from_its_checkpoint_record(monkeypatch):
    monkeypatch.setattr(compare, "_last_seconds", {})
    from explorer.checkpoint import read_record, resolve

    recorded = read_record(resolve("flow-mnist"))["metrics"]["sampling_ms_per_image"]
    assert compare.expected_seconds(ModelCache("cpu", names=["flow-mnist"]), "flow-mnist") == pytest.approx(recorded * compare.N_SAMPLES / 1000)


def test_stop_says_what_was_stopped_and_what_is_shown(models):
    names, count = models.names, len(models.names)
    run = compare.compare(models, 2)
    for update in run:
        if update[count + 1]["done"] == 2:
            break
    run.close()  # what Gradio does to a cancelled generator
    progress = update[count + 1]
    status = compare.stopped(progress)
    assert f"Stopped** at {names[2]}, seed 2" in status
    assert f"2 of {count} models had finished" in status and f"the other {count - 2} were not finished" in status
    finished = list(compare.compare(models, 2))[-1][count + 1]
    assert compare.stopped(finished) == gr.skip() and compare.stopped(None) == gr.skip()  # the "Done" line stays
    for bad in ("x", {"seed": "2", "done": 0, "total": 3}, {"done": 1}):
        with pytest.raises(gr.Error, match="malformed"):
            compare.stopped(bad)
    with pytest.raises(gr.Error, match="seed"):
        next(compare.compare(models, -1))


# --- 2. the latent map: built a batch at a time, stoppable ----------------------------------------------------

def test_latent_map_steps_reports_each_batch_and_ends_with_the_map():
    model, images = tiny_model("autoencoder"), torch.rand(64, 1, 28, 28)
    steps = list(latent_map_steps(model, images, batch_size=20))
    assert [done for done, _ in steps] == [20, 40, 60, 64, 64]
    assert all(m is None for _, m in steps[:-1])
    whole = latent_map(model, images)
    assert torch.allclose(steps[-1][1].coords, whole.coords, atol=1e-5)


def test_drawing_a_map_reports_progress_and_is_built_once():
    models = ModelCache("cpu", names=["vae2d-mnist"])  # nothing built yet
    total = len(load_mnist("heldout").labels)
    updates = list(tab.draw(models, "vae2d-mnist"))
    first, *encoding, last = updates
    assert first[0] is None and first[2] == [] and "encoding" in first[1]  # no click can land on a stale map
    assert [u[3]["done"] for u in encoding] == list(range(tab.CHUNK, total, tab.CHUNK)) + [total]
    assert all(f"of {total:,} digits encoded, about" in u[1] and "held-out digits" not in u[1] for u in encoding)
    image, caption, path = tab.show_map(models, "vae2d-mnist")
    assert np.array_equal(np.asarray(last[0]), np.asarray(image)) and last[1:3] == (caption, path)
    assert "held-out digits" in caption and last[3] == {"model": "vae2d-mnist", "shown": True}
    heldout = load_mnist("heldout")
    expected = latent_map(models.get("vae2d-mnist"), to_tensor(heldout.images))
    assert torch.allclose(models.latent_map("vae2d-mnist")[0].coords, expected.coords, atol=1e-5)
    assert len(list(tab.draw(models, "vae2d-mnist"))) == 1  # built: shown at once


def test_a_stopped_map_is_not_kept_and_says_so():
    models = ModelCache("cpu", names=["vae2d-mnist", "ae2d-mnist"])
    drawing = tab.draw(models, "vae2d-mnist")
    for update in drawing:
        if update[3]["done"] == 3 * tab.CHUNK:
            break
    drawing.close()
    assert tab.built_map(models, "vae2d-mnist") is None
    plot, caption, path = tab.stopped(update[3])
    assert plot is None and path == [] and f"Stopped** drawing vae2d-mnist's map after {3 * tab.CHUNK:,} of 2,000" in caption
    assert tab.clear_path(models, "vae2d-mnist") == (gr.skip(), gr.skip(), [])  # builds nothing
    with pytest.raises(gr.Error, match="not drawn yet"):
        tab.export_csv(models, "vae2d-mnist")
    assert tab.built_map(models, "vae2d-mnist") is None
    shown = list(tab.draw(models, "ae2d-mnist"))[-1][3]
    assert tab.stopped(shown) == SKIP and tab.stopped(None) == SKIP  # a drawing that finished: the map stays
    for bad in ("x", {"model": "vae2d-mnist", "done": 1}, {"done": 1, "total": 2}):
        with pytest.raises(gr.Error, match="malformed"):
            tab.stopped(bad)
    with pytest.raises(gr.Error, match="no one-pass encoder"):
        next(tab.draw(ModelCache("cpu", names=["dcgan-mnist"]), "dcgan-mnist"))


# --- 3. the preset ---------------------------------------------------------------------------------------------

def test_the_holes_preset_sets_the_2d_autoencoder_beside_the_2d_vae(models):
    label = "autoencoder vs VAE: the holes"
    assert tab.presets(models) == [label]
    left, right, left_request, right_request, note = tab.apply_preset(models, label, 3, 0)
    assert (left_request, right_request) == (4, 1)  # both sides asked to draw
    for name, family in ((left, "autoencoder"), (right, "vae")):
        model = models.get(name)
        assert model.family == family and model.latent_shape == (2,) and name in tab.mappable(models)
    assert "holes" in note and "prior" in note and note.count(". ") == 0  # one sentence
    for bad in (("nope", 0, 0), (label, -1, 0), (label, 0, "1")):
        with pytest.raises(gr.Error):
            tab.apply_preset(models, *bad)
    assert tab.presets(ModelCache("cpu", names=["vae2d-mnist", "flow-mnist"])) == []  # offered only where served


def test_stop_buttons_cancel_the_long_work_they_stop(models):
    app = build_app(models)
    runs = [i for i, fn in app.fns.items() if fn.api_name == "compare"]
    draws = [i for i, fn in app.fns.items() if fn.concurrency_id == LONG_WORK["concurrency_id"] and fn.fn is not None
             and any(block.elem_id in ("map-left", "map-right") for block in fn.outputs)]
    assert len(runs) == 1 and len(draws) == 2
    stops = {"compare-stop": set(runs), "map-left-stop": {draws[0]}, "map-right-stop": {draws[1]}}
    cancels = {app.blocks[block_id].elem_id: set(fn.cancels) for fn in app.fns.values() if fn.is_cancel_function
               for block_id, _ in fn.targets if app.blocks[block_id].elem_id in stops}
    assert cancels == stops
    assert all(block.variant == "stop" for block in app.blocks.values() if block.elem_id in stops)
    defaults = {block.elem_id: block.value for block in app.blocks.values() if isinstance(block, gr.Dropdown)}
    assert (defaults["map-left-model"], defaults["map-right-model"]) == tab.PRESETS["autoencoder vs VAE: the holes"][:2]


# --- in the browser ------------------------------------------------------------------------------------------

from test_browser import TIMEOUT_MS, app_url, browser, image_src, open_tab, page, wait_src_change, watch_for  # noqa: E402,F401


@pytest.fixture
def second_page(browser, app_url):
    """Another user's page: a session, and queue slots, of its own."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    other = context.new_page()
    other.set_default_timeout(TIMEOUT_MS)
    other.goto(app_url)
    yield other
    context.close()


def wait_for_maps(page, left: str, right: str) -> None:
    """Until both maps are drawn, of these models (a caption names its model, then where its digits lie)."""
    page.wait_for_function("([l, r]) => ['left', 'right'].every((side, i) => {"
                           " const c = document.querySelector(`#map-${side}-caption`).innerText;"
                           " return c.startsWith([l, r][i] + ':') && c.includes('held-out digits')"
                           " && document.querySelector(`#map-${side} img`); })", arg=[left, right])


def test_a_click_on_the_legend_changes_nothing_on_the_page(page):
    open_tab(page, "Latent map")
    left, right = tab.PRESETS["autoencoder vs VAE: the holes"][:2]
    wait_for_maps(page, left, right)
    picture = page.locator("#map-left img")
    box = picture.bounding_box()

    def at(x, y):  # a pixel of the map's picture -> a position on the element showing it
        return {"x": x * box["width"] / tab.MAP_SIZE, "y": y * box["height"] / (tab.MAP_SIZE + tab.LEGEND)}

    picture.click(position=at(150, 160))
    page.wait_for_selector("#map-left-decoded img")
    decoded = image_src(page, "#map-left-decoded")
    page.evaluate("""() => { let last = document.querySelector('#map-left img').src;
        window.seen = {errors: 0, decodedGone: false, maps: []};
        new MutationObserver(() => {
            if (document.querySelector('.toast-body.error, #map-left .error, #map-left-decoded .error')) window.seen.errors++;
            if (!document.querySelector('#map-left-decoded img')) window.seen.decodedGone = true;
            const map = document.querySelector('#map-left img'), src = map ? map.src : null;
            if (src !== last) { window.seen.maps.push(src); last = src; }
        }).observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true}); }""")
    picture.click(position=at(tab.MARGIN + 3 * 40 + 5, tab.MAP_SIZE + 11))  # the legend's 3, as in the issue
    # a click on the plot, queued behind the legend's in the side's one-at-a-time lane: when it has decoded, the
    # legend's click has had its answer
    picture.click(position=at(260, 120))
    after = wait_src_change(page, "#map-left-decoded", decoded)
    seen = page.evaluate("window.seen")
    assert seen["errors"] == 0 and not seen["decodedGone"], seen
    assert seen["maps"] == [image_src(page, "#map-left")], seen  # one new map: the plot click's path, nothing else
    assert after != decoded


def test_compare_streams_stops_and_frees_its_lane(page, second_page):
    """The long-work lane runs two at once. Another user's Compare holds one slot throughout; ours takes the
    other and is stopped after its first model; then the map tab's drawing, which needs a slot of the same lane,
    finishes while the other user's Compare still runs: the stopped run's slot was free, not waited for."""
    names = ModelCache("cpu").names  # the order Compare runs them (no weights are loaded to ask)
    first, last = f"#compare-{names[0]} img", f"#compare-{names[-1]} img"
    shown = "([a, b]) => document.querySelector(a) && !document.querySelector(b)"
    for p in (second_page, page):
        open_tab(p, "Compare")
        watch_for(p, "firstShown", shown, [first, last])
    second_page.click("#compare-run")
    second_page.wait_for_function("window.firstShown")
    page.click("#compare-run")
    page.wait_for_function("window.firstShown")  # the first model's samples, before the last's
    assert "models done, about" in page.inner_text("#compare-status")
    page.click("#compare-stop")
    page.wait_for_function("document.querySelector('#compare-status').innerText.includes('Stopped')")
    status = page.inner_text("#compare-status")
    assert re.search(rf"Stopped at \S+, seed 0: (\d+) of {len(names)} models had finished", status), status
    assert page.query_selector(last) is None
    open_tab(page, "Latent map")
    wait_for_maps(page, *tab.PRESETS["autoencoder vs VAE: the holes"][:2])
    assert second_page.query_selector(last) is None, "the other Compare ended first: the stopped slot was not freed"
    second_page.click("#compare-stop")
    second_page.wait_for_function("/Stopped|Nothing is running/.test(document.querySelector('#compare-status').innerText)")


def test_a_map_being_built_stops_and_says_so(page):
    open_tab(page, "Latent map")
    wait_for_maps(page, *tab.PRESETS["autoencoder vs VAE: the holes"][:2])
    page.locator("#map-right-model input").click()
    page.get_by_role("option", name="flow-mnist", exact=True).click()  # 2,000 encodes: the slowest map
    page.wait_for_function("document.querySelector('#map-right-caption').innerText.includes('digits encoded, about')")
    page.click("#map-right-stop")
    page.wait_for_function("document.querySelector('#map-right-caption').innerText.includes('Stopped')")
    caption = page.inner_text("#map-right-caption")
    assert re.search(r"Stopped drawing flow-mnist's map after [\d,]+ of 2,000 digits: no map is shown", caption), caption
    assert page.query_selector("#map-right img") is None


def test_the_holes_preset_draws_the_autoencoder_beside_the_vae(page):
    left, right, note = tab.PRESETS["autoencoder vs VAE: the holes"]
    open_tab(page, "Latent map")
    wait_for_maps(page, left, right)
    page.locator("#map-left-model input").click()
    page.get_by_role("option", name="vae-mnist", exact=True).click()  # something else first, for the preset to change
    wait_for_maps(page, "vae-mnist", right)
    before = image_src(page, "#map-left")
    page.click("#map-preset-0")
    wait_for_maps(page, left, right)
    assert image_src(page, "#map-left") != before
    assert page.input_value("#map-left-model input") == left and page.input_value("#map-right-model input") == right
    assert note in page.inner_text("#map-preset-note")


def test_the_table_row_is_the_trade_offs_the_checkpoint_recorded():
    """Training time, rarest class, NN ratio and IS read from the record, beside what is measured now."""
    cache = ModelCache("cpu", names=["vae-mnist"])
    model = cache.get("vae-mnist")
    record = model.checkpoint_record
    cells = [c.strip() for c in compare.table_row("vae-mnist", model, 0.08).split("|")[1:-1]]
    header = [c.strip() for c in compare.HEADER.splitlines()[0].split("|")[1:-1]]
    row = dict(zip(header, cells))
    minutes = record["training"]["train_time_s"] / 60
    assert row["training"] == f"{minutes:.0f} min, {record['training']['steps']:,} steps"
    assert row["ms/image now"] == f"{0.08 * 1000 / compare.N_SAMPLES:.1f}"
    assert row["rarest class"] == f"{record['metrics']['min_class_share']:.1%}"
    assert row["NN ratio"] == f"{record['metrics']['nn_distance_ratio']:.2f}"
    assert row["IS"] == f"{record['metrics']['inception_score']:.2f}"
    assert row["parameters"] == f"{sum(p.numel() for p in model.parameters()):,}"
