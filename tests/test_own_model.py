"""Every view on the user's own model: a small RGB DDPM pipeline saved by diffusers itself (random weights) and
opened beside a shipped model, driven through each tab's handlers, then through `app.py --model` in a real
browser (Sample, Denoise, Interpolate, Edit)."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import running_app
from explorer.domains import domain_of
from explorer.domains.generic import MEASURES, fit_picture, measure
from explorer.open import load_model
from explorer.ui import compare, denoise, edit, interpolate, latent_map, sample
from explorer.ui.models import ModelCache
from explorer.ui.server import open_models
from test_open import save_pipeline, small_unet

OWN = "butterflies"


@pytest.fixture(scope="module")
def pipeline_folder(tmp_path_factory):
    return save_pipeline(tmp_path_factory.mktemp("own") / OWN, unet=small_unet(size=32))


@pytest.fixture(scope="module")
def models(pipeline_folder, tmp_path_factory):
    own = load_model(pipeline_folder, "cpu")
    own.config.decode_steps = 5  # the views' behaviour, not the sampler's quality, is under test here
    return ModelCache("cpu", names=["vae-mnist", "ddpm-mnist"], opened={OWN: own})


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_EXPLORER_CACHE", str(tmp_path / "cache"))


def colour(image) -> bool:
    array = np.asarray(image)
    return array.ndim == 3 and array.shape[-1] == 3


def test_the_opened_model_is_served_after_the_shipped_ones(models):
    assert models.names == ["vae-mnist", "ddpm-mnist", OWN]
    assert (models.image_shape(OWN), models.domain(OWN), models.families[OWN]) == ((3, 32, 32), None, "diffusion")
    assert OWN in models.names_where("has_sampler_options")


def test_sample_grid_and_pick_are_in_colour_at_a_readable_size(models):
    *_, last = sample.draw_grid(models, OWN, 0, 1.0, 4)
    items = last[0]
    assert len(items) == 4 and all(colour(image) and image.size == (96, 96) for image, _ in items)
    pick, status = sample.pick_sample(models, sample.grid_recipe(OWN, 0, 1.0, 4, "any"), 2)
    assert f"{OWN} seed 0 #2" in status
    assert colour(sample.pick_thumbnail(models, pick))
    rows = sample.api_decode(models, OWN, [0.0] * (3 * 32 * 32))
    assert np.asarray(rows).shape == (32, 32, 3)


def test_interpolation_strip_and_gif_are_in_colour_with_frame_numbers(models):
    a, b = interpolate.endpoints_from_seeds(models, OWN, 0, 1)
    strip, gif, png, caption = interpolate.interpolate(models, a, b, "slerp", 4)
    assert colour(strip) and "4 frames, slerp" in caption
    with Image.open(gif) as animation:
        assert animation.n_frames >= 4
    with pytest.raises(Exception, match="pick both ends from one model"):
        interpolate.interpolate(models, a, interpolate.endpoints_from_seeds(models, "vae-mnist", 0, 1)[1], "lerp", 3)


def test_denoise_streams_colour_frames_with_the_schedules_timesteps(models):
    frames = list(denoise.frames_of(models, OWN, 0, "ddim", 5, 0.0))
    assert len(frames) == 5 and frames[0]["x_t"].shape == (32, 32, 3)
    # the pipeline's own scheduler: 100 training timesteps, "leading" spacing (DDPMScheduler's default): 80, 60, ... 0
    assert [f["text"].split("**")[1] for f in frames] == ["t=80", "t=60", "t=40", "t=20", "t=0"]
    x_t, x_0, _ = denoise.scrub(frames, 3)
    assert x_t.shape[:2] == x_0.shape[:2] == (224, 224)  # shown as large as a digit is (28 px x 8)
    with Image.open(denoise.export_gif(frames)) as animation:
        assert animation.mode in ("P", "RGB") and animation.n_frames >= 5
    with pytest.raises(Exception, match="steps must be between 1 and 100"):
        list(denoise.frames_of(models, OWN, 0, "ddim", 101, 0.0))


def test_the_forward_process_noises_the_models_own_sample(models):
    clean, noisy, caption, plot = denoise.forward_process(models, OWN, 3, 50, 0)
    assert colour(clean) and colour(noisy) and "the model's own sample, seed 3" in caption
    assert len(plot) == 2 * 100 + 2
    with pytest.raises(Exception, match="t must be between 0 and 99"):
        denoise.forward_process(models, OWN, 3, 100, 0)
    *_, slider = denoise.forward_for_model(models, OWN, 3, 250, 0)  # chosen with the slider at 250 of ddpm-mnist's 999
    assert (slider["maximum"], slider["value"]) == (99, 99)
    *_, slider = denoise.forward_for_model(models, "ddpm-mnist", 3, 99, 0)
    assert (slider["maximum"], slider["value"]) == (999, 99)


def test_the_forward_process_noises_an_upload_prepared_for_the_model(models, tmp_path):
    Image.new("RGB", (50, 80), (250, 200, 0)).save(tmp_path / "yellow.png")
    clean, noisy, caption, _ = denoise.forward_process(models, OWN, 0, 0, 0, str(tmp_path / "yellow.png"))
    assert "(x_0: your upload)" in caption and colour(clean)
    assert np.asarray(clean)[5, 5].tolist() == [250, 200, 0]  # t = 0 keeps the picture, fitted to 3x32x32
    with pytest.raises(Exception, match="no visible digit"):  # ddpm-mnist's domain makes it MNIST-style first
        denoise.forward_process(models, "ddpm-mnist", 0, 10, 0, str(tmp_path / "yellow.png"))
    with pytest.raises(Exception, match="cannot use this upload: not a readable image"):
        denoise.forward_process(models, OWN, 0, 10, 0, __file__)


def test_compare_draws_the_opened_model_in_colour(models):
    *_, last = compare.compare(models, 0)
    grids = last[:len(models.names)]
    assert colour(grids[models.names.index(OWN)]) and not colour(grids[0])


def test_edit_names_its_sliders_by_the_generic_measures_and_reads_them_out(models):
    pick, _ = sample.pick_sample(models, sample.grid_recipe(OWN, 0, 1.0, 4, "any"), 1)
    opened = dict(zip(edit.open_pick_outputs(), edit.open_pick(models, pick)))
    assert colour(opened["image"])
    slots = [opened[slot] for slot in edit.SLOTS]
    assert [s["label"].split(" (")[0] for s in slots] == list(MEASURES)  # a colour model: all eight, hue included
    assert all(s["visible"] for s in slots) and all(opened[f"lock:{slot}"]["visible"] for slot in edit.SLOTS)
    assert "1 = " in slots[0]["label"] and "of white" in slots[0]["label"]
    # no classes: the digit controls are hidden, and a "keep the digit" sent past the page is refused
    assert opened["digit"]["visible"] is False and opened["lock:digit"]["visible"] is False
    assert opened["settings"]["locks"] == [] and opened["settings"]["sliders"] == list(MEASURES)
    with pytest.raises(gr.Error, match="control must be one of"):
        edit.apply_control(opened["settings"], "lock:digit", True)
    assert opened["pc0"]["interactive"] is True and "of image variance" in opened["pc0"]["label"]
    assert "brightness (of white)" in opened["readout"] and "hue (deg)" in opened["readout"]
    assert "digit the classifier reads" not in opened["readout"]
    # a principal move alone needs no named fit; the readout reads what it changed
    image, settings, readout = edit.move(models, pick, opened["settings"], "pc0", 2.0)
    assert colour(image) and settings["pca"][0] == 2.0 and "brightness" in readout


def test_a_generic_slider_moves_its_measure_and_a_lock_holds_another(models):
    """Edit on the opened model as on the digits: the brightness slider, through the tab's slot 0, moves the
    measured brightness up by about the asked SDs, with contrast locked held near where it was."""
    pick, _ = sample.pick_sample(models, sample.grid_recipe(OWN, 0, 1.0, 4, "any"), 2)
    settings = edit.open_pick(models, pick)[2]
    fits = models.attributes(OWN).record["attributes"]
    assert fits["brightness"]["calibrated"], fits["brightness"]  # x_T's mean carries through a DDIM decode
    settings = edit.apply_control(settings, edit.slot_control(settings, "lock:slot1"), True)
    assert settings["locks"] == ["contrast"]
    image, after, readout = edit.move(models, pick, settings, edit.slot_control(settings, "slot0"), 1.5)
    assert after["amounts"]["brightness"] == 1.5
    original = settings["original"]
    now = measure(models.decode(OWN, edit.edited_latent(models, pick, after)[1]))
    change = (now["brightness"][0] - original["brightness"]) / fits["brightness"]["sd"]
    held = (now["contrast"][0] - original["contrast"]) / fits["contrast"]["sd"]
    assert 0.5 < change < 3.0 and abs(held) < abs(change)
    assert "brightness (of white)" in readout and "locked" in readout


def test_the_directions_are_fitted_once_and_kept_in_the_explorers_own_cache(pipeline_folder, tmp_path):
    own = load_model(pipeline_folder, "cpu")
    own.config.decode_steps = 3
    first = ModelCache("cpu", names=[], opened={OWN: own}).directions(OWN)
    kept = list((tmp_path / "cache").rglob("*.safetensors"))
    assert len(kept) == 1 and kept[0].parent.name == own.weights_id
    assert not list(pipeline_folder.rglob("pca_directions*"))  # nothing written into the user's folder
    again = ModelCache("cpu", names=[], opened={OWN: own}).directions(OWN)
    assert torch.equal(first.vectors, again.vectors)


def test_an_upload_is_encoded_in_colour_and_the_sketchpad_is_refused(models, tmp_path):
    Image.new("RGB", (90, 40), (20, 160, 60)).save(tmp_path / "green.png")
    picture = edit.upload_for(models, OWN, str(tmp_path / "green.png"))
    assert picture.shape == (3, 32, 32) and float(picture[1].mean()) == pytest.approx(160 / 255, abs=0.01)
    seen, rebuilt, caption, pick = edit.encode_digit(models, OWN, picture)
    assert colour(seen) and colour(rebuilt) and caption.startswith(f"{edit.ENCODED} **{OWN}** (DDIM inversion)")
    assert pick["model"] == OWN and len(pick["latent"]) == 3 * 32 * 32 and pick["label"] == f"your image, {OWN}"
    with pytest.raises(Exception, match="makes colour images: upload a picture"):
        edit.drawing_for(models, OWN, {"composite": np.zeros((280, 280, 4), np.uint8)})
    with pytest.raises(Exception, match="cannot use this upload: not a readable image"):
        edit.upload_for(models, OWN, __file__)
    with pytest.raises(Exception, match="no visible digit"):  # a digits model makes an upload MNIST-style, as before
        edit.upload_for(models, "vae-mnist", str(tmp_path / "green.png"))


def test_opened_models_are_fitted_in_the_background_once(pipeline_folder, tmp_path):
    own = load_model(pipeline_folder, "cpu")
    own.config.decode_steps = 3
    cache = ModelCache("cpu", names=["vae-mnist"], opened={OWN: own})
    threads = cache.fit_opened_in_background()
    assert [t.name for t in threads] == [f"fit-{OWN}"]  # the opened model only: shipped ones ship theirs
    fitted = cache.directions(OWN)  # a request meanwhile waits for that one fit rather than starting another
    for thread in threads:
        thread.join()
    assert cache.built("directions", OWN) is fitted and cache.fitted(OWN) and cache.fit_progress() == ""
    kept = sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert kept == ["attributes.json", "attributes.safetensors", "pca_directions.safetensors"]


def test_edit_shows_a_background_fit_under_way_and_opens_the_sliders_when_it_ends(pipeline_folder, tmp_path):
    """While the background fit runs: its progress line counts the images decoded, a pick opens at once with its
    image and measures and every slider waiting, a move is refused with the reason, and the tab's timer keeps
    ticking; once the fit ends the timer's tick reopens the pick with the named sliders, and stops."""
    import threading

    own = load_model(pipeline_folder, "cpu")
    own.config.decode_steps = 3
    cache = ModelCache("cpu", names=["vae-mnist"], opened={OWN: own})
    pick, _ = sample.pick_sample(cache, sample.grid_recipe(OWN, 0, 1.0, 4, "any"), 1)  # decoded before the gate
    decode, started, release = own.decode, threading.Event(), threading.Event()

    def gated(z, *args, **options):  # the fit's decodes wait here, once one has been counted
        images = decode(z, *args, **options)
        if threading.current_thread().name.startswith("fit-"):
            started.set()
            release.wait()
        return images

    own.decode = gated
    threads = cache.fit_opened_in_background()
    assert started.wait(60)
    line = cache.fit_progress()
    assert f"**{OWN}** in the background" in line and "of at most" in line and "images decoded" in line
    waiting = dict(zip(edit.open_pick_outputs(), edit.open_pick(cache, pick)))
    assert waiting["settings"]["waiting"] and "fit of this model's edit directions finishes" in waiting["readout"]
    assert waiting["slot0"]["interactive"] is False and waiting["pc0"]["interactive"] is False
    assert colour(waiting["image"]) and "brightness" in waiting["readout"]
    with pytest.raises(gr.Error, match="still being fitted"):
        edit.move(cache, pick, waiting["settings"], "pc0", 1.0)
    ticked = edit.fit_tick(cache, pick, waiting["settings"])
    assert ticked[0] == cache.fit_progress() and ticked[-1].active is True
    assert all(isinstance(out, type(gr.skip())) for out in ticked[1:-1])  # nothing reopened yet
    release.set()
    for thread in threads:
        thread.join()
    done = edit.fit_tick(cache, pick, waiting["settings"])
    assert done[0] == "" and done[-1].active is False
    reopened = dict(zip(edit.open_pick_outputs(), done[1:-1]))
    assert reopened["slot0"]["label"].startswith("brightness (1 =") and reopened["slot0"]["interactive"] is True
    assert reopened["settings"]["waiting"] is False and reopened["pc0"]["interactive"] is True
    assert edit.fit_tick(cache, pick, reopened["settings"])[-1].active is False


def test_views_that_cannot_serve_it_leave_it_out(models):
    assert OWN not in latent_map.mappable(models)  # DDIM inversion is not one pass, and its data is unknown
    assert (f"**{OWN}** (encodes by DDIM inversion, not in one network pass)" in latent_map.not_mapped(models)
            and "vae-mnist" not in latent_map.not_mapped(models))
    strip_table = denoise.clean_up(models, None, 3, 0.5, 0)[3]
    assert OWN not in strip_table  # the digit clean-up rebuilds digits with models of digits


def test_uploads_are_fitted_to_the_models_size_in_colour(tmp_path):
    picture = Image.new("RGB", (120, 60), (200, 30, 30))
    picture.paste((30, 30, 200), (0, 0, 60, 60))
    picture.save(tmp_path / "wide.png")
    fitted = fit_picture(tmp_path / "wide.png", (3, 32, 32))
    assert fitted.shape == (3, 32, 32)
    # the middle is cut out: its left half blue, right half red, as the picture's middle square is
    assert fitted[2, 16, 4] > 0.7 and fitted[0, 16, 28] > 0.7
    assert fit_picture(tmp_path / "wide.png", (1, 28, 28)).shape == (1, 28, 28)
    assert domain_of(None).prepare_upload(tmp_path / "wide.png", (3, 16, 16)).shape == (3, 16, 16)


def test_generic_measures_read_what_they_name():
    dark, bright = torch.zeros(1, 3, 16, 16), torch.ones(1, 3, 16, 16) * 0.8
    red = torch.zeros(1, 3, 16, 16)
    red[:, 0] = 1.0
    blob = torch.zeros(1, 3, 16, 16)
    blob[:, :, 2:6, 10:14] = 1.0
    figures = measure(torch.cat([dark, bright, red, blob]))
    assert figures["brightness"][1] == pytest.approx(0.8, abs=1e-6) and figures["brightness"][0] == 0
    assert figures["colourfulness"][2] > figures["colourfulness"][1] == pytest.approx(0, abs=1e-6)
    assert figures["hue"][2] == pytest.approx(0, abs=1e-3)  # red sits at 0 degrees
    assert figures["centre x"][3] == pytest.approx(12 / 16, abs=1e-6) and figures["centre y"][3] == pytest.approx(4 / 16, abs=1e-6)
    assert figures["foreground size"][3] == pytest.approx(16 / 256)
    assert figures["sharpness"][3] > figures["sharpness"][1] == 0


def test_open_models_names_each_source_once(pipeline_folder):
    opened = open_models([str(pipeline_folder), str(pipeline_folder)], "cpu")
    assert list(opened) == [OWN, f"{OWN}-2"]


# --- in a real browser ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def own_app(pipeline_folder, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    setup = f"import os\nos.environ['LATENT_EXPLORER_CACHE'] = {str(cache)!r}"
    with running_app(tmp_path_factory.mktemp("own-app"), setup, ("--model", str(pipeline_folder))) as url:
        yield url


def test_app_model_flag_serves_it_in_sample_denoise_interpolate_and_edit(own_app):
    from test_browser import CHROMIUM, FLAGS, TIMEOUT_MS, open_tab, playwright

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(own_app)
        page.wait_for_function("n => document.body.innerText.includes('your own ' + n)", arg=OWN)
        page.get_by_label("model", exact=True).first.click()
        page.get_by_role("option", name=OWN, exact=True).click()
        page.click("#sample-run")
        page.wait_for_function(f"document.querySelector('#sample-caption').innerText.includes('{OWN}')")
        page.locator("#sample-gallery .gallery-item").nth(1).click()
        page.wait_for_function("document.querySelector('#sample-picked').innerText.includes('Picked')")
        page.click("#sample-to-a")
        page.locator("#sample-gallery .gallery-item").nth(2).click()
        page.wait_for_function("document.querySelector('#sample-picked').innerText.includes('#2')")
        page.click("#sample-to-b")
        page.click("#sample-to-edit")
        page.wait_for_function(f"document.querySelector('#edit-source')?.innerText.includes('{OWN}')")
        page.wait_for_function("document.querySelector('#edit-readout')?.innerText.includes('colourfulness')")
        # the named sliders are the generic measures' once the server's background fit is done (the tab's timer
        # reopens a pick made while it ran); the digit controls are hidden
        page.wait_for_function("document.querySelector('#edit-slot-0')?.innerText.includes('brightness (1 =')")
        assert page.locator("#edit-slot-3").inner_text().startswith("hue (1 =")
        assert not page.locator("#edit-digit").is_visible() and not page.locator("#edit-lock-digit").is_visible()
        page.locator("#edit-lock-slot-1 input[type=checkbox]").check()
        before = page.evaluate("document.querySelector('#edit-image img').src")
        page.locator("#edit-slot-0 input[type=range]").fill("1.5")
        page.wait_for_function("b => document.querySelector('#edit-image img').src !== b", arg=before)
        page.wait_for_function("document.querySelector('#edit-readout')?.innerText.includes('0 (locked)')")
        assert "+1.5" in page.locator("#edit-readout").inner_text()
        page.get_by_text("Principal directions (found without labels").click()
        before = page.evaluate("document.querySelector('#edit-image img').src")
        page.locator("#edit-slider-0 input[type=range]").fill("2")
        page.wait_for_function("b => document.querySelector('#edit-image img').src !== b", arg=before)
        open_tab(page, "Interpolate")
        page.click("#interp-run")
        page.wait_for_function("document.querySelector('#interp-caption')?.innerText.includes('frames, slerp')")
        page.wait_for_selector("#interp-strip img")
        open_tab(page, "Denoise")
        page.locator("#denoise-model").get_by_label("model", exact=True).click()
        page.get_by_role("option", name=OWN, exact=True).click()
        page.click("#denoise-run")
        page.wait_for_function("/step 50 of 50/.test(document.querySelector('#denoise-equation')?.innerText)")
        browser.close()
