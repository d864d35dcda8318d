"""The Denoise tab (and the exports it shares with Interpolate): handlers called as the app calls them, then the
page driven in headless chromium. Browser waits are for states of the page, never for a length of time (see
tests/test_browser.py, whose server, browser and page fixtures these tests share)."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from explorer.ui import build_app, denoise, interpolate
from explorer.ui.common import export_frames, labelled_strip
from explorer.ui.models import ModelCache

from test_browser import app_url, browser, open_tab, page  # noqa: F401  (the fixtures, by name)

ROOT = Path(__file__).resolve().parent.parent
CAPTION = re.compile(r"step (\d+) of (\d+)")


@pytest.fixture(scope="module")
def models():
    return ModelCache("cpu", names=["vae-mnist", "dcgan-mnist", "flow-mnist", "ddpm-mnist"])


def caption_step(text: str) -> tuple[int, int]:
    found = CAPTION.search(text)
    assert found, text
    return int(found[1]), int(found[2])


# --- the run: the scrubber, the status line, Stop ------------------------------------------------------------

@pytest.fixture
def every_step(monkeypatch):
    """Each step sent to the page as it is made (the app sends at most every SHOW_EVERY_S: see run_steps)."""
    monkeypatch.setattr(denoise, "SHOW_EVERY_S", 0.0)


def test_the_scrubber_follows_the_run_and_counts_as_the_caption_does(models, every_step):
    outputs = list(denoise.run_steps(models, "ddpm-mnist", 0, "ddpm", 6, 0.0))
    assert len(outputs) == 6 + 1  # one per step, then the run's end
    for yielded, (x_t, x_0, text, frames, scrubber, status) in enumerate(outputs[:-1], start=1):
        step, total = caption_step(text)
        # while it streams, the range is this run's frames so far and the value is the step the caption shows
        assert step == yielded == len(frames) == scrubber["maximum"] == scrubber["value"] and total == 6
        assert scrubber["interactive"] is False and scrubber["minimum"] < scrubber["maximum"]
    frames, scrubber = outputs[-1][3], outputs[-1][4]
    assert scrubber == {**scrubber, "minimum": 1, "maximum": 6, "value": 6, "interactive": True}
    for step in range(1, 7):  # every value the scrubber offers shows the step its caption names
        x_t, x_0, text = denoise.scrub(frames, step)
        assert caption_step(text) == (step, 6)
        assert np.array_equal(x_t[::8, ::8], frames[step - 1]["x_t"]) and np.array_equal(x_0[::8, ::8], frames[step - 1]["x_0"])
    for outside in (0, 7, 2.5, None):
        with pytest.raises(gr.Error, match="step"):
            denoise.scrub(frames, outside)


def test_a_new_run_starts_its_own_range(models, every_step):
    long_run = list(denoise.run_steps(models, "ddpm-mnist", 0, "ddim", 9, 0.0))
    short = list(denoise.run_steps(models, "ddpm-mnist", 0, "ddim", 3, 0.0))
    assert long_run[-1][4]["maximum"] == 9
    assert [o[4]["maximum"] for o in short] == [1, 2, 3, 3]  # never the last run's 9
    assert short[0][4]["minimum"] < short[0][4]["maximum"]  # Gradio refuses a slider with no range
    one = list(denoise.run_steps(models, "ddpm-mnist", 0, "ddim", 1, 0.0))
    assert one[-1][4]["interactive"] is False  # one step: nothing to scrub


def test_the_status_says_what_runs_and_how_much_is_left(models, every_step):
    outputs = list(denoise.run_steps(models, "ddpm-mnist", 0, "ddpm", 5, 0.0))
    for yielded, output in enumerate(outputs[:-1], start=1):
        assert output[5].startswith(f"**DDPM** step {yielded} of 5"), output[5]
        if yielded < 5:
            assert re.search(r", about \d+ (s|min) left$", output[5]), output[5]
    assert "all 5 steps done" in outputs[-1][5]
    flow = list(denoise.run_steps(models, "flow-mnist", 0, "ddim", 3, 0.0))  # no sampler: the model is named
    assert flow[0][5].startswith("**flow-mnist** step 1 of ")


def test_messages_are_paced_and_nothing_is_computed_ahead_of_them(models, monkeypatch):
    """Gradio cancels a generator only between its yields: the handler yields the newest step at most every
    SHOW_EVERY_S and always the last, each message holds every frame made so far, and once a run is closed (what a
    cancel leaves) the model is asked for no further step."""
    model = models.get("ddpm-mnist")
    taken = []
    original = model.decode_steps

    def counted(*args, **options):
        for step in original(*args, **options):
            taken.append(step.index)
            yield step

    monkeypatch.setattr(model, "decode_steps", counted)
    monkeypatch.setattr(denoise, "SHOW_EVERY_S", 0.0)  # every step its own message
    run = denoise.run_steps(models, "ddpm-mnist", 0, "ddpm", 20, 0.0)
    for yielded in range(1, 4):
        assert len(next(run)[3]) == len(taken) == yielded
    run.close()
    assert len(taken) == 3
    monkeypatch.setattr(denoise, "SHOW_EVERY_S", float("inf"))  # never again before the last step
    taken.clear()
    outputs = list(denoise.run_steps(models, "ddpm-mnist", 0, "ddpm", 8, 0.0))
    assert [len(o[3]) for o in outputs] == [1, 8, 8] and len(taken) == 8  # the first step at once, the last, the end
    assert caption_step(outputs[1][2]) == (8, 8) and outputs[1][4]["maximum"] == 8


def test_after_a_stop_the_status_and_the_scrubber_cover_the_frames_that_arrived(models, every_step):
    outputs = list(denoise.run_steps(models, "ddpm-mnist", 0, "ddpm", 6, 0.0))
    stored = outputs[2][3]  # the state Gradio keeps from the last message before a Stop at step 3
    assert len(stored) == 3 and len(outputs[-1][3]) == 6  # later steps did not change what was stored
    x_t, x_0, text, scrubber, status = denoise.ended(stored)
    assert status.startswith("**Stopped** at step 3 of 6 (DDPM)")
    assert scrubber == {**scrubber, "minimum": 1, "maximum": 3, "value": 3, "interactive": True}
    assert caption_step(text) == (3, 6) and np.array_equal(x_t[::8, ::8], stored[2]["x_t"])
    skip = gr.skip()
    assert denoise.ended(outputs[-1][3]) == (skip,) * 5  # a finished run has said it all itself
    assert denoise.ended(()) == (skip,) * 5  # stopped before the first step: nothing to show
    with pytest.raises(gr.Error, match="malformed"):
        denoise.ended([{"x_t": 1}])


def test_stop_cancels_every_run_and_each_run_reports_its_end(models):
    app = build_app(models)
    fns = list(app.fns.values())
    panel = next(fn.outputs[0] for fn in fns if fn.api_name == "denoise")
    runs = {fn._id for fn in fns if fn.fn is not None and panel in fn.outputs and fn.concurrency_id == "long"}
    assert len(runs) == 3  # Run, and the preset's two
    stops = [fn for fn in fns if fn.cancels]
    assert any(set(fn.cancels) == runs for fn in stops)
    for fn in fns:
        if fn._id in runs:
            assert not fn.postprocess  # the pictures travel inline (see test_pictures_travel_inside_the_message)
            assert fn.concurrency_limit == 2  # the long-work lane


# --- the pictures travel inside the stream's messages ----------------------------------------------------------

def test_pictures_travel_inside_the_message(models):
    """Each frame's pictures are data: URLs in the message itself: no file for the page to fetch afterwards, so
    the panels cannot fall behind the caption, however busy the server."""
    from gradio import processing_utils

    x_t, x_0, text, *_ = denoise.inline(next(denoise.run_steps(models, "ddpm-mnist", 0, "ddim", 3, 0.0)))
    app = build_app(models)
    panel = next(fn.outputs[0] for fn in app.fns.values() if fn.api_name == "denoise")
    for picture in (x_t, x_0):
        sent = processing_utils.move_files_to_cache(picture, panel, postprocess=True)  # as Gradio sends an output
        assert sent["path"] is None and sent["url"].startswith("data:image/png;base64,")
        decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(sent["url"].split(",", 1)[1]))))
        assert decoded.shape == (224, 224) and decoded.dtype == np.uint8
    frame = next(denoise.frames_of(models, "ddpm-mnist", 0, "ddim", 3, 0.0))
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(x_t.url.split(",", 1)[1]))))
    assert np.array_equal(pixels[::8, ::8], frame["x_t"])  # lossless, and the very frame


# --- controls that do not apply are hidden ---------------------------------------------------------------------

def test_sampler_controls_show_only_where_the_model_takes_them(models, tmp_path):
    from conftest import tiny_model
    from explorer.checkpoint import save_checkpoint

    names = [str(save_checkpoint(tiny_model(key), tmp_path / key, tiny_model(key).family, {"command": "test"}))
             for key in ("pixelcnn", "rbm")]
    cache = ModelCache("cpu", names=["flow-mnist", "ddpm-mnist", *names])
    for name in cache.names_where("multi_step"):
        updates = denoise.sampler_controls(cache, name)
        assert [u["visible"] for u in updates] == [cache.model_class(name).has_sampler_options] * 3, name
    assert {name for name in cache.names if denoise.sampler_controls(cache, name)[0]["visible"]} == {"ddpm-mnist"}
    for name in ("vae-mnist", "no-such-model", None):
        with pytest.raises(gr.Error, match="model must be one of"):
            denoise.sampler_controls(models, name)


# --- the preset ------------------------------------------------------------------------------------------------

def test_the_ddpm_vs_ddim_preset_sets_both_halves(models):
    ddpm = models.get("ddpm-mnist")
    assert denoise.preset(models, "ddpm-mnist", "ddim") == ("ddpm-mnist", "ddim", denoise.PRESET_DDIM_STEPS, 0.0)
    assert denoise.preset(models, "flow-mnist", "ddpm") == ("ddpm-mnist", "ddpm", ddpm.config.train_timesteps, 0.0)
    with pytest.raises(gr.Error, match="sampler"):
        denoise.preset(models, "ddpm-mnist", "euler")
    with pytest.raises(gr.Error, match="model must be one of"):
        denoise.preset(models, "no-such-model", "ddim")
    with pytest.raises(gr.Error, match="no model here has sampler options"):
        denoise.preset(ModelCache("cpu", names=["flow-mnist"]), "flow-mnist", "ddim")


def test_the_preset_holds_a_finished_first_run_only(models):
    frames = tuple(denoise.frames_of(models, "ddpm-mnist", 0, "ddim", 3, 0.0))
    held = denoise.held_result(frames)
    assert held["visible"] and held["label"] == "DDIM, 3 steps: its result, held"
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(held["value"].url.split(",", 1)[1]))))
    assert np.array_equal(pixels[::8, ::8], frames[-1]["x_t"])  # the run's last image, as the panels showed it
    assert denoise.held_result(frames[:2]) == gr.update(visible=False)  # stopped: the pair ended, nothing held
    with pytest.raises(gr.Error, match="malformed"):
        denoise.held_result([{"x_t": 1}])


# --- the noise schedule's plot ---------------------------------------------------------------------------------

def test_the_schedule_plot_marks_the_current_t(models):
    for t in (0, 250, 999):
        *_, caption, plot = denoise.forward_process(models, "ddpm-mnist", 3, t, 0)
        marker = plot[plot["series"] == denoise.CURRENT_T]
        assert set(marker["t"]) == {t} and set(marker["coefficient"]) == {0.0, 1.0}  # a vertical line at t
        curves = plot[plot["series"] != denoise.CURRENT_T]
        assert set(curves["series"]) == {denoise.SIGNAL, denoise.NOISE} and len(curves) == 2 * 1000
        signal = curves[curves["series"] == denoise.SIGNAL].set_index("t")["coefficient"]
        assert f"x_t = {signal[t]:.4f}" in caption  # the line crosses the signal curve where the caption says
    app = build_app(models)
    (schedule,) = [b for b in app.blocks.values() if isinstance(b, gr.LinePlot) and b.elem_id == "forward-schedule"]
    assert set(schedule.color_map) == {denoise.SIGNAL, denoise.NOISE, denoise.CURRENT_T}  # every series in the legend
    assert schedule.height is None  # with a height, Gradio's plot cuts its own legend off (see build)


# --- strips and exports ----------------------------------------------------------------------------------------

def ink_rows(band: np.ndarray) -> int:
    rows = np.where(band.max(axis=1) > 128)[0]
    return int(rows.max() - rows.min() + 1) if len(rows) else 0


@pytest.mark.parametrize("scale", [3, 4])
def test_strip_captions_are_legible(scale):
    """Legible: caption digits at least 12 px high in the strip as it is made (the bitmap font's were 7), each
    caption inside its own cell, and the frames themselves unchanged."""
    images = torch.rand(5, 1, 28, 28)
    labels = ["4 100%", "7 83%", "ae2d 42", "flow 54", "dae 16"]
    strip = np.asarray(labelled_strip(images, labels, scale))
    cell = 28 * scale
    assert strip.shape[1] == 5 * (cell + 4) + 4  # the layout others rely on is kept
    for i in range(5):
        left = 4 + i * (cell + 4)
        assert np.array_equal(strip[4:4 + cell, left:left + cell], np.asarray(Image.fromarray(
            (images[i, 0].numpy() * 255).round().astype(np.uint8)).resize((cell, cell), Image.Resampling.NEAREST)))
        band = strip[4 + cell:, left:left + cell]
        assert ink_rows(band[:, :]) >= 12, (labels[i], ink_rows(band))
        gap = strip[4 + cell:, left + cell:left + cell + 4]
        assert gap.max() <= 40  # nothing spills into the gap between cells
    digit = np.asarray(labelled_strip(images[:1], ["4"], scale))[4 + cell:]
    assert ink_rows(digit) >= 12


def test_exports_are_named_for_what_they_hold(models, every_step):
    outputs = list(denoise.run_steps(models, "ddpm-mnist", 0, "ddim", 3, 0.0))
    assert Path(denoise.export_gif(outputs[-1][3])).name == "ddim-3-steps-seed-0.gif"
    assert Path(denoise.export_gif(outputs[1][3])).name == "ddim-3-steps-seed-0-stopped-at-2.gif"
    with_eta = list(denoise.run_steps(models, "ddpm-mnist", 4, "ddim", 2, 0.5))
    assert Path(denoise.export_gif(with_eta[-1][3])).name == "ddim-2-steps-eta-0.5-seed-4.gif"
    flow = list(denoise.run_steps(models, "flow-mnist", 2, "ddim", 3, 0.0))
    assert Path(denoise.export_gif(flow[-1][3])).name == "flow-mnist-seed-2.gif"
    with Image.open(denoise.export_gif(outputs[-1][3])) as gif:
        assert gif.n_frames >= 3
    a, b = interpolate.endpoints_from_seeds(models, "dcgan-mnist", 1, 2)
    _, gif, png, _ = interpolate.interpolate(models, a, b, "lerp", 5)
    assert (Path(gif).name, Path(png).name) == ("dcgan-mnist-lerp-5-frames.gif", "dcgan-mnist-lerp-5-frames-strip.png")
    _, gif, _ = export_frames(models, "vae-mnist", torch.rand(2, 1, 28, 28), "vae-mnist #3 / seed 5")
    assert Path(gif).name == "vae-mnist--3---seed-5.gif"  # nothing a file name cannot hold


def test_export_and_scrub_refuse_what_is_not_a_run():
    for call in (lambda: denoise.scrub((), 1), lambda: denoise.export_gif(())):
        with pytest.raises(gr.Error, match="run the process first"):
            call()
    for junk in ("frames", [1, 2], None):
        with pytest.raises(gr.Error, match="malformed"):
            denoise.export_gif(junk)


def test_the_rbm_shows_as_many_frames_as_the_readme_says():
    said = re.search(r"the Gibbs chain at (\d+) steps spaced in log time", (ROOT / "README.md").read_text())
    assert said, "README.md no longer says how many frames the RBM's chain shows"
    frames = list(denoise.run_steps(ModelCache("cpu", names=["rbm-mnist"]), "rbm-mnist", 0, "ddim", 3, 0.0))[-1][3]
    assert len(frames) == int(said[1])


# --- in the browser --------------------------------------------------------------------------------------------

def set_sampler(page, sampler: str, steps: int) -> None:
    page.locator("#denoise-sampler").get_by_text(sampler, exact=True).click()
    box = page.locator("#denoise-steps input[type=number]")
    box.fill(str(steps))
    box.press("Enter")


def status_text(page) -> str:
    return page.inner_text("#denoise-status")


def scrubber_state(page) -> dict:
    return page.evaluate("""() => { const r = document.querySelector('#denoise-scrub input[type=range]');
        return {max: Number(r.max), value: Number(r.value), disabled: r.disabled,
                number: Number(document.querySelector('#denoise-scrub input[type=number]').value)}; }""")


def panels_loaded(page) -> list[int]:
    """naturalWidth of each panel's image once each has finished loading (0 for a broken image)."""
    page.wait_for_function("[...document.querySelectorAll('#denoise-xt img, #denoise-x0 img')].length === 2 && "
                           "[...document.querySelectorAll('#denoise-xt img, #denoise-x0 img')].every(i => i.complete)")
    return page.evaluate("[...document.querySelectorAll('#denoise-xt img, #denoise-x0 img')].map(i => i.naturalWidth)")


def test_switching_sampler_and_steps_never_leaves_a_broken_panel(page):
    """The fault: after a run with another sampler or step count both panels ended as broken images (5 of 6
    switches on a busy machine). Each frame was a file the page fetched from the server the run kept busy; the
    fetches fell behind the stream. Now every switch ends with both panels drawn, the scrubber and the caption at
    the same step, and not one picture fetched as a file while the runs streamed."""
    open_tab(page, "Denoise")
    page.locator("#denoise-run").wait_for()
    # every picture the panels are given, from here on
    page.evaluate("""() => { window.given = []; new MutationObserver(changes => { for (const change of changes)
        for (const node of [change.target, ...change.addedNodes]) if (node.querySelectorAll)
            for (const i of [node, ...node.querySelectorAll('img')]) if (i.tagName === 'IMG' && i.closest('#denoise-xt, #denoise-x0'))
                window.given.push(i.src); }).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']}); }""")
    for sampler, steps in [("ddpm", 12), ("ddim", 7), ("ddpm", 9), ("ddim", 12), ("ddim", 5), ("ddpm", 7)]:
        set_sampler(page, sampler, steps)
        before = page.evaluate("window.given.length")
        page.click("#denoise-run")
        page.wait_for_function(f"document.querySelector('#denoise-status').innerText.includes('all {steps} steps done')")
        assert all(width > 0 for width in panels_loaded(page)), (sampler, steps)
        assert caption_step(page.inner_text("#denoise-equation")) == (steps, steps)
        scrubber = scrubber_state(page)
        assert scrubber == {"max": steps, "value": steps, "number": steps, "disabled": False}, (sampler, steps)
        given = page.evaluate(f"window.given.slice({before})")
        assert given and all(src.startswith("data:image/png") for src in given), (sampler, steps, given[:3])
    page.locator("#denoise-scrub input[type=range]").fill("3")  # scrubbing shows the step the scrubber says
    page.wait_for_function("document.querySelector('#denoise-equation').innerText.includes('step 3 of 7')")
    assert all(width > 0 for width in panels_loaded(page))


def wait_for_step(page, at_least: int) -> int:
    """Wait until the status says the run is at step `at_least` or later (or has ended); -> the step it says."""
    handle = page.wait_for_function(f"""() => {{ const text = document.querySelector('#denoise-status').innerText;
        const m = /step (\\d+) of (\\d+)/.exec(text);
        return text.includes('steps done') || text.includes('Stopped') ? -1 : m && Number(m[1]) >= {at_least} && Number(m[1]); }}""")
    step = int(handle.json_value())
    assert step > 0, status_text(page)  # the run was still going
    return step


def wait_for_end(page) -> str:
    """Wait until the run has ended, stopped or finished; -> the status."""
    page.wait_for_function("/Stopped at step|steps done/.test(document.querySelector('#denoise-status').innerText)")
    return status_text(page)


def test_stop_ends_a_long_run_and_frees_its_slot(browser, app_url):  # noqa: F811
    """Two 1000-step DDPM runs fill the long-work lane (two slots). Stopping the second must end it where it is
    (the status says where, the scrubber covers the frames that arrived) and free its slot at once: a new run on
    the same page completes while the first run is still going. Had the stopped run kept its slot, the new run
    would have waited for one of the 1000-step runs to finish."""
    pages = []
    for _ in range(2):
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        tab = context.new_page()
        tab.set_default_timeout(0)
        tab.goto(app_url)
        open_tab(tab, "Denoise")
        tab.locator("#denoise-run").wait_for()
        set_sampler(tab, "ddpm", 1000)
        pages.append(tab)
    first, second = pages
    try:
        first.click("#denoise-run")
        wait_for_step(first, 2)
        second.click("#denoise-run")
        wait_for_step(second, 3)
        # while it streams, the scrubber's range is this run's frames so far, and it cannot be moved
        mid = scrubber_state(second)
        assert mid["disabled"] and mid["max"] == mid["value"] >= 3
        second.click("#denoise-stop")
        stopped_at, total = caption_step(wait_for_end(second))
        assert "Stopped" in status_text(second)
        assert total == 1000 and 3 <= stopped_at < 1000
        assert scrubber_state(second) == {"max": stopped_at, "value": stopped_at, "number": stopped_at, "disabled": False}
        assert caption_step(second.inner_text("#denoise-equation")) == (stopped_at, 1000)
        assert all(width > 0 for width in panels_loaded(second))
        set_sampler(second, "ddim", 10)
        second.click("#denoise-run")
        second.wait_for_function("document.querySelector('#denoise-status').innerText.includes('DDIM: all 10 steps done')")
        still, of = caption_step(status_text(first))
        assert of == 1000 and still < 1000 and "Stopped" not in status_text(first)  # the first run is still going
        first.click("#denoise-stop")
        assert "Stopped" in wait_for_end(first)
    finally:
        for tab in pages:
            tab.context.close()


def test_controls_that_do_not_apply_are_hidden(page):
    open_tab(page, "Denoise")
    page.locator("#denoise-run").wait_for()
    controls = ("#denoise-sampler", "#denoise-steps", "#denoise-eta")
    for selector in controls:
        page.wait_for_selector(selector, state="visible")
    for name, state in (("flow-mnist", "hidden"), ("rbm-mnist", "hidden"), ("pixelcnn-mnist", "hidden"), ("ddpm-mnist", "visible")):
        page.locator("#denoise-model").get_by_label("model", exact=True).click()
        page.get_by_role("option", name=name, exact=True).click()
        for selector in controls:
            page.wait_for_selector(selector, state=state)


def test_the_ddpm_vs_ddim_preset_sets_the_controls_and_runs_both(page):
    open_tab(page, "Denoise")
    page.locator("#denoise-run").wait_for()
    set_sampler(page, "ddpm", 7)  # not the preset's settings, so the preset must visibly change them
    page.click("#denoise-preset")
    page.wait_for_function("document.querySelector('#denoise-status').innerText.includes('all 50 steps done')")
    assert "DDIM" in status_text(page)
    # then the same seed through DDPM's every timestep, its controls shown as it runs
    page.wait_for_function("/^DDPM( step|: all)/.test(document.querySelector('#denoise-status').innerText)")
    assert page.get_attribute("#denoise-sampler input[value=ddpm]", "aria-checked") == "true"
    assert page.input_value("#denoise-steps input[type=number]") == "1000"
    assert status_text(page).startswith("DDPM step")
    # DDIM's digit stays beside DDPM's run, so the pair ends side by side
    page.wait_for_function("document.querySelector('#denoise-held img')?.src.startsWith('data:image/png')")
    assert "DDIM, 50 steps: its result, held" in page.inner_text("#denoise-held")
    page.click("#denoise-stop")
    assert "Stopped" in wait_for_end(page)
    assert page.is_visible("#denoise-held")  # a Stop of the second half keeps the first's result
    page.click("#denoise-run")  # a run of its own holds nothing, from its first message (not once it ends)
    when_hidden = page.wait_for_function("""() => { const held = document.querySelector('#denoise-held');
        return (!held || held.offsetParent === null) && document.querySelector('#denoise-status').innerText; }""").json_value()
    assert re.match(r"DDPM step \d+ of 1000", when_hidden), when_hidden
    page.click("#denoise-stop")
    assert "Stopped" in wait_for_end(page)


def test_gifs_play_in_the_page_and_download_under_their_names(page, tmp_path):
    open_tab(page, "Denoise")
    page.locator("#denoise-run").wait_for()
    set_sampler(page, "ddim", 10)
    page.click("#denoise-run")
    page.wait_for_function("document.querySelector('#denoise-status').innerText.includes('all 10 steps done')")
    page.click("#denoise-export")
    for shown, link, name in (("#denoise-gif-shown", "#denoise-gif", "ddim-10-steps-seed-0.gif"),):
        check_gif(page, shown, link, name, tmp_path)
    open_tab(page, "Interpolate")
    page.click("#interp-use-seeds")
    page.wait_for_function("document.querySelector('#interp-a').innerText.includes('seed 1')")
    page.click("#interp-run")
    check_gif(page, "#interp-gif-shown", "#interp-gif", "vae-mnist-slerp-10-frames.gif", tmp_path)


def check_gif(page, shown: str, link: str, name: str, tmp_path) -> None:
    """The GIF is drawn in the page (an image that loaded, animated: more than one frame) and its download link
    shows and saves it under `name`, the whole name visible."""
    page.wait_for_function(f"(() => {{ const i = document.querySelector('{shown} img'); return i && i.complete && i.naturalWidth > 0; }})()")
    anchor = page.locator(f"{link} a").first
    anchor.wait_for()
    for width in (1280, 700):  # named, and not cut short on the page, on a narrow one too
        page.set_viewport_size({"width": width, "height": 1000})
        page.wait_for_function(f"""() => {{ const s = document.querySelector('{link} .stem'), e = document.querySelector('{link} .ext');
            return s && e && s.innerText + e.innerText === {name!r} && s.clientWidth > 0; }}""")
        assert page.evaluate(f"(s => s.scrollWidth <= s.clientWidth)(document.querySelector('{link} .stem'))"), width
    page.set_viewport_size({"width": 1280, "height": 1000})
    with page.expect_download() as download:
        anchor.click()
    assert download.value.suggested_filename == name
    saved = tmp_path / name
    download.value.save_as(saved)
    with Image.open(saved) as gif:
        assert gif.format == "GIF" and gif.n_frames > 1


def test_clean_up_rebuilds_with_the_digit_models_only_while_shapes_models_are_served():
    """A served shapes VAE (3x32x32, its size set in its config, not its class) has no digit to rebuild: the
    panel skips it rather than feeding it a 1x28x28 digit (it once failed whenever shapes models were served)."""
    both = ModelCache("cpu", names=["ae-mnist", "vae-shapes"])
    assert both.image_shape("vae-shapes") == (3, 32, 32) and both.image_shape("ae-mnist") == (1, 28, 28)
    *_, table = denoise.clean_up(both, None, 3, 0.5, 0)
    assert "| ae-mnist |" in table and "vae-shapes" not in table
